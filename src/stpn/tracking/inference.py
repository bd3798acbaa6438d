"""Trackers at work on sequences: each from its first box, written in the GOT-10k results layout."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from ..data.got10k import write_got10k_results
from ..data.types import Video, xyxy_to_xywh
from ..engine.config import Config
from .model import STPNTracker
from .tracker import track_frames


def _xywh(video: Video, t: int) -> np.ndarray | None:
    """The target's x,y,w,h in frame t, or None where it is absent."""
    tg = video.targets[t]
    if not len(tg) or not tg.visible[0]:
        return None
    box = xyxy_to_xywh(tg.boxes[0])
    return box if box[2] > 0 and box[3] > 0 else None


def track_videos(model: STPNTracker, cfg: Config, videos, results: Path, device, support_videos=None) -> None:
    """Track each sequence from its first box at the config's test settings and write the GOT-10k
    results layout (boxes, measured seconds per frame) into ``results``; ``support_videos``: the
    same sequences whose frames the support stream keeps (``track_frames``)."""
    d = cfg.data
    for video, sv in zip(videos, support_videos or itertools.repeat(None)):
        first = _xywh(video, 0)
        if first is None:
            raise ValueError(f"sequence {video.name}: the target is absent in the first frame")
        frames = (video.frames[t] for t in range(len(video)))
        supports = None if sv is None else (sv.frames[t] for t in range(len(sv)))
        rows = list(track_frames(model, frames, first, d.test_num_support, d.test_stride, d.test_refresh_every,
                                 device, supports))
        write_got10k_results(results, video.name, np.stack([r[1] for r in rows]), np.array([r[3] for r in rows]))
