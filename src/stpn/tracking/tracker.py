"""The tracking loop: an explicit per-video state, a functional ``start``/``step`` and a class
that the official GOT-10k toolkit runs (``init(image, box)``, ``update(image)``, ``track``).

Causal prompts: the search crop of every S-th frame (the stride grid, frame 0 included) is run
once through the unprompted backbone and kept, at most K of them. Every ``refresh_every``
frames (and at frame 1) the prompts are recomputed from the K most recent grid frames before
the refresh frame r (``stpn.core.sampling.causal_support``), with offsets tau - r; frames in
between reuse them. Per frame: one joint pass of template + search (+ prompts), plus one
unprompted pass per grid frame and one predictor call per refresh.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.sampling import causal_support, check_test_support
from .model import STPNTracker, crop_frame, crop_region, decode, from_crop


@dataclass
class TrackState:
    """Everything the tracker remembers about one video."""

    template: torch.Tensor  # template tokens (1, prefix + n_t, D)
    box: np.ndarray  # last box x, y, w, h (frame pixels, inside the image)
    width: int
    height: int
    num_support: int
    stride: int
    refresh_every: int
    t: int = 1  # index of the next frame
    cache: deque = field(default_factory=deque)  # (frame index, {stage: tokens (1, n, d)})
    grids: dict | None = None
    prompts: object = None
    support_index: list[int] | None = None  # frames behind the current prompts
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
          refresh_every: int = 4, device: str = "cpu") -> TrackState:
    """A fresh state from the first frame (H, W, 3) uint8 and the target's x,y,w,h box."""
    check_test_support("causal", num_support, stride, refresh_every)
    H, W = frame.shape[:2]
    box = check_box(box, W, H)
    template = crop_frame(frame, crop_region(box, model.template_factor), model.template_size, device)
    state = TrackState(model.embed_template(template[None]), box, W, H, num_support, stride, refresh_every,
                       cache=deque(maxlen=num_support))
    if model.prompting:
        _remember(model, state, 0, crop_frame(frame, crop_region(box, model.search_factor), model.search_size, device))
    return state


def _remember(model: STPNTracker, state: TrackState, t: int, search: torch.Tensor) -> None:
    tokens, state.grids = model.stpn.encode_support(search[None, None])
    state.cache.append((t, {s: v[:, 0] for s, v in tokens.items()}))


@torch.no_grad()
def step(model: STPNTracker, frame: np.ndarray, state: TrackState) -> tuple[np.ndarray, float, TrackState]:
    """Track into the next frame: returns (x,y,w,h box inside the image, score, state)."""
    if frame.shape[:2] != (state.height, state.width):
        raise ValueError(f"frame {state.t} is {frame.shape[1]}x{frame.shape[0]}, the video is "
                         f"{state.width}x{state.height}")
    t = state.t
    device = state.template.device
    if model.prompting and (state.prompts is None or t % state.refresh_every == 0):
        index = causal_support(t, t + 1, state.num_support, state.stride)
        cached = dict(state.cache)
        missing = [i for i in index if i not in cached]
        if missing:
            raise RuntimeError(f"the support cache lacks frames {missing} at frame {t}")
        tokens = {s: torch.stack([cached[i][s] for i in index], dim=1) for s in cached[index[0]]}
        offsets = torch.tensor([[i - t for i in index]], device=device)
        state.prompts = model.stpn.predict_prompts(tokens, state.grids, offsets)
        state.support_index = index
    region = crop_region(state.box, model.search_factor)
    search = crop_frame(frame, region, model.search_size, device)
    out = model.head_forward(state.template, search[None], state.prompts)
    cxcywh, score = decode(out)
    box, _ = sanitize(from_crop(cxcywh[0].double().cpu().numpy(), region), state.box, state.width, state.height)
    if model.prompting and t % state.stride == 0:
        _remember(model, state, t, search)
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
                 device: str = "cpu"):
    """Track over an iterable of (H, W, 3) uint8 frames from a first box; yields
    (frame, box, score, seconds) per frame, the first frame with the given box."""
    state = None
    for t, frame in enumerate(frames):
        t0 = time.perf_counter()
        if state is None:
            state = start(model, frame, box, num_support, stride, refresh_every, device)
            out, score = state.box, 1.0
        else:
            out, score, state = step(model, frame, state)
        yield frame, out, score, time.perf_counter() - t0
