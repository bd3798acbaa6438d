"""Segmenters at work on videos: per-frame instances (masks as RLE), mask NMS, and the online
association of the instances into tracks."""
from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from ..association import InstanceTracker, QuasiDenseTracker
from ..data.types import Video, atomic_path
from ..detection.inference import inclusive_detections, predict_video
from ..engine.config import Config
from .model import STPNSegmenter


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

    ``add(frame)`` takes one frame's ``instances`` and returns those kept with their track ids
    (and, under ``detected``, the frame's instances before association):
    score >= ``score_threshold``, then a class-agnostic NMS on masks (of two instances whose
    masks overlap by more than ``nms_overlap`` of the smaller one, the lower-scoring one goes:
    the detector's NMS is per class and on box IoU, so one object often comes out several
    times, as two classes or as parts of itself inside its own box, and would start several
    tracks; instances the tracker leaves untracked, id 0, are dropped); ``results(video_id)`` gives the video-level
    tracks as YouTube-VIS results: score = mean of the track's frame scores, category = the
    majority of its frame labels (a tie goes to the label with the higher summed score),
    one RLE or None per frame. Memory: one RLE per instance and frame."""

    def __init__(self, tracker: InstanceTracker | QuasiDenseTracker, score_threshold: float = 0.1, nms_overlap: float = 0.5):
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
        # the frame's instances before association (what a per-frame score reads: segmentation alone)
        detected = {"rles": list(rles), "labels": kept["labels"], "scores": kept["scores"]}
        ids = self.tracker.update(rles, kept["labels"], kept["embeddings"], kept["scores"])
        tracked = np.flatnonzero(ids > 0)  # id 0: an instance the tracker leaves out
        kept, rles, ids = {k: v[tracked] for k, v in kept.items()}, [rles[i] for i in tracked], ids[tracked]
        t = self.length
        for rle, score, label, tid in zip(rles, kept["scores"], kept["labels"], ids):
            self.tracks.setdefault(int(tid), {})[t] = (rle, float(score), int(label))
        self.length += 1
        return {**kept, "rles": rles, "track_ids": ids, "detected": detected}

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
    """The config's tracker (``segmentation.association``) in a fresh ``VideoTracks``."""
    o = cfg.segmentation
    if o.association == "quasi_dense" and o.track_embedding == "head":
        tracker = QuasiDenseTracker(o.match_score, o.init_score, o.memory_momentum, o.iou_weight, o.max_missed,
                                    o.class_gate)
    else:
        tracker = InstanceTracker(o.embed_weight, o.max_cost, o.max_missed, o.class_gate)
    return VideoTracks(tracker, o.score_threshold, o.nms_overlap)


def segment_video(seg: STPNSegmenter, video: Video, cfg: Config, mode: str | None = None, device: str = "cpu",
                  on_frame=None, support_video: Video | None = None) -> list[dict]:
    """YouTube-VIS results (one dict per track, with ``track_id``) of one video, inference per the
    config's ``data.test_*`` settings (``mode`` overrides the policy). ``on_frame(t, kept)`` sees
    each frame's kept instances with their track ids (for drawing or saving PNGs);
    ``support_video`` as in ``predict_video``. ``seg`` may be an ``OnnxSegmenter`` (the exported graphs)."""
    d, o = cfg.data, cfg.segmentation
    if getattr(seg, "task", None) == "segmenter":  # an OnnxSegmenter: the exported graphs, frames of the exported size
        if support_video is not None:
            raise ValueError("an exported segmenter takes its supports from the video itself")
        frames = seg.predict_video(video, mode or d.test_policy, d.test_num_support, d.test_stride, d.test_refresh_every,
                                   convert=convert_of(cfg))
    else:
        frames = predict_video(seg, video, mode or d.test_policy, d.test_num_support, d.test_stride,
                               d.test_refresh_every, device, o.test_min_size, o.test_max_size,
                               convert=convert_of(cfg), support_video=support_video)
    tracks = new_tracks(cfg)
    for t, frame in enumerate(frames):
        kept = tracks.add(frame)
        if on_frame is not None:
            on_frame(t, kept)
    return tracks.results(video.meta.get("id", 1))


def write_png(path: Path, masks: np.ndarray, track_ids, scores, height: int, width: int) -> None:
    """One frame's instances as a PNG of track ids (0: background), the YouTube-VOS / DAVIS way:
    8-bit with a palette while every id is <= 255, 16-bit grey above. Where masks overlap, the
    higher-scoring instance is on top."""
    from PIL import Image

    from ..draw import color_of
    ids = np.zeros((height, width), dtype=np.uint16)
    for k in np.argsort(scores, kind="stable"):
        ids[masks[k]] = int(track_ids[k])
    if ids.max(initial=0) <= 255:
        image = Image.fromarray(ids.astype(np.uint8), mode="P")
        palette = [0, 0, 0] + [c for i in range(1, 256) for c in color_of(i)]
        image.putpalette(palette)
    else:
        image = Image.fromarray(ids, mode="I;16")
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
