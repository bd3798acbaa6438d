"""Backbone pre-training: the backbone + a linear head classify crops around annotated objects.

The paper's detectors start from an ImageNet-pretrained backbone, whose pooled tokens already
say what an object is; STPN's predictor reads the class of a deteriorated key frame's objects
off such tokens of its neighbours. Where no such weights exist (a tiny backbone, a new domain),
this task trains the backbone on square crops at the frame's own scale (the scale the detector
sees) around every annotated object of the training split, deteriorated frames included (as
ImageNet holds blurred and dark photos). A detector then starts from it with ``model.weights=RUN/model.safetensors``.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.backbones import create_backbone
from ..core.weights import load_backbone_weights
from ..data.clips import VideoItems
from ..data.splits import deteriorated_frames, read_split, sidecar_path
from ..data.types import Video
from ..engine.config import Config
from ..engine.tasks import Section, Task, normalization_of


class ObjectCrops(VideoItems):
    """``crop_size`` squares centred on the annotated (visible) objects of ``videos``, one item
    per object and (every ``key_stride``-th) frame, label 0-based. ``jitter`` shifts the centre by up to +-jitter pixels and flips half the crops, drawn from
    (seed, epoch, item); ``jitter=0`` gives centred, unflipped crops."""

    def __init__(self, videos: list[Video], crop_size: int, key_stride: int = 1, jitter: float = 0.0, seed: int = 0,
                 mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
        if crop_size < 1:
            raise ValueError(f"crop_size must be >= 1, got {crop_size}")
        self.videos, self.crop_size, self.jitter, self.seed, self.epoch = videos, crop_size, jitter, seed, 0
        self.mean, self.std = tuple(mean), tuple(std)
        self.items: list[tuple[int, int, int]] = []  # (video, frame, object)
        for v, video in enumerate(videos):
            if video.targets is None:
                raise ValueError(f"video {video.name} has no annotations: object crops need boxes and labels")
            for t in range(0, len(video), key_stride):
                tg = video.targets[t]
                self.items += [(v, t, k) for k in range(len(tg)) if tg.visible[k]]
        if not self.items:
            raise ValueError(f"no annotated objects to crop in {len(videos)} videos")

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        v, t, k = self.items[i]
        video = self.videos[v]
        tg = video.targets[t]
        x1, y1, x2, y2 = (float(c) for c in tg.boxes[k])
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        flip = False
        if self.jitter:
            rng = random.Random(hash((self.seed, self.epoch, i)))
            cx, cy = cx + rng.uniform(-self.jitter, self.jitter), cy + rng.uniform(-self.jitter, self.jitter)
            flip = rng.random() < 0.5
        return square_crop(np.asarray(video.frames[t]), cx, cy, self.crop_size, flip, self.mean, self.std), int(tg.labels[k]) - 1

    @staticmethod
    def collate(samples) -> dict:
        return {"images": torch.stack([s[0] for s in samples]), "labels": torch.tensor([s[1] for s in samples])}


def square_crop(frame: np.ndarray, cx: float, cy: float, size: int, flip: bool = False,
         mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)) -> torch.Tensor:
    """(3, size, size) square of ``frame`` (H, W, 3 uint8) centred near (cx, cy), moved inside the
    frame, normalised with ``mean``/``std``; a frame smaller than ``size`` is padded with the mean
    colour (0)."""
    H, W = frame.shape[:2]
    x0 = math.floor(min(max(cx - size / 2, 0), max(W - size, 0)) + 0.5)
    y0 = math.floor(min(max(cy - size / 2, 0), max(H - size, 0)) + 0.5)
    x = torch.from_numpy(np.array(frame[y0:y0 + size, x0:x0 + size], copy=True)).permute(2, 0, 1).float().div_(255)
    x = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    if flip:
        x = x.flip(2)
    return F.pad(x, (0, size - x.shape[2], 0, size - x.shape[1]))


class ObjectClassifier(nn.Module):
    """A backbone (``PromptedSwin``/``PromptedViT``, unprompted) + mean pooling of its last
    stage + Linear. Its ``backbone.*`` weights load into a detector's or tracker's backbone."""

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.dims[-1], num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images)[-1].mean((2, 3)))


@dataclass
class ClassificationSection(Section):
    """``classification:`` in a config."""

    num_classes: int = 30
    crop_size: int = 48  # side of the square crops around objects, at the frame's scale

    def problems(self):
        return [(k, m) for ok, k, m in ((self.crop_size >= 1, "crop_size", "must be >= 1"),
                                        (self.num_classes >= 1, "num_classes", "must be >= 1")) if not ok]


class ClassificationTask(Task):
    """Backbone pre-training: classify crops around the annotated objects of a VID-layout split."""

    name, what, data_formats, Section = "classification", "classifier", ("vid", "ytvis"), ClassificationSection

    def build_model(self, cfg: Config) -> ObjectClassifier:
        m = cfg.model
        backbone = create_backbone(m.backbone, pretrained=m.pretrained, **m.backbone_kwargs)
        if m.weights:
            load_backbone_weights(backbone, m.weights)
        return ObjectClassifier(backbone, cfg.classification.num_classes)

    def train_dataset(self, cfg: Config) -> ObjectCrops:
        if cfg.data.train_corrupt is not None:
            raise ValueError("data.train_corrupt is not supported by the classification task (object crops, no "
                             "supports); remove it from the config")
        return crops(cfg, cfg.data.train_split, jitter=cfg.classification.crop_size / 8)

    def evaluate(self, model, cfg: Config, out, mode=None, console=None) -> dict:
        from ..data.types import write_json
        metrics = evaluate_classifier(model, cfg)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "metrics.json", metrics)
        return metrics

    def print_metrics(self, metrics: dict, cfg: Config, console=None) -> None:
        f = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
        from rich.console import Console
        from rich.table import Table
        table = Table(title=f"{cfg.data.val_split}: object classification, top-1 accuracy (%)")
        for col in ("all crops", "clean frames", "deteriorated frames", "crops"):
            table.add_column(col, justify="right")
        table.add_row(f(metrics["accuracy_all"]), f(metrics.get("accuracy_clean")),
                      f(metrics.get("accuracy_deteriorated")), str(metrics["crops"]))
        (console or Console(width=100)).print(table)

    def loss(self, model, batch: dict, device: str) -> dict:
        logits = model(batch["images"].to(device))
        return {"loss_classifier": F.cross_entropy(logits, batch["labels"].to(device))}


def crops(cfg: Config, split: str, jitter: float = 0.0) -> ObjectCrops:
    """Object crops of every annotated frame of a split (generated first when the config says so)."""
    d = cfg.data
    return ObjectCrops(read_split(d, split), cfg.classification.crop_size, d.key_stride, jitter, cfg.run.seed,
                       *normalization_of(cfg))


@torch.no_grad()
def evaluate_classifier(model: ObjectClassifier, cfg: Config, batch_size: int = 64) -> dict:
    """Top-1 accuracy on centred crops of the validation split: all frames, and the clean and
    deteriorated frames apart when the data has a sidecar."""
    d = cfg.data
    model.eval()
    device = next(model.parameters()).device
    data = crops(cfg, d.val_split)
    bad = {(name, t) for name, ts in deteriorated_frames(d, d.val_split).items() for t in ts} \
        if sidecar_path(d, d.val_split).is_file() else set()
    right = []
    for i in range(0, len(data), batch_size):
        batch = ObjectCrops.collate([data[j] for j in range(i, min(i + batch_size, len(data)))])
        right += (model(batch["images"].to(device)).argmax(1).cpu() == batch["labels"]).tolist()
    right = np.array(right, dtype=bool)
    is_bad = np.array([(data.videos[v].name, t) in bad for v, t, _ in data.items], dtype=bool)
    metrics = {"accuracy_all": float(right.mean()), "crops": len(right)}
    if bad:
        metrics.update(accuracy_clean=float(right[~is_bad].mean()) if (~is_bad).any() else None,
                       accuracy_deteriorated=float(right[is_bad].mean()) if is_bad.any() else None,
                       crops_deteriorated=int(is_bad.sum()))
    return metrics
