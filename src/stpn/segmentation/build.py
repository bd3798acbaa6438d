"""Segmenters from configs: the ``segmentation:`` section, the Mask R-CNN on the STPN backbone
(the detector's R-CNN plus a mask branch), loading a run."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..detection.build import RCNNSection, build_rcnn
from ..engine.config import Config
from ..engine.runs import load_run_model
from ..engine.trainer import resolve_device
from .model import STPNSegmenter


@dataclass
class SegmentationSection(RCNNSection):
    """``segmentation:`` in a config: the R-CNN settings, the mask branch and the association."""

    mask_layers: list = field(default_factory=lambda: [256, 256, 256, 256])
    mask_roi_size: int = 14
    mask_threshold: float = 0.5  # a pixel belongs to an instance where its mask probability is >= this
    score_threshold: float = 0.1  # instances scoring below this stay out of the tracks and the results
    nms_overlap: float = 0.5  # of two instances of a frame, of any classes, whose masks overlap more (intersection / the smaller mask), the lower-scoring one is dropped
    embed_weight: float = 1.0  # association cost: (1 - mask IoU) + embed_weight * (1 - cosine of embeddings)
    max_cost: float = 1.9  # pairs costing more never match
    max_missed: int = 5  # a track ends after this many frames in a row without a match
    class_gate: bool = False  # true: instances only join tracks of their class (fragments a track where its frame class flips)

    def problems(self):
        return [(k, m) for ok, k, m in (
            (len(self.mask_layers) >= 1, "mask_layers", "needs at least one layer"),
            (0 < self.mask_threshold < 1, "mask_threshold", "must be in (0, 1)"),
            (0 <= self.score_threshold < 1, "score_threshold", "must be in [0, 1)"),
            (0 < self.nms_overlap <= 1, "nms_overlap", "must be in (0, 1] (1: no suppression)"),
            (self.embed_weight >= 0, "embed_weight", "must be >= 0"),
            (self.max_cost >= 0, "max_cost", "must be >= 0"),
            (self.max_missed >= 0, "max_missed", "must be >= 0")) if not ok] + super().problems()


def build_segmenter(cfg: Config) -> STPNSegmenter:
    o = cfg.segmentation
    return build_rcnn(cfg, STPNSegmenter, mask_layers=tuple(o.mask_layers), mask_roi_size=o.mask_roi_size)


def load_segmenter(weights: str | Path, config: str | Path | None = None, overrides=()) -> tuple[STPNSegmenter, Config]:
    """(segmenter, config) on the config's ``run.device`` from a run's ``model.safetensors`` (or a
    run folder) and its config."""
    model, cfg = load_run_model(weights, config, overrides, "segmentation", "segmenter", build_segmenter)
    return model.to(resolve_device(cfg.run.device)).eval(), cfg
