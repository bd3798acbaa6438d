"""Segmenters from configs: the ``segmentation:`` section, the Mask R-CNN on the STPN backbone
(the detector's R-CNN plus a mask branch), loading a run."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..detection.build import RCNNSection, build_rcnn
from ..engine.config import Config
from ..engine.runs import load_run_model
from ..engine.trainer import resolve_device
from .model import ASSOCIATIONS, STPNSegmenter


@dataclass
class SegmentationSection(RCNNSection):
    """``segmentation:`` in a config: the R-CNN settings, the mask branch and the association."""

    mask_layers: list = field(default_factory=lambda: [256, 256, 256, 256])
    mask_roi_size: int = 14
    mask_threshold: float = 0.5  # a pixel belongs to an instance where its mask probability is >= this
    score_threshold: float = 0.1  # instances scoring below this stay out of the tracks and the results
    nms_overlap: float = 0.5  # of two instances of a frame, of any classes, whose masks overlap more (intersection / the smaller mask), the lower-scoring one is dropped
    # association: quasi_dense (a trained embedding head + QuasiDenseTracker's track memory) or
    # box_features (the box head's features, untrained for it, + InstanceTracker); runs made before
    # the head existed have no association key and load as box_features
    association: str = "box_features"
    # which embedding tracks a quasi_dense model's instances: head (its trained head and
    # QuasiDenseTracker) or box_features (the untrained box features and InstanceTracker, as a
    # box_features model: what the head adds, on the same detector and masks)
    track_embedding: str = "head"
    # the quasi-dense head (QDTrack: 4 convs of 256, fc 1024, 256-d) and its training: rois per frame,
    # loss weights (cross-entropy, L2), the reference frame of a pair up to ref_range frames from the key
    embed_convs: int = 4
    embed_channels: int = 256
    embed_fc: int = 1024
    embed_dim: int = 256
    embed_rois: int = 256
    embed_loss_weights: list = field(default_factory=lambda: [0.25, 1.0])
    ref_range: int = 3
    # QuasiDenseTracker: score = (bi-softmax + cosine) / 2 + iou_weight * mask IoU with the track's last mask
    match_score: float = 0.5  # a pair scoring below this never matches
    init_score: float = 0.5  # an unmatched instance starts a track only above this detection score
    memory_momentum: float = 0.8  # a matched track's embedding <- (1 - m) old + m new
    iou_weight: float = 0.5
    # InstanceTracker (box_features): cost = (1 - mask IoU) + embed_weight * (1 - cosine of embeddings)
    embed_weight: float = 1.0
    max_cost: float = 1.9  # pairs costing more never match
    max_missed: int = 5  # a track ends after this many frames in a row without a match (both trackers)
    class_gate: bool = False  # true: instances only join tracks of their class (fragments a track where its frame class flips)

    def problems(self):
        return [(k, m) for ok, k, m in (
            (len(self.mask_layers) >= 1, "mask_layers", "needs at least one layer"),
            (0 < self.mask_threshold < 1, "mask_threshold", "must be in (0, 1)"),
            (0 <= self.score_threshold < 1, "score_threshold", "must be in [0, 1)"),
            (0 < self.nms_overlap <= 1, "nms_overlap", "must be in (0, 1] (1: no suppression)"),
            (self.embed_weight >= 0, "embed_weight", "must be >= 0"),
            (self.max_cost >= 0, "max_cost", "must be >= 0"),
            (self.max_missed >= 0, "max_missed", "must be >= 0"),
            (self.association in ASSOCIATIONS, "association", f"must be one of {', '.join(ASSOCIATIONS)}"),
            (self.track_embedding in ("head", "box_features"), "track_embedding", "must be head or box_features"),
            (min(self.embed_channels, self.embed_fc, self.embed_dim, self.embed_rois) >= 1 and self.embed_convs >= 0,
             "embed_*", "embed_convs >= 0; embed_channels, embed_fc, embed_dim and embed_rois >= 1"),
            (len(self.embed_loss_weights) == 2 and min(self.embed_loss_weights) >= 0, "embed_loss_weights",
             "must be two weights >= 0 (cross-entropy, L2)"),
            (self.ref_range >= 1, "ref_range", "must be >= 1 frame"),
            (0 <= self.match_score <= 2, "match_score", "must be in [0, 2]"),
            (0 <= self.init_score <= 1, "init_score", "must be in [0, 1]"),
            (0 <= self.memory_momentum <= 1, "memory_momentum", "must be in [0, 1]"),
            (self.iou_weight >= 0, "iou_weight", "must be >= 0")) if not ok] + super().problems()


def build_segmenter(cfg: Config) -> STPNSegmenter:
    o = cfg.segmentation
    embed = {"convs": o.embed_convs, "channels": o.embed_channels, "fc_dim": o.embed_fc, "dim": o.embed_dim,
             "rois": o.embed_rois, "weights": tuple(o.embed_loss_weights)}
    seg = build_rcnn(cfg, STPNSegmenter, mask_layers=tuple(o.mask_layers), mask_roi_size=o.mask_roi_size,
                     association=o.association, embed=embed)
    seg.track_with_head = o.track_embedding == "head"
    return seg


def load_segmenter(weights: str | Path, config: str | Path | None = None, overrides=()) -> tuple[STPNSegmenter, Config]:
    """(segmenter, config) on the config's ``run.device`` from a run's ``model.safetensors`` (or a
    run folder) and its config."""
    model, cfg = load_run_model(weights, config, overrides, "segmentation", "segmenter", build_segmenter)
    return model.to(resolve_device(cfg.run.device)).eval(), cfg
