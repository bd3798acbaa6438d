"""The segmentation task for the engine: model, data, loss, video inference into tracks, evaluation."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from pycocotools import mask as mask_utils

from ..association import InstanceTracker
from ..data.clips import ClipDataset
from ..data.splits import read_split
from ..data.types import Video
from ..detection.task import (DetectionTask, RCNNSection, _target, build_rcnn, inclusive_detections, predict_video,
                              train_clips)
from ..engine.config import Config
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


class SegmentationClips(ClipDataset):
    """ClipDataset whose items collate into segmenter input (targets with masks)."""

    @staticmethod
    def collate(samples) -> dict:
        targets = []
        for s in samples:
            tg = _target(s.targets, inclusive=False)  # YouTube-VIS boxes are x, y, x + w, y + h
            H, W = s.frame.shape[-2:]
            if s.targets.masks is None:
                raise ValueError(f"video {s.video} frame {s.index}: segmentation needs masks, the annotation has none")
            masks = [mask_utils.decode(m) for m in s.targets.masks]
            for k, m in enumerate(masks):
                if m.shape != (H, W):
                    raise ValueError(f"video {s.video} frame {s.index}: mask {k} is {m.shape[1]}x{m.shape[0]}, "
                                     f"the frame {W}x{H}")
            tg["masks"] = torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, H, W), dtype=torch.uint8)
            targets.append(tg)
        return {"images": [s.frame.float().div(255) for s in samples],
                "support": [s.support.float().div(255) for s in samples],
                "offsets": torch.tensor([[i - s.index for i in s.support_index] for s in samples]),
                "targets": targets}


def instances(output: dict, height: int, width: int, mask_threshold: float = 0.5, score_threshold: float = 0.0) -> dict:
    """Segmenter output of one frame -> numpy boxes (inclusive pixels), labels, scores, masks
    ((n, H, W) bool, at the frame's size) and embeddings ((n, D)) of the instances scoring at
    least ``score_threshold`` (dropped before their full-size masks are copied)."""
    output = {k: v[output["scores"] >= score_threshold] for k, v in output.items()}
    out = inclusive_detections(output, height, width)
    out["masks"] = (output["masks"][:, 0] >= mask_threshold).cpu().numpy()
    out["embeddings"] = output["embeddings"].float().cpu().numpy()
    return out


def encode(mask: np.ndarray) -> dict:
    """(H, W) bool -> compressed COCO RLE with ``counts`` as str (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


class VideoTracks:
    """One video's instances, frame by frame, into tracks (``InstanceTracker``) and results.

    ``add(frame)`` takes one frame's ``instances`` and returns those kept with their track ids:
    score >= ``score_threshold``, then a class-agnostic NMS on masks (of two instances whose
    masks overlap by more than ``nms_overlap`` of the smaller one, the lower-scoring one goes:
    the detector's NMS is per class and on box IoU, so one object often comes out several
    times, as two classes or as parts of itself inside its own box, and would start several
    tracks); ``results(video_id)`` gives the video-level
    tracks as YouTube-VIS results: score = mean of the track's frame scores, category = the
    majority of its frame labels (a tie goes to the label with the higher summed score),
    one RLE or None per frame. Memory: one RLE per instance and frame."""

    def __init__(self, tracker: InstanceTracker, score_threshold: float = 0.1, nms_overlap: float = 0.5):
        self.tracker, self.score_threshold, self.nms_overlap = tracker, score_threshold, nms_overlap
        self.length = 0
        self.tracks: dict[int, dict[int, tuple[dict, float, int]]] = {}  # id -> frame -> (rle, score, label)

    def add(self, frame: dict) -> dict:
        keep = np.flatnonzero(frame["scores"] >= self.score_threshold)
        keep = keep[np.argsort(-frame["scores"][keep], kind="stable")]
        rles = [encode(m) for m in frame["masks"][keep]]
        chosen = mask_nms(rles, self.nms_overlap)
        keep, rles = keep[chosen], [rles[i] for i in chosen]
        kept = {k: v[keep] for k, v in frame.items()}
        ids = self.tracker.update(rles, kept["labels"], kept["embeddings"] if self.tracker.embed_weight else None)
        t = self.length
        for rle, score, label, tid in zip(rles, kept["scores"], kept["labels"], ids):
            self.tracks.setdefault(int(tid), {})[t] = (rle, float(score), int(label))
        self.length += 1
        return {**kept, "rles": rles, "track_ids": ids}

    def results(self, video_id: int) -> list[dict]:
        out = []
        for tid, frames in sorted(self.tracks.items()):
            votes, mass = Counter(), Counter()
            for _, score, label in frames.values():
                votes[label] += 1
                mass[label] += score
            category = max(votes, key=lambda c: (votes[c], mass[c]))
            out.append({"video_id": int(video_id), "category_id": int(category),
                        "score": float(np.mean([s for _, s, _ in frames.values()])),
                        "segmentations": [frames[t][0] if t in frames else None for t in range(self.length)],
                        "track_id": tid})
        return out


def mask_nms(rles: list, threshold: float) -> list[int]:
    """Indices kept by greedy NMS over ``rles`` sorted by decreasing score: a mask goes when its
    intersection with a kept one exceeds ``threshold`` of the smaller of the two (so a part
    inside a whole goes too, which IoU would keep). An empty mask goes. 1 keeps all (empty ones too)."""
    if threshold >= 1:
        return list(range(len(rles)))
    if not rles:
        return []
    iou = np.asarray(mask_utils.iou(rles, rles, [0] * len(rles)), dtype=np.float64)
    area = np.asarray(mask_utils.area(rles), dtype=np.float64)
    inter = iou * (area[:, None] + area[None, :]) / (1 + iou)
    overlap = inter / np.maximum(np.minimum(area[:, None], area[None, :]), 1)
    kept: list[int] = []
    for i in range(len(rles)):
        if area[i] > 0 and all(overlap[i, j] <= threshold for j in kept):
            kept.append(i)
    return kept


def convert_of(cfg: Config):
    """The segmenter output -> ``instances`` conversion of the config's thresholds."""
    o = cfg.segmentation
    return partial(instances, mask_threshold=o.mask_threshold, score_threshold=o.score_threshold)


def new_tracks(cfg: Config) -> VideoTracks:
    o = cfg.segmentation
    return VideoTracks(InstanceTracker(o.embed_weight, o.max_cost, o.max_missed, o.class_gate), o.score_threshold,
                       o.nms_overlap)


def segment_video(seg: STPNSegmenter, video: Video, cfg: Config, mode: str | None = None, device: str = "cpu",
                  on_frame=None, support_video: Video | None = None) -> list[dict]:
    """YouTube-VIS results (one dict per track, with ``track_id``) of one video, inference per the
    config's ``data.test_*`` settings (``mode`` overrides the policy). ``on_frame(t, kept)`` sees
    each frame's kept instances with their track ids (for drawing or saving PNGs);
    ``support_video`` as in ``predict_video``."""
    d, o = cfg.data, cfg.segmentation
    frames = predict_video(seg, video, mode or d.test_policy, d.test_num_support, d.test_stride, d.test_refresh_every,
                           device, o.test_min_size, o.test_max_size,
                           convert=convert_of(cfg), support_video=support_video)
    tracks = new_tracks(cfg)
    for t, frame in enumerate(frames):
        kept = tracks.add(frame)
        if on_frame is not None:
            on_frame(t, kept)
    return tracks.results(video.meta.get("id", 1))


class SegmentationTask(DetectionTask):
    """Video instance segmentation (YouTube-VIS layout): Mask R-CNN + FPN on the STPN backbone,
    online association of the instances into tracks. Its loss is the detector's plus the masks'
    (the detector's ``loss`` with the mask targets); its hooks read this package's modules."""

    name, what, data_formats, Section = "segmentation", "segmenter", ("ytvis",), SegmentationSection
    package = "stpn.segmentation"  # evaluate, print_metrics and the demo hooks: its commands and demo modules
    robustness_metric = "mask AP50"

    def robustness_score(self, model, cfg, videos, support_videos=None) -> float:
        from ..evaluation.ytvis import evaluate_ytvis
        entry = self._part("commands", "results_entry")
        device = next(model.parameters()).device.type
        results = []
        for video, sv in zip(videos, support_videos or [None] * len(videos)):
            results += [entry(r) for r in segment_video(model, video, cfg, None, device, support_video=sv)]
        categories = videos[0].meta["categories"] if videos else []
        return evaluate_ytvis(videos, categories, results)["ap50"]

    def build_model(self, cfg: Config) -> STPNSegmenter:
        return build_segmenter(cfg)

    def train_dataset(self, cfg: Config) -> SegmentationClips:
        return train_clips(cfg, read_split(cfg.data, cfg.data.train_split), SegmentationClips)

    def load(self, weights, config=None, overrides=()):
        return super(DetectionTask, self).load(weights, config, overrides)

    demo_metrics = ("ap_all", "ap50_all", "ap_deteriorated", "ap50_deteriorated")

    def demo_row(self, metrics: dict) -> dict:
        return {"ap_all": metrics["ap_all"], "ap50_all": metrics["ap50_all"],
                "ap_deteriorated": metrics.get("ap_deteriorated"), "ap50_deteriorated": metrics.get("ap50_deteriorated"),
                "ms_per_frame": metrics["ms_per_frame"], "inference_mode": metrics["mode"]}
