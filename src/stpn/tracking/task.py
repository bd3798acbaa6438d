"""The tracking task for the engine: template/search pairs with causal supports, the loss, and
the hooks that build, load, evaluate and demo a tracker (``stpn.engine.tasks.Task``)."""
from __future__ import annotations

import bisect
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from .._moved import moved_names
from ..core.sampling import SupportConfig, causal_support
from ..data.clips import VideoItems
from ..data.splits import read_split
from ..data.types import Video
from ..engine.config import Config
from ..engine.tasks import Task, normalization_of
from ..engine.trainer import unwrap
from ..evaluation.got10k import evaluate_got10k
from . import build, evaluate, inference  # noqa: F401 - homes of the moved names below
from .build import TrackingSection, build_tracker, load_tracker
from .evaluate import evaluate_tracking, print_metrics
from .inference import _xywh, track_videos
from .model import STPNTracker, crop_frame, crop_region, to_crop, tracking_loss


class TrackingPairs(VideoItems):
    """``samples_per_video`` items per video and epoch. An item draws (from a generator seeded by
    seed, epoch and item) a search frame t >= 1 where the target is visible, a template frame in
    [t - max_gap, t - 1] where it is visible, and the K most recent frames on the stride grid
    before t as supports (``causal_support``, as the tracking loop uses). The search crop and
    the support crops are centred on the jittered true box of their frame, with the search crop's
    jitter (``support_jitter: shared``; at test time every crop is centred on the previous
    prediction, so supports and search see the scene from the same recent position) or one of
    their own (``independent``); the template crop on the true box."""

    def __init__(self, videos: list[Video], cfg: Config):
        d = cfg.data
        SupportConfig("causal", d.train_num_support, d.train_stride)
        self.videos, self.cfg, self.seed, self.epoch = videos, cfg, cfg.run.seed, 0
        self.norm = normalization_of(cfg)
        self.visible = [[t for t in range(len(v)) if _xywh(v, t) is not None] for v in videos]
        usable = [i for i, vis in enumerate(self.visible) if len(vis) >= 2]
        if not usable:
            raise ValueError("no training video has the target visible in two frames")
        self.items = [v for v in usable for _ in range(cfg.tracking.samples_per_video)]

    def _jitter(self, rng: random.Random) -> tuple[float, float, float]:
        """(scale, x shift, y shift): shifts in units of the box's sqrt(w h)."""
        d = self.cfg.tracking
        scale = float(np.exp(rng.gauss(0.0, d.scale_jitter)))
        return scale, (rng.random() - 0.5) * d.center_jitter, (rng.random() - 0.5) * d.center_jitter

    @staticmethod
    def _jittered(box: np.ndarray, jitter: tuple[float, float, float]) -> np.ndarray:
        scale, dx, dy = jitter
        w, h = box[2] * scale, box[3] * scale
        side = np.sqrt(box[2] * box[3])
        cx, cy = box[0] + box[2] / 2 + dx * side, box[1] + box[3] / 2 + dy * side
        return np.array([cx - w / 2, cy - h / 2, w, h])

    def __getitem__(self, i: int) -> dict:
        d, m = self.cfg.data, self.cfg.tracking
        v = self.items[i]
        video, visible = self.videos[v], self.visible[v]
        rng = random.Random(hash((self.seed, self.epoch, i)))
        t = rng.choice(visible[1:])  # visible is sorted: a frame with a visible one before it
        lo, hi = bisect.bisect_left(visible, t - m.max_gap), bisect.bisect_left(visible, t)
        z = rng.choice(visible[lo:hi] or visible[hi - 1:hi])  # within max_gap, else the latest before t
        template_box = _xywh(video, z)
        template = crop_frame(video.frames[z], crop_region(template_box, m.template_factor), m.template_size, "cpu", *self.norm)
        box = _xywh(video, t)
        jitter = self._jitter(rng)
        region = crop_region(self._jittered(box, jitter), m.search_factor)
        search = crop_frame(video.frames[t], region, m.search_size, "cpu", *self.norm)
        support_index = causal_support(t, t + 1, d.train_num_support, d.train_stride)
        crops = []
        for tau in support_index:
            b = _xywh(video, tau)
            b = template_box if b is None else b
            own = jitter if m.support_jitter == "shared" else self._jitter(rng)
            crops.append(crop_frame(video.frames[tau], crop_region(self._jittered(b, own), m.search_factor),
                                    m.search_size, "cpu", *self.norm))
        return {"template": template, "search": search, "support": torch.stack(crops),
                "offsets": torch.tensor([tau - t for tau in support_index]),
                "box": torch.tensor(to_crop(box, region), dtype=torch.float32)}

    @staticmethod
    def collate(samples: list[dict]) -> dict:
        return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


class TrackingTask(Task):
    """Single-object tracking (GOT-10k layout): a one-stream ViT tracker with causal prompts."""

    name, what, data_formats, Section = "tracking", "tracker", ("got10k",), TrackingSection

    load = staticmethod(load_tracker)

    def evaluate(self, model, cfg: Config, out, mode=None, console=None) -> dict:
        if mode not in (None, "causal"):
            raise ValueError(f"a tracker's supports are always causal (past frames only), not {mode}")
        return evaluate_tracking(model, cfg, out, console)

    robustness_metric = "AO"

    def robustness_score(self, model, cfg, videos, support_videos=None) -> float:
        device = next(model.parameters()).device.type
        with tempfile.TemporaryDirectory() as tmp:
            track_videos(model, cfg, videos, Path(tmp), device, support_videos)
            return evaluate_got10k(videos, Path(tmp))["ao"]

    def print_metrics(self, metrics: dict, cfg: Config, console=None) -> None:
        print_metrics(metrics, f"{cfg.data.val_split}: GOT-10k metrics (causal prompts, K={cfg.data.test_num_support}, "
                               f"S={cfg.data.test_stride})", console)



    def build_model(self, cfg: Config) -> STPNTracker:
        return build_tracker(cfg)

    def train_dataset(self, cfg: Config) -> TrackingPairs:
        return TrackingPairs(read_split(cfg.data, cfg.data.train_split), cfg)

    def loss(self, model, batch: dict, device: str) -> dict:
        prompting = unwrap(model).prompting
        support = batch["support"].to(device) if prompting else None
        offsets = batch["offsets"].to(device) if prompting else None
        out = model(batch["template"].to(device), batch["search"].to(device), support, offsets)
        return tracking_loss(out, batch["box"].to(device))


__getattr__ = moved_names(__name__, {"TrackingSection": build, "build_tracker": build, "evaluate_tracking": evaluate, "track_videos": inference})  # old imports, for one release
