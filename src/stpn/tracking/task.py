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
    seed, epoch and item) T = ``sequence_length`` consecutive search frames t, ..., t+T-1 >= 1
    where the target is visible, and a template frame in [t - max_gap, t - 1] where it is visible
    (the template crop is centred on its true box). Each search crop is centred on the frame's
    jittered true box (a jitter of its own).

    Target supports (``tracking.supports: target``): frame t's supports are the K most recent
    frames before t on the stride grid where the target is visible and that the gate's stand-in
    admitted (the test-time memory admits only frames where the tracker is confident: here frame
    0 always and a later frame with chance ``support_admit``, drawn once per item), oldest
    repeated up to K. Each is cut at the template's scale around the true box moved by
    the error model ``support_error`` (the tracker's box at test time is not the truth), drawn
    once per frame and item, so a frame that supports several search frames of the sequence is
    the same crop with the same box; that box, mapped into frame t's search crop, is the
    support's position (``boxes``). Sequences carry supports from earlier frames of the same
    sequence, with their errors: the error model stands in for the tracker's own predictions
    (running the model inside the sampler would cost a forward pass per support and item).

    Search supports (``search``, the earlier design): the K most recent frames on the stride
    grid before t (``causal_support``), cut at the search scale around the jittered true box
    with the search crop's jitter (``support_jitter: shared``) or one of their own."""

    def __init__(self, videos: list[Video], cfg: Config):
        d = cfg.data
        SupportConfig("causal", d.train_num_support, d.train_stride)
        self.videos, self.cfg, self.seed, self.epoch = videos, cfg, cfg.run.seed, 0
        self.norm = normalization_of(cfg)
        self.visible = [[t for t in range(len(v)) if _xywh(v, t) is not None] for v in videos]
        T = cfg.tracking.sequence_length
        self.starts = []
        for vis in self.visible:
            seen = set(vis)
            self.starts.append([t for t in vis if t >= 1 and any(z < t for z in vis)
                                and all(t + i in seen for i in range(T))])
        usable = [i for i, st in enumerate(self.starts) if st]
        if not usable:
            raise ValueError(f"no training video has the target visible in {T} consecutive frames after an "
                             f"earlier visible frame (tracking.sequence_length={T})")
        self.items = [v for v in usable for _ in range(cfg.tracking.samples_per_video)]

    def _jitter(self, rng: random.Random) -> tuple[float, float, float]:
        """(scale, x shift, y shift): shifts in units of the box's sqrt(w h)."""
        d = self.cfg.tracking
        scale = float(np.exp(rng.gauss(0.0, d.scale_jitter)))
        return scale, (rng.random() - 0.5) * d.center_jitter, (rng.random() - 0.5) * d.center_jitter

    def _error(self, rng: random.Random) -> tuple[float, float, float]:
        """The error model of a tracker's box on a support frame, as a jitter."""
        shift, size = self.cfg.tracking.support_error
        return float(np.exp(rng.gauss(0.0, size))), rng.gauss(0.0, shift), rng.gauss(0.0, shift)

    @staticmethod
    def _jittered(box: np.ndarray, jitter: tuple[float, float, float]) -> np.ndarray:
        scale, dx, dy = jitter
        w, h = box[2] * scale, box[3] * scale
        side = np.sqrt(box[2] * box[3])
        cx, cy = box[0] + box[2] / 2 + dx * side, box[1] + box[3] / 2 + dy * side
        return np.array([cx - w / 2, cy - h / 2, w, h])

    def target_support_frames(self, v: int, t: int, admitted: set | None = None) -> list[int]:
        """The K most recent grid frames before t with the target visible (and in ``admitted``,
        when given), oldest repeated to K; the latest visible frame before t if there is none."""
        d = self.cfg.data
        frames = [tau for tau in self.visible[v] if tau < t and tau % d.train_stride == 0
                  and (admitted is None or tau in admitted)][-d.train_num_support:]
        frames = frames or [max(tau for tau in self.visible[v] if tau < t)]
        return [frames[0]] * (d.train_num_support - len(frames)) + frames

    def __getitem__(self, i: int) -> dict:
        d, m = self.cfg.data, self.cfg.tracking
        v = self.items[i]
        video, visible = self.videos[v], self.visible[v]
        rng = random.Random(hash((self.seed, self.epoch, i)))
        t0 = rng.choice(self.starts[v])
        lo, hi = bisect.bisect_left(visible, t0 - m.max_gap), bisect.bisect_left(visible, t0)
        z = rng.choice(visible[lo:hi] or visible[hi - 1:hi])  # within max_gap, else the latest before t0
        template_box = _xywh(video, z)
        template = crop_frame(video.frames[z], crop_region(template_box, m.template_factor), m.template_size, "cpu", *self.norm)
        crops_of, frames = {}, []
        # the test-time gate's stand-in: frame 0 always enters, a later frame with chance support_admit
        admitted = {tau for tau in visible if tau == 0 or rng.random() < m.support_admit} if m.supports == "target" else None
        for t in range(t0, t0 + m.sequence_length):
            box = _xywh(video, t)
            jitter = self._jitter(rng)
            region = crop_region(self._jittered(box, jitter), m.search_factor)
            search = crop_frame(video.frames[t], region, m.search_size, "cpu", *self.norm)
            if m.supports == "target":
                index = self.target_support_frames(v, t, admitted)
                for tau in index:
                    if tau not in crops_of:
                        seen = self._jittered(_xywh(video, tau), self._error(rng))
                        crops_of[tau] = (crop_frame(video.frames[tau], crop_region(seen, m.template_factor),
                                                    m.template_size, "cpu", *self.norm), seen)
                crops = [crops_of[tau][0] for tau in index]
                boxes = [to_crop(crops_of[tau][1], region) for tau in index]
            else:
                index = causal_support(t, t + 1, d.train_num_support, d.train_stride)
                crops = []
                for tau in index:
                    b = _xywh(video, tau)
                    b = template_box if b is None else b
                    own = jitter if m.support_jitter == "shared" else self._jitter(rng)
                    crops.append(crop_frame(video.frames[tau], crop_region(self._jittered(b, own), m.search_factor),
                                            m.search_size, "cpu", *self.norm))
                boxes = [np.zeros(4)] * len(index)
            frames.append({"search": search, "support": torch.stack(crops),
                           "offsets": torch.tensor([tau - t for tau in index]),
                           "boxes": torch.tensor(np.stack(boxes), dtype=torch.float32),
                           "box": torch.tensor(to_crop(box, region), dtype=torch.float32)})
        out = {k: torch.stack([f[k] for f in frames]) for k in frames[0]}  # T first
        out["template"] = template
        return out

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
        if cfg.data.train_corrupt is not None:
            raise ValueError("data.train_corrupt is not supported by the tracking task yet (its training pairs "
                             "are cut by TrackingPairs, not ClipDataset); remove it from the config")
        return TrackingPairs(read_split(cfg.data, cfg.data.train_split), cfg)

    def loss(self, model, batch: dict, device: str) -> dict:
        """Every search frame of every sequence scored as its own pair (B * T of them)."""
        prompting = unwrap(model).prompting
        B, T = batch["search"].shape[:2]
        flat = lambda k: batch[k].flatten(0, 1).to(device)  # noqa: E731
        template = batch["template"].to(device)
        template = template[:, None].expand(-1, T, -1, -1, -1).flatten(0, 1)
        support, offsets, boxes = (flat("support"), flat("offsets"), flat("boxes")) if prompting else (None, None, None)
        out = model(template, flat("search"), support, offsets, boxes if unwrap(model).support_box else None)
        return tracking_loss(out, flat("box"))


__getattr__ = moved_names(__name__, {"TrackingSection": build, "build_tracker": build, "evaluate_tracking": evaluate, "track_videos": inference})  # old imports, for one release
