"""Detectors from configs: the ``detection:`` section, the R-CNN on the STPN backbone, class names,
and loading a trained run or the released mmdetection checkpoint."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..core.weights import load_backbone_weights, read_state_dict
from ..engine.config import Config, load_config
from ..engine.runs import load_run_model
from ..engine.tasks import Section, build_stpn, normalization_of
from ..engine.trainer import resolve_device
from .model import STPNDetector
from .released import is_mmdet_detector, load_detector_checkpoint


@dataclass
class RCNNSection(Section):
    """What every R-CNN task on the STPN backbone sets (detection, segmentation)."""

    num_classes: int = 30
    fpn_channels: int = 256
    box_head_dim: int = 1024
    anchor_scale: int = 8
    min_size: list = field(default_factory=lambda: [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800])
    max_size: int = 1333
    test_min_size: int = 600
    test_max_size: int = 1000
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    deteriorated_repeat: int = 1  # key frames listed in deteriorated_<train_split>.json appear this often per epoch
    # training only: weight of a loss that asks the last stage's prompts which classes the key frame
    # holds (STPNDetector.prompt_class_loss); 0: none (and no extra parameters)
    prompt_class_loss: float = 0.0

    def problems(self):
        return [(k, m) for ok, k, m in (
            (self.deteriorated_repeat >= 1, "deteriorated_repeat", "must be >= 1"),
            (self.prompt_class_loss >= 0, "prompt_class_loss", "must be >= 0"),
            (self.num_classes >= 1, "num_classes", "must be >= 1")) if not ok]


@dataclass
class DetectionSection(RCNNSection):
    """``detection:`` in a config."""

    conventions: str = "torchvision"  # torchvision | mmdet (the released model's resize, anchors, RoIAlign, ...)
    det_image_set: str | None = None  # training: add the ImageNet DET images of ROOT/ImageSets/<this>.txt (e.g. DET_train_30classes)

    def problems(self):
        bad = [] if self.conventions in ("torchvision", "mmdet") else [("conventions", "must be torchvision or mmdet")]
        return bad + super().problems()


def build_detector(cfg: Config) -> STPNDetector:
    return build_rcnn(cfg, STPNDetector, conventions=cfg.detection.conventions)


def build_rcnn(cfg: Config, cls, **extra):
    """An R-CNN of class ``cls`` (``STPNDetector`` or a subclass) from the config's model and task
    section, with ``model.weights`` loaded (a backbone checkpoint, or an mmdetection detector)."""
    m, o = cfg.model, cfg.section
    stpn = build_stpn(cfg)
    mean, std = normalization_of(cfg)
    det = cls(stpn, o.num_classes, image_mean=list(mean), image_std=list(std), fpn_channels=o.fpn_channels,
              box_head_dim=o.box_head_dim, anchor_scale=o.anchor_scale, min_size=tuple(o.min_size),
              max_size=o.max_size, rpn_batch_size_per_image=o.rpn_batch_size_per_image,
              box_batch_size_per_image=o.box_batch_size_per_image, prompt_class_loss=o.prompt_class_loss, **extra)
    if m.weights:
        sd = read_state_dict(m.weights)  # read once: a COCO detector checkpoint is hundreds of MB
        if is_mmdet_detector(sd):  # e.g. the COCO Mask R-CNN Swin-T the paper starts from
            load_detector_checkpoint(det, m.weights, strict=False, state_dict=sd)
        else:
            load_backbone_weights(stpn.backbone, m.weights, state_dict=sd)
    return det


def class_names(cfg: Config) -> list[str]:
    """The names of the config's classes 1..num_classes (``data.class_names``, else their numbers),
    for any R-CNN task (detection, segmentation)."""
    return cfg.data.class_names or [str(c) for c in range(1, cfg.section.num_classes + 1)]


def load_detector(weights: str | Path, config: str | Path | None = None, overrides=()):
    """(detector, config) on the config's ``run.device``: from a run's ``model.safetensors`` (or a
    run folder) and its config, or from an mmdetection checkpoint (``.pth``, e.g. the released
    ``stpn_swint_adam_9x.pth``) with a config that describes it (``vid_swin_t_released``)."""
    if Path(weights).suffix in (".pth", ".pt", ".bin"):
        if not Path(weights).is_file():
            raise FileNotFoundError(f"weights file not found: {weights}")
        if config is None:
            raise ValueError(f"{weights} is an mmdetection checkpoint and carries no stpn config: pass one "
                             "(for the released model: vid_swin_t_released)")
        cfg = load_config(config, overrides)
        if cfg.task != "detection":
            raise ValueError(f"{config} is a {cfg.task} config, not a detector's")
        start = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained=False, weights=None))
        det = build_detector(start)
        load_detector_checkpoint(det, weights, strict=True)
    else:
        det, cfg = load_run_model(weights, config, overrides, "detection", "detector", build_detector)
    return det.to(resolve_device(cfg.run.device)).eval(), cfg
