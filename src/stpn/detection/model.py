"""Video object detection: torchvision's Faster R-CNN + FPN over the STPN backbone.

Support frames go through the same transform as their key frame (normalised, resized to the
key frame's resized size, padded like the batch), so prompts see the key frame's geometry.
With ``STPN(prompting=False)`` the same detector is the single-frame baseline.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ..core import STPN
from .conventions import MMDetTransform, use_mmdet_conventions


class STPNFPN(nn.Module):
    """STPN stage maps -> FPN levels '0'..'3' and 'pool' (strides 4..64 for Swin)."""

    def __init__(self, stpn: STPN, out_channels: int = 256):
        super().__init__()
        self.stpn = stpn
        self.fpn = FeaturePyramidNetwork(list(stpn.backbone.dims), out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def features(self, maps: list[torch.Tensor]) -> OrderedDict:
        return self.fpn(OrderedDict((str(i), m) for i, m in enumerate(maps)))

    def forward(self, images: torch.Tensor, support: torch.Tensor | None = None, offsets=None) -> OrderedDict:
        return self.features(self.stpn(images, support, offsets))


class STPNDetector(FasterRCNN):
    """Faster R-CNN + FPN on STPN. ``forward(images, targets, support, support_offsets)``:
    images a list of (3, H, W) float tensors in [0, 1]; support a list of (K, 3, H, W) tensors
    (same size as their key frame) or None for the baseline; training returns the loss dict,
    evaluation a list of {boxes, labels, scores} in input pixels.

    Anchors as the released model: scale 8 at strides 4..64 (32..512 px), ratios 0.5/1/2;
    ``anchor_scale`` changes the scale (small generated frames use 4).
    ``conventions``: ``torchvision`` (its parts as they are) or ``mmdet`` (the released model's
    resize, normalisation, padding, anchors, box coding, RoIAlign and post-processing; see
    ``stpn.detection.conventions``).
    """

    def __init__(self, stpn: STPN, num_classes: int, fpn_channels: int = 256, box_head_dim: int = 1024,
                 anchor_scale: int = 8, min_size=(480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800),
                 max_size: int = 1333, conventions: str = "torchvision", prompt_class_loss: float = 0.0, **kwargs):
        if conventions not in ("torchvision", "mmdet"):
            raise ValueError(f"conventions must be 'torchvision' or 'mmdet', got {conventions!r}")
        backbone = STPNFPN(stpn, fpn_channels)
        strides = (4, 8, 16, 32, 64)
        anchors = AnchorGenerator(tuple((anchor_scale * s,) for s in strides), ((0.5, 1.0, 2.0),) * len(strides))
        box_head = TwoMLPHead(fpn_channels * 7 * 7, box_head_dim)
        super().__init__(backbone, num_classes=None, rpn_anchor_generator=anchors, box_head=box_head,
                         box_predictor=FastRCNNPredictor(box_head_dim, num_classes + 1),
                         min_size=min_size, max_size=max_size, **kwargs)
        self.num_classes, self.conventions = num_classes, conventions
        if conventions == "mmdet":
            use_mmdet_conventions(self, min_size=min_size, max_size=max_size)
        self.prompt_class_loss = float(prompt_class_loss)
        self._prompts = None
        if self.prompt_class_loss > 0 and stpn.prompting and stpn.reads_support:
            # Training only: the mean of the last stage's prompts must tell which classes the key frame
            # holds (multi-label, the supports come from its video). The task loss alone lets a run settle
            # where the prompts carry no class (support-swap diagnostic): this asks for it on every run.
            last = stpn.predictor if stpn.prompt_depth == "shallow" else stpn.predictor[-1]
            last = last[-1] if isinstance(last, nn.ModuleList) else last  # deep_block: the last block's
            dim = stpn.backbone.embed_dim if stpn.prompt_depth == "shallow" else stpn.backbone.dims[-1]
            self.prompt_classifier = nn.Linear(dim, num_classes)
            last.register_forward_hook(self._keep_prompts)

    def _keep_prompts(self, module, args, output):
        if self.training:
            self._prompts = output

    def _prompt_class_loss(self, targets) -> torch.Tensor:
        """BCE of the prompts' class logits against the key frames' classes (labels 1..C)."""
        prompts, self._prompts = self._prompts, None
        if prompts is None:
            raise RuntimeError("prompt_class_loss: this training pass computed no prompts (no support frames?)")
        logits = self.prompt_classifier(prompts.mean(1))  # B, C
        present = torch.zeros_like(logits)
        for i, t in enumerate(targets):
            labels = t["labels"]
            if labels.numel() and (labels.min() < 1 or labels.max() > logits.shape[1]):
                raise ValueError(f"prompt_class_loss: image {i} has labels {labels.tolist()}; expected 1..{logits.shape[1]}")
            present[i, labels - 1] = 1.0
        return self.prompt_class_loss * F.binary_cross_entropy_with_logits(logits, present)

    @property
    def stpn(self) -> STPN:
        return self.backbone.stpn

    def transform_support(self, support: list[torch.Tensor], image_sizes, padded_shape) -> torch.Tensor:
        """Normalise and resize each clip's support frames to its key frame's resized size and pad
        them like the batch -> (B, K, 3, H', W')."""
        out = []
        for frames, (h, w) in zip(support, image_sizes):
            if isinstance(self.transform, MMDetTransform):
                x = self.transform.prepare(frames, (h, w))
            else:
                x = F.interpolate(self.transform.normalize(frames), size=(h, w), mode="bilinear", align_corners=False)
            out.append(F.pad(x, (0, padded_shape[1] - w, 0, padded_shape[0] - h)))
        return torch.stack(out)

    def forward(self, images, targets=None, support=None, support_offsets=None):
        if self.training and targets is None:
            raise ValueError("training needs targets: a list of {'boxes': (n, 4) xyxy, 'labels': (n,)} dicts")
        if self.stpn.prompting:
            if support is None or len(support) != len(images):
                raise ValueError("the STPN detector needs support frames: one (K, 3, H, W) tensor per image")
            for i, (img, sup) in enumerate(zip(images, support)):
                if sup.dim() != 4 or sup.shape[1:] != img.shape:
                    raise ValueError(f"support[{i}] must have shape (K, {', '.join(map(str, img.shape))}), "
                                     f"got {tuple(sup.shape)}")
        original_sizes = [tuple(img.shape[-2:]) for img in images]
        image_list, targets = self.transform(images, targets)
        sup = None
        if self.stpn.prompting:
            sup = self.transform_support(support, image_list.image_sizes, image_list.tensors.shape[-2:])
        features = self.backbone(image_list.tensors, sup, support_offsets)
        out = self._heads(image_list, features, targets, original_sizes)
        if self.training and hasattr(self, "prompt_classifier"):
            out["loss_prompt_class"] = self._prompt_class_loss(targets)
        return out

    def _heads(self, image_list, features, targets, original_sizes):
        proposals, proposal_losses = self.rpn(image_list, features, targets)
        detections, detector_losses = self.roi_heads(features, proposals, image_list.image_sizes, targets)
        if self.training:
            return {**detector_losses, **proposal_losses}
        return self.transform.postprocess(detections, image_list.image_sizes, original_sizes)

    @torch.no_grad()
    def detect_maps(self, image: torch.Tensor, maps: list[torch.Tensor], original_size) -> dict:
        """Heads on stage maps already computed for one transformed image (streaming)."""
        return self._heads(image, self.backbone.features(maps), None, [original_size])[0]
