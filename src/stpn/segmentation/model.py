"""Video instance segmentation: torchvision's Mask R-CNN + FPN over the STPN backbone.

``STPNSegmenter`` extends the detector as torchvision's ``MaskRCNN`` extends ``FasterRCNN``:
the same backbone, support routing, RPN and box head, plus a mask branch (RoIAlign 14x14 ->
convolutions -> a mask per class) and, at inference, one embedding per instance for
association, of one of two kinds:

- ``association="quasi_dense"``: a trained embedding head (``embed.QuasiDenseEmbedHead``) on the
  box's RoIAlign 7x7 features, trained on frame pairs of one video (``forward`` with targets
  that carry ``track_ids`` and a ``group`` shared by the two frames of a pair); raw vectors;
- ``association="box_features"``: the box head's features of the final box (RoIAlign 7x7 ->
  the two fully connected layers), L2-normalised, with no parameters of its own: what the model
  learned on single frames (MinVIS associates with its image-trained queries the same way).

With ``STPN(prompting=False)`` it is the single-frame baseline.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

from ..core import STPN
from ..detection.model import STPNDetector
from .embed import QuasiDenseEmbedHead, pair_loss, sample_rois

ASSOCIATIONS = ("quasi_dense", "box_features")


class STPNSegmenter(STPNDetector):
    """Mask R-CNN + FPN on STPN. ``forward(images, targets, support, support_offsets)`` as the
    detector's; training targets also need ``masks`` ((n, H, W) uint8 in input pixels);
    evaluation returns {boxes, labels, scores, masks ((n, 1, H, W) probabilities at the input
    size), embeddings ((n, D), unit length)}.

    ``mask_layers``: channels of the mask head's 3x3 convolutions (Mask R-CNN: four of 256);
    ``mask_roi_size``: the mask branch's RoIAlign size (Mask R-CNN: 14, masks of 28x28).
    ``association``: ``quasi_dense`` or ``box_features`` (module docstring); ``embed``: the
    quasi-dense head's ``convs``, ``channels``, ``fc_dim``, ``dim``, and its training's ``rois``
    per frame and ``weights`` (cross-entropy, L2).
    """

    def __init__(self, stpn: STPN, num_classes: int, mask_layers=(256, 256, 256, 256), mask_roi_size: int = 14,
                 association: str = "box_features", embed: dict | None = None, **kwargs):
        if kwargs.get("conventions", "torchvision") != "torchvision":
            raise ValueError("the segmenter uses torchvision's conventions (the released model is a detector)")
        super().__init__(stpn, num_classes, **kwargs)
        layers = tuple(int(c) for c in mask_layers)
        if not layers:
            raise ValueError("mask_layers needs at least one layer")
        heads = self.roi_heads
        heads.mask_roi_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], mask_roi_size, 2)
        heads.mask_head = MaskRCNNHeads(self.backbone.out_channels, layers, 1)
        heads.mask_predictor = MaskRCNNPredictor(layers[-1], layers[-1], num_classes + 1)
        if association not in ASSOCIATIONS:
            raise ValueError(f"association must be one of {ASSOCIATIONS}, got {association!r}")
        self.association = association
        embed = dict(embed or {})
        self.embed_rois, self.embed_weights = int(embed.pop("rois", 256)), tuple(embed.pop("weights", (0.25, 1.0)))
        self.embed_head = QuasiDenseEmbedHead(self.backbone.out_channels, **embed) if association == "quasi_dense" else None
        self.track_with_head = True  # False: inference embeds with the box features even with a head

    def _heads(self, image_list, features, targets, original_sizes):
        proposals, proposal_losses = self.rpn(image_list, features, targets)
        detections, detector_losses = self.roi_heads(features, proposals, image_list.image_sizes, targets)
        if self.training:
            losses = {**detector_losses, **proposal_losses}
            if self.embed_head is not None:
                losses.update(self.association_loss(features, proposals, image_list.image_sizes, targets))
            return losses
        embeddings = self.embed(features, [d["boxes"] for d in detections], image_list.image_sizes)
        for d, e in zip(detections, embeddings):
            d["embeddings"] = e
        return self.transform.postprocess(detections, image_list.image_sizes, original_sizes)

    def embed(self, features, boxes: list[torch.Tensor], image_sizes) -> list[torch.Tensor]:
        """Association embeddings of ``boxes`` (per image, in the transformed image's pixels): the
        quasi-dense head's vectors, or unit-length box-head features."""
        heads = self.roi_heads
        pooled = heads.box_roi_pool(features, boxes, image_sizes)
        if self.embed_head is not None and (self.training or self.track_with_head):
            x = self.embed_head(pooled)
        else:
            x = F.normalize(heads.box_head(pooled), dim=-1)
        return list(x.split([len(b) for b in boxes]))

    def association_loss(self, features, proposals, image_sizes, targets) -> dict:
        """The quasi-dense losses over the batch's frame pairs: images whose targets share a
        ``group`` (two frames of one video), each frame's instances as keys against the other's
        RoIs, both ways, averaged over the pairs. Zero (with a graph) when the batch has none."""
        if any("track_ids" not in t or "group" not in t for t in targets):
            raise ValueError("quasi-dense training needs targets with 'track_ids' and 'group' (frame pairs of "
                             "one video; the segmentation task's training data gives them)")
        rois, ids = zip(*(sample_rois(p, t["boxes"], t["track_ids"], self.embed_rois)
                          for p, t in zip(proposals, targets)))
        embeddings = self.embed(features, list(rois), image_sizes)
        groups = [int(t["group"]) for t in targets]
        totals, pairs = {}, 0
        for g in sorted(set(groups)):
            members = [i for i, x in enumerate(groups) if x == g]
            if len(members) != 2:
                raise ValueError(f"group {g} has {len(members)} frames in this batch: a pair has two")
            a, b = members
            for key, ref in ((a, b), (b, a)):
                for k, v in pair_loss(embeddings[key], ids[key], embeddings[ref], ids[ref], self.embed_weights).items():
                    totals[k] = totals.get(k, 0) + v
            pairs += 2
        if not totals:  # no pair in the batch: zero, with a graph
            totals = dict.fromkeys(("loss_track", "loss_track_aux"), sum(e.sum() for e in embeddings) * 0)
        return {k: v / max(pairs, 1) for k, v in totals.items()}
