"""The released model's inference conventions (mmdetection 2.19) as torchvision detection parts.

``STPNDetector(conventions="mmdet")`` swaps these in. Released (mmdetection 2.19, config
``stpn_swint_adam_9x``) vs torchvision's default part:

- base anchors ``[-w/2, -h/2, w/2, h/2]`` not rounded (torchvision rounds them to integers);
- box decoding clamps dw, dh to [-log(1000/16), log(1000/16)] (torchvision: from above only);
- RPN keeps proposals with w > 0 and h > 0 (torchvision: w, h >= 1e-3); 1000 per level before
  NMS 0.7, 300 after;
- RoI level ``floor(log2(sqrt(wh) / 56 + 1e-6))`` clamped to P2..P5 (torchvision adds the
  1e-6 outside the log); RoIAlign ``aligned=True``, adaptive sampling, scale 1/stride
  (torchvision: ``aligned=False``, scale inferred from the map sizes);
- R-CNN deltas with stds 0.2 (weights 5, 5, 5, 5; torchvision 10, 10, 5, 5); score > 1e-4,
  class-wise NMS 0.5, 100 per image, no small-box filter (torchvision drops sides < 0.01);
- resize keep-ratio to (1000, 600) with sides ``int(side * s + 0.5)`` (torchvision:
  ``floor(side * s)``) on an 8-bit image, then normalise with the pixel mean (123.675, 116.28,
  103.53) and std (58.395, 57.12, 57.375), RGB; pad to a multiple of 16 (torchvision: 32).

The rest is the same in both (anchor order (H, W, A) with ratios 0.5/1/2 at each location,
clip to [0, W] x [0, H] of the resized image, per-level RPN NMS, class-wise R-CNN NMS with
IoU > threshold suppressed, FPN with a max-pooled P6). What this cannot reproduce bit for bit:
the released pipeline decodes JPEGs and resizes with OpenCV's fixed-point bilinear filter, so a
pixel of the resized frame can differ by one grey level.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from torchvision.ops import boxes as box_ops
from torchvision.ops import roi_align

MMDET_PIXEL_MEAN = (123.675, 116.28, 103.53)  # RGB, 0-255
MMDET_PIXEL_STD = (58.395, 57.12, 57.375)
SMALLEST_POSITIVE_FLOAT32 = 2.0 ** -149  # ``w >= this`` is ``w > 0`` for float32 widths


class MMDetAnchorGenerator(AnchorGenerator):
    """Base anchors ``[-w/2, -h/2, w/2, h/2]`` with ``h = size sqrt(r)``, ``w = size / sqrt(r)``,
    not rounded; centred on ``(x stride, y stride)``; ordered (H, W, A) as torchvision's."""

    def generate_anchors(self, scales, aspect_ratios, dtype=torch.float32, device=torch.device("cpu")):
        scales = torch.as_tensor(scales, dtype=dtype, device=device)
        h_ratios = torch.sqrt(torch.as_tensor(aspect_ratios, dtype=dtype, device=device))
        ws = (scales[None, :] / h_ratios[:, None]).reshape(-1)
        hs = (scales[None, :] * h_ratios[:, None]).reshape(-1)
        return torch.stack([-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs], dim=1)


class MMDetBoxCoder(BoxCoder):
    """Deltas (dx, dy, dw, dh) / weights, with dw and dh clamped to [-log(1000/16), log(1000/16)]
    (torchvision clamps only from above). Weights are 1 / the released ``target_stds``."""

    def decode_single(self, rel_codes: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        codes = rel_codes.clone()
        for j, weight in ((2, self.weights[2]), (3, self.weights[3])):
            limit = self.bbox_xform_clip * weight
            codes[:, j::4] = codes[:, j::4].clamp(-limit, limit)
        return super().decode_single(codes, boxes)


def mmdet_roi_levels(boxes: torch.Tensor, finest_scale: float = 56.0, num_levels: int = 4) -> torch.Tensor:
    """FPN level index (0 = stride 4) of each box (n, 4): ``floor(log2(sqrt(wh) / 56 + 1e-6))``."""
    scale = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    return torch.floor(torch.log2(scale / finest_scale + 1e-6)).clamp(0, num_levels - 1).long()


class MMDetRoIAlign(nn.Module):
    """RoIAlign of each box on one FPN level chosen by ``mmdet_roi_levels``: ``aligned=True``,
    adaptive sampling (``sampling_ratio=0``), ``spatial_scale = 1 / stride``."""

    def __init__(self, featmap_names=("0", "1", "2", "3"), strides=(4, 8, 16, 32), output_size: int = 7,
                 sampling_ratio: int = 0, finest_scale: float = 56.0):
        super().__init__()
        self.featmap_names, self.strides = list(featmap_names), tuple(strides)
        self.output_size, self.sampling_ratio, self.finest_scale = (output_size, output_size), sampling_ratio, finest_scale

    def forward(self, features: dict, boxes: list[torch.Tensor], image_shapes=None) -> torch.Tensor:
        maps = [features[name] for name in self.featmap_names]
        rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], dim=1) for i, b in enumerate(boxes)])
        levels = mmdet_roi_levels(rois[:, 1:], self.finest_scale, len(maps))
        out = maps[0].new_zeros(len(rois), maps[0].shape[1], *self.output_size)
        for level, (fmap, stride) in enumerate(zip(maps, self.strides)):
            index = torch.where(levels == level)[0]
            if len(index):
                out[index] = roi_align(fmap, rois[index], self.output_size, spatial_scale=1.0 / stride,
                                       sampling_ratio=self.sampling_ratio, aligned=True).to(out.dtype)
        return out


