"""The tracking loop: an explicit per-video state, a functional ``start``/``step`` and a class
that the official GOT-10k toolkit runs (``init(image, box)``, ``update(image)``, ``track``).

Causal prompts through the core's ``SupportStream``: the search crop of every S-th frame (the
stride grid, frame 0 included) is run once through the unprompted backbone when a later refresh
reads it, at most K of them are kept. The first frame only gives the box, so prompts are asked
for from frame 1: they are computed at frame 1 and at every frame r with r % refresh_every == 0,
from the K most recent grid frames before r (``stpn.core.sampling.causal_support``), with
offsets tau - r; frames in between reuse them. Per frame: one joint pass of template + search
(+ prompts), plus one unprompted pass per needed grid frame and one predictor call per refresh.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..core.sampling import check_test_support
from ..core.streaming import SupportStream
from .model import STPNTracker, crop_frame, crop_region, decode, from_crop


@dataclass
class TrackState:
    """Everything the tracker remembers about one video."""

    template: torch.Tensor  # template tokens (1, prefix + n_t, D)
    box: np.ndarray  # last box x, y, w, h (frame pixels, inside the image)
    width: int
    height: int
    stream: SupportStream | None  # the support frames' prompts (None: the baseline)
    t: int = 1  # index of the next frame
    score: float = 1.0  # heat-map peak of the last frame


def check_box(box, width: int, height: int, where: str = "the first frame") -> np.ndarray:
    """A valid x,y,w,h box inside the image, or a clear error."""
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    if b.shape != (4,) or not np.isfinite(b).all():
        raise ValueError(f"the box must be 4 finite numbers x,y,w,h, got {box!r}")
    x, y, w, h = b
    if w <= 0 or h <= 0:
        raise ValueError(f"the box {b.tolist()} has zero size (w and h must be > 0)")
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ValueError(f"the box {b.tolist()} lies outside {where} ({width}x{height})")
    return b


def sanitize(box: np.ndarray, last: np.ndarray, width: int, height: int, min_side: float = 2.0):
    """Clip a predicted box to the image. A non-finite box, or one that is less than ``min_side``
    wide or high once clipped (the target left the image or shrank to nothing), is replaced by
    the last box moved inside the image. Returns (box, usable)."""
    def clip(b):
        x1, y1 = np.clip(b[0], 0, width), np.clip(b[1], 0, height)
        x2, y2 = np.clip(b[0] + b[2], 0, width), np.clip(b[1] + b[3], 0, height)
        return np.array([x1, y1, x2 - x1, y2 - y1])

    if np.isfinite(box).all():
        c = clip(box)
        if c[2] >= min_side and c[3] >= min_side:
            return c, True
    w, h = min(max(last[2], min_side), width), min(max(last[3], min_side), height)
    x, y = np.clip(last[0], 0, width - w), np.clip(last[1], 0, height - h)
    return np.array([x, y, w, h]), False


@torch.no_grad()
def start(model: STPNTracker, frame: np.ndarray, box, num_support: int = 4, stride: int = 4,
          refresh_every: int = 4, device: str = "cpu", support_frame: np.ndarray | None = None) -> TrackState:
    """A fresh state from the first frame (H, W, 3) uint8 and the target's x,y,w,h box
    (``support_frame`` as in ``step``)."""
    check_test_support("causal", num_support, stride, refresh_every)
    H, W = frame.shape[:2]
    box = check_box(box, W, H)
    template = crop_frame(frame, crop_region(box, model.template_factor), model.template_size, device, model.mean, model.std)
    stream = SupportStream("causal", num_support, stride, refresh_every) if model.prompting else None
    state = TrackState(model.embed_template(template[None]), box, W, H, stream)
    if stream is not None:
        search = crop_frame(frame if support_frame is None else support_frame, crop_region(box, model.search_factor),
                            model.search_size, device, model.mean, model.std)
        stream.observe(model.stpn, 0, lambda i: search[None])
    return state


@torch.no_grad()
def step(model: STPNTracker, frame: np.ndarray, state: TrackState, support_frame: np.ndarray | None = None,
         support_region: np.ndarray | None = None) -> tuple[np.ndarray, float, TrackState]:
    """Track into the next frame: returns (x,y,w,h box inside the image, score, state).
    The stream keeps this frame's search crop as support; ``support_frame``: crop this frame
    instead (e.g. the uncorrupted one, to corrupt the key frames only); ``support_region``: crop
    this region (x, y, w, h) instead of the search region (a support-swap test)."""
    if frame.shape[:2] != (state.height, state.width):
        raise ValueError(f"frame {state.t} is {frame.shape[1]}x{frame.shape[0]}, the video is "
                         f"{state.width}x{state.height}")
    t = state.t
    region = crop_region(state.box, model.search_factor)
    search = crop_frame(frame, region, model.search_size, state.template.device, model.mean, model.std)
    if support_frame is not None and support_frame.shape != frame.shape:
        raise ValueError(f"support frame {t} has shape {support_frame.shape}, the frame {frame.shape}")
    image_of = lambda i: search[None]  # noqa: E731 - the stream asks only when it keeps this frame
    if support_frame is not None or support_region is not None:
        image_of = lambda i: crop_frame(  # noqa: E731
            frame if support_frame is None else support_frame, region if support_region is None else support_region,
            model.search_size, state.template.device, model.mean, model.std)[None]
    prompts = None if state.stream is None else state.stream.prompts_at(model.stpn, t, image_of)
    out = model.head_forward(state.template, search[None], prompts)
    cxcywh, score = decode(out)
    box, _ = sanitize(from_crop(cxcywh[0].double().cpu().numpy(), region), state.box, state.width, state.height)
    state.box, state.score, state.t = box, float(score[0]), t + 1
    return box, state.score, state


class Tracker:
    """A tracker object as the GOT-10k toolkit expects (``got10k.trackers.Tracker``'s interface):
    ``init(image, box)``, ``update(image) -> [x, y, w, h]`` on PIL images or arrays, and
    ``track(img_files, box)`` -> (boxes, seconds per frame), so
    ``ExperimentGOT10k(root, subset='val').run(Tracker(model))`` works."""

    def __init__(self, model: STPNTracker, num_support: int = 4, stride: int = 4, refresh_every: int = 4,
                 device: str = "cpu", name: str | None = None):
        self.model = model.eval().to(device)
        self.num_support, self.stride, self.refresh_every, self.device = num_support, stride, refresh_every, device
        self.name = name or ("STPN" if model.prompting else "ViTTrack")
        self.is_deterministic = True
        self.state: TrackState | None = None

    @staticmethod
    def _array(image) -> np.ndarray:
        if isinstance(image, np.ndarray):
            return image
        return np.asarray(image.convert("RGB"))

    def init(self, image, box) -> None:
        self.state = start(self.model, self._array(image), box, self.num_support, self.stride, self.refresh_every,
                           self.device)

    def update(self, image) -> np.ndarray:
        if self.state is None:
            raise RuntimeError("call init(image, box) before update(image)")
        box, _, self.state = step(self.model, self._array(image), self.state)
        return box

    def track(self, img_files, box, visualize: bool = False):
        from PIL import Image
        boxes = np.zeros((len(img_files), 4))
        boxes[0] = box
        times = np.zeros(len(img_files))
        for f, path in enumerate(img_files):
            image = Image.open(path).convert("RGB")
            start_time = time.perf_counter()
            if f == 0:
                self.init(image, box)
            else:
                boxes[f] = self.update(image)
            times[f] = time.perf_counter() - start_time
        return boxes, times


def track_frames(model: STPNTracker, frames, box, num_support: int = 4, stride: int = 4, refresh_every: int = 4,
                 device: str = "cpu", support_frames=None):
    """Track over an iterable of (H, W, 3) uint8 frames from a first box; yields
    (frame, box, score, seconds) per frame, the first frame with the given box.
    ``support_frames``: an iterable beside ``frames`` whose crops the support stream keeps."""
    state = None
    supports = iter(support_frames) if support_frames is not None else None
    for t, frame in enumerate(frames):
        t0 = time.perf_counter()
        support = None if supports is None else next(supports)
        if state is None:
            state = start(model, frame, box, num_support, stride, refresh_every, device, support)
            out, score = state.box, 1.0
        else:
            out, score, state = step(model, frame, state, support)
        yield frame, out, score, time.perf_counter() - t0
