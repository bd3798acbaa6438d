"""The tracking task for the engine: model, template/search pairs with causal supports, loss,
and evaluation on a GOT-10k-layout split."""
from __future__ import annotations

import tempfile

import bisect
import itertools
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ..progress import track

from ..core.sampling import SupportConfig, causal_support
from ..data.clips import VideoItems
from ..data.got10k import write_got10k_results
from ..data.splits import read_sidecar, read_split, sidecar_path
from ..data.types import Video, write_json
from ..engine.config import Config
from ..engine.tasks import Section, Task, normalization_of
from ..engine.trainer import resolve_device, unwrap
from .model import STPNTracker, crop_frame, crop_region, to_crop, tracking_loss
from .tracker import track_frames


@dataclass
class TrackingSection(Section):
    """``tracking:`` in a config."""

    template_size: int = 128
    search_size: int = 256
    template_factor: float = 2.0  # crop side / sqrt(w h) of the target
    search_factor: float = 4.0
    head_channels: int = 64
    max_gap: int = 50  # training: template frame at most this many frames before the search frame
    samples_per_video: int = 1  # training: template/search pairs per video and epoch
    center_jitter: float = 1.0  # training: search-centre shift, up to +-center_jitter/2 x sqrt(w h)
    scale_jitter: float = 0.25  # training: search-size jitter, exp(N(0, scale_jitter))
    # training: "shared" cuts every support crop with the search crop's jitter (each around its own
    # frame's box), so that supports sit where the tracking loop puts them, on the same recent
    # positions as the search region; "independent" jitters each crop on its own
    support_jitter: str = "shared"

    def problems(self):
        return [(k, m) for ok, k, m in (
            (self.template_size >= 1 and self.search_size >= 1, "search_size", "crop sizes must be >= 1"),
            (self.max_gap >= 1, "max_gap", "must be >= 1"),
            (self.samples_per_video >= 1, "samples_per_video", "must be >= 1"),
            (self.support_jitter in ("shared", "independent"), "support_jitter", "must be shared or independent"))
            if not ok]


def build_tracker(cfg: Config) -> STPNTracker:
    m, o = cfg.model, cfg.tracking
    model = STPNTracker(m.backbone, prompting=m.prompting, predictor=m.predictor, num_prompts=m.num_prompts,
                        prompt_depth=m.prompt_depth, pretrained=m.pretrained, support_grad=m.support_grad,
                        template_size=o.template_size, search_size=o.search_size, template_factor=o.template_factor,
                        search_factor=o.search_factor, head_channels=o.head_channels,
                        backbone_kwargs=m.backbone_kwargs, predictor_kwargs=m.predictor_kwargs, mean=m.mean, std=m.std)
    if m.weights:
        from ..core.weights import load_backbone_weights
        load_backbone_weights(model.stpn.backbone, m.weights)
    return model


def _xywh(video: Video, t: int) -> np.ndarray | None:
    """The target's x,y,w,h in frame t, or None where it is absent."""
    tg = video.targets[t]
    if not len(tg) or not tg.visible[0]:
        return None
    x1, y1, x2, y2 = (float(v) for v in tg.boxes[0])
    return np.array([x1, y1, x2 - x1, y2 - y1]) if x2 > x1 and y2 > y1 else None


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

    def evaluate(self, model, cfg: Config, out, mode=None, console=None) -> dict:
        if mode not in (None, "causal"):
            raise ValueError(f"a tracker's supports are always causal (past frames only), not {mode}")
        return evaluate_tracking(model, cfg, out, console)

    robustness_metric = "AO"

    def robustness_score(self, model, cfg, videos, support_videos=None) -> float:
        from ..evaluation.got10k import evaluate_got10k
        device = next(model.parameters()).device.type
        with tempfile.TemporaryDirectory() as tmp:
            track_videos(model, cfg, videos, Path(tmp), device, support_videos)
            return evaluate_got10k(videos, Path(tmp))["ao"]

    def print_metrics(self, metrics: dict, cfg: Config, console=None) -> None:
        from .commands import print_metrics
        print_metrics(metrics, f"{cfg.data.val_split}: GOT-10k metrics (causal prompts, K={cfg.data.test_num_support}, "
                               f"S={cfg.data.test_stride})", console)

    def demo_config(self, out, quick, prompting, seed=0):
        from .commands import demo_config
        return demo_config(out, quick, prompting, seed)

    def demo_pretrain_config(self, out, quick, seed=0):
        from .commands import pretrain_config
        return pretrain_config(out, quick, seed)

    demo_metrics = ("ao_all", "ao_deteriorated", "sr50_all")

    def demo_row(self, metrics: dict) -> dict:
        return {"ao_all": metrics["ao_all"], "ao_deteriorated": metrics.get("ao_deteriorated"),
                "sr50_all": metrics["sr50_all"], "fps": metrics["fps"]}

    def demo_table(self, report: dict, console) -> None:
        from .commands import demo_table
        demo_table(report, console)

    def demo_figures(self, report, results, configs, out):
        from .commands import demo_figures
        return demo_figures(results, configs, out)

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


def evaluate_tracking(model: STPNTracker, cfg: Config, out: Path, console=None) -> dict:
    """Track every validation sequence from its first box, write the GOT-10k results layout with
    the measured seconds per frame, score it (all frames and, with a sidecar, the deteriorated
    ones). Returns the metrics; writes ``out/metrics.json`` and ``out/success.png``."""
    from ..evaluation.got10k import evaluate_got10k, plot_success
    d = cfg.data
    videos = read_split(d, d.val_split)
    results = out / "results"
    device = resolve_device(cfg.run.device)
    model.eval().to(device)
    track_videos(model, cfg, track(videos, "tracking", console=console), results, device)
    metrics = {"all": evaluate_got10k(videos, results)}
    sidecar = sidecar_path(d, d.val_split)
    if sidecar.is_file():
        metrics["deteriorated"] = evaluate_got10k(videos, results, frames=read_sidecar(sidecar))
    metrics.update(ao_all=metrics["all"]["ao"], sr50_all=metrics["all"]["sr50"], fps=metrics["all"]["fps"])
    if "deteriorated" in metrics:
        metrics["ao_deteriorated"] = metrics["deteriorated"]["ao"]
    plot_success(metrics["all"], out / "success.png", label="STPN" if model.prompting else "baseline")
    write_json(out / "metrics.json", metrics)
    return metrics