class MMDetRoIHeads(RoIHeads):
    """Released R-CNN post-processing (mmdetection's ``multiclass_nms``): softmax over all classes,
    background dropped, class-specific boxes clipped to the image, score > ``score_thresh``,
    class-wise NMS, the ``detections_per_img`` best; no small-box filter."""

    def postprocess_detections(self, class_logits, box_regression, proposals, image_shapes):
        counts = [len(p) for p in proposals]
        all_boxes = self.box_coder.decode(box_regression, proposals).split(counts)
        all_scores = F.softmax(class_logits, -1).split(counts)
        out_boxes, out_scores, out_labels = [], [], []
        for boxes, scores, shape in zip(all_boxes, all_scores, image_shapes):
            C = scores.shape[1]
            boxes = box_ops.clip_boxes_to_image(boxes, shape)[:, 1:].reshape(-1, 4)  # (n (C-1), 4): box i, class c
            labels = torch.arange(1, C, device=scores.device).repeat(len(scores))
            scores = scores[:, 1:].reshape(-1)
            keep = torch.where(scores > self.score_thresh)[0]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = box_ops.batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
            out_boxes.append(boxes[keep])
            out_scores.append(scores[keep])
            out_labels.append(labels[keep])
        return out_boxes, out_scores, out_labels


def mmdet_resized_size(height: int, width: int, short: float, long: float) -> tuple[int, int]:
    """mmcv's keep-ratio rescale: ``s = min(long / max(h, w), short / min(h, w))``, sides
    ``int(side * s + 0.5)``. (1280x720 at (1000, 600) -> 1000x563.)"""
    s = min(long / max(height, width), short / min(height, width))
    return int(height * s + 0.5), int(width * s + 0.5)


class MMDetTransform(GeneralizedRCNNTransform):
    """The released test pipeline on images in [0, 1]: resize with mmcv's rounding (bilinear, no
    antialiasing), back to 8-bit levels as the released uint8 image, normalise with pixel
    mean/std (``image_mean``/``image_std`` in [0, 1] units times 255; by default the released
    ones), pad to a multiple of 16. Training picks the short side from ``min_size`` as
    torchvision does and resizes the same way."""

    def __init__(self, min_size, max_size, image_mean=None, image_std=None, size_divisible: int = 16):
        image_mean = image_mean or [m / 255 for m in MMDET_PIXEL_MEAN]
        image_std = image_std or [s / 255 for s in MMDET_PIXEL_STD]
        super().__init__(min_size, max_size, image_mean, image_std, size_divisible=size_divisible)
        # 8-bit levels: 0.485 * 255 -> 123.675, the released constant (rounded off float noise)
        self.pixel_mean = [round(m * 255, 6) for m in image_mean]
        self.pixel_std = [round(s * 255, 6) for s in image_std]

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        return image  # after the resize, in ``resize``

    def prepare(self, images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> resized to ``size``, 8-bit levels, normalised."""
        x = (images * 255).round()
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False).round().clamp(0, 255)
        mean = torch.as_tensor(self.pixel_mean, dtype=x.dtype, device=x.device)[:, None, None]
        std = torch.as_tensor(self.pixel_std, dtype=x.dtype, device=x.device)[:, None, None]
        return (x - mean) / std

    def target_size(self, height: int, width: int) -> tuple[int, int]:
        short = float(self.torch_choice(self.min_size) if self.training else self.min_size[-1])
        return mmdet_resized_size(height, width, short, float(self.max_size))

    def resize(self, image, target=None):
        h, w = image.shape[-2:]
        size = self.target_size(h, w)
        image = self.prepare(image[None], size)[0]
        if target is not None and "boxes" in target:
            target["boxes"] = resize_boxes(target["boxes"], (h, w), size)
        return image, target


def use_mmdet_conventions(det, rpn_pre_nms: int = 1000, rpn_post_nms: int = 300, rpn_nms: float = 0.7,
                          box_score_thresh: float = 1e-4, box_nms: float = 0.5, detections_per_img: int = 100,
                          box_stds=(0.2, 0.2, 0.2, 0.2), min_size=(600,), max_size: int = 1000) -> None:
    """Swap a torchvision ``FasterRCNN``'s parts for the released ones (in place); the defaults
    are the released config's test settings. Weights are untouched."""
    old = det.roi_heads
    det.transform = MMDetTransform(min_size, max_size, list(det.transform.image_mean), list(det.transform.image_std))
    det.rpn.anchor_generator = MMDetAnchorGenerator(det.rpn.anchor_generator.sizes,
                                                    det.rpn.anchor_generator.aspect_ratios)
    det.rpn.box_coder = MMDetBoxCoder((1.0, 1.0, 1.0, 1.0), math.log(1000.0 / 16))
    det.rpn.min_size = SMALLEST_POSITIVE_FLOAT32
    det.rpn.nms_thresh = rpn_nms
    det.rpn._pre_nms_top_n = dict(training=rpn_pre_nms, testing=rpn_pre_nms)
    det.rpn._post_nms_top_n = dict(training=rpn_post_nms, testing=rpn_post_nms)
    det.roi_heads = MMDetRoIHeads(
        MMDetRoIAlign(), old.box_head, old.box_predictor, 0.5, 0.5,
        old.fg_bg_sampler.batch_size_per_image, old.fg_bg_sampler.positive_fraction,
        tuple(1.0 / s for s in box_stds), box_score_thresh, box_nms, detections_per_img)
    det.roi_heads.box_coder = MMDetBoxCoder(tuple(1.0 / s for s in box_stds), math.log(1000.0 / 16))
