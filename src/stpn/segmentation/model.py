"""Video instance segmentation: torchvision's Mask R-CNN + FPN over the STPN backbone.

``STPNSegmenter`` extends the detector as torchvision's ``MaskRCNN`` extends ``FasterRCNN``:
the same backbone, support routing, RPN and box head, plus a mask branch (RoIAlign 14x14 ->
convolutions -> a mask per class) and, at inference, one embedding per instance for
association: the box head's features of the final box (RoIAlign 7x7 of the FPN levels ->
the two fully connected layers), L2-normalised. The embedding has no parameters of its own:
it is what the model learned on single frames (MinVIS associates with its image-trained
queries the same way). With ``STPN(prompting=False)`` it is the single-frame baseline.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

from ..core import STPN
from ..detection.model import STPNDetector


class STPNSegmenter(STPNDetector):
    """Mask R-CNN + FPN on STPN. ``forward(images, targets, support, support_offsets)`` as the
    detector's; training targets also need ``masks`` ((n, H, W) uint8 in input pixels);
    evaluation returns {boxes, labels, scores, masks ((n, 1, H, W) probabilities at the input
    size), embeddings ((n, D), unit length)}.

    ``mask_layers``: channels of the mask head's 3x3 convolutions (Mask R-CNN: four of 256);
    ``mask_roi_size``: the mask branch's RoIAlign size (Mask R-CNN: 14, masks of 28x28).
    """

    def __init__(self, stpn: STPN, num_classes: int, mask_layers=(256, 256, 256, 256), mask_roi_size: int = 14,
                 **kwargs):
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

    def _heads(self, image_list, features, targets, original_sizes):
        proposals, proposal_losses = self.rpn(image_list, features, targets)
        detections, detector_losses = self.roi_heads(features, proposals, image_list.image_sizes, targets)
        if self.training:
            return {**detector_losses, **proposal_losses}
        embeddings = self.embed(features, [d["boxes"] for d in detections], image_list.image_sizes)
        for d, e in zip(detections, embeddings):
            d["embeddings"] = e
        return self.transform.postprocess(detections, image_list.image_sizes, original_sizes)

    def embed(self, features, boxes: list[torch.Tensor], image_sizes) -> list[torch.Tensor]:
        """Unit-length box-head features of ``boxes`` (per image, in the transformed image's pixels)."""
        heads = self.roi_heads
        x = heads.box_head(heads.box_roi_pool(features, boxes, image_sizes))
        return list(F.normalize(x, dim=-1).split([len(b) for b in boxes]))
