"""The tracking loop: an explicit per-video state, a functional ``start``/``step`` and a class
that the official GOT-10k toolkit runs (``init(image, box)``, ``update(image)``, ``track``).

Target supports (``model.supports == "target"``, the default): a ``TargetMemory`` of at most K
supports, each a crop of a past frame centred on the tracker's box there (at the template's
scale and size), embedded once by the unprompted backbone, with that box. Frame 0 (the given
box) always enters. A later frame t enters only when it is on the stride grid (t % S == 0) and
the tracker is confident on it: heat-map peak > ``confidence`` (default 0.5; a NaN score is
not confident), box usable (finite, >= 2 px once clipped). The memory keeps the K most recent
entries; frame 0 stays until K later frames have entered (rule: most recent confident). While
it holds fewer than K, the oldest entry is repeated. So when every later frame is rejected the
supports are frame 0's crop: the tracker falls back to the template alone. Prompts are computed
at every frame, because the support boxes are embedded in the coordinates of that frame's search
crop (one predictor call; the support pass runs only when a frame enters).

Search supports (``"search"``, the earlier design): causal prompts through the core's
``SupportStream``: the search crop of every S-th frame (the stride grid, frame 0 included) is
run once through the unprompted backbone when a later refresh reads it, at most K of them are
kept; prompts at frame 1 and at every frame r with r % refresh_every == 0, from the K most
recent grid frames before r (``stpn.core.sampling.causal_support``), with offsets tau - r.
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.sampling import check_test_support
from ..core.streaming import SupportStream
from .model import STPNTracker, crop_frame, crop_region, decode, from_crop, to_crop


@dataclass
class TargetMemory:
    """At most ``num_support`` target supports: (frame, support tokens per stage, x,y,w,h box).
    See the module's docstring for the rule; ``admitted`` / ``rejected`` count the decisions."""

    num_support: int
    stride: int = 1
    confidence: float = 0.5
    entries: deque = field(default_factory=deque)
    grids: dict | None = None
    admitted: int = 0
    rejected: int = 0
    embedded: int = 0

    def wants(self, t: int, score: float, usable: bool) -> bool:
        """Does frame t enter (on the stride grid, confident, a usable box)?"""
        ok = t % self.stride == 0 and usable and not math.isnan(score) and score > self.confidence
        if t % self.stride == 0:
            self.admitted += ok
            self.rejected += not ok
        return ok

    def add(self, model: STPNTracker, t: int, frame: np.ndarray, box: np.ndarray, device) -> None:
        crop = crop_frame(frame, crop_region(box, model.support_factor), model.support_size, device, model.mean, model.std)
        tokens, self.grids = model.stpn.encode_support(crop[None, None])
        self.entries.append((t, {s: v[:, 0] for s, v in tokens.items()}, np.asarray(box, dtype=np.float64)))
        self.embedded += 1
        while len(self.entries) > self.num_support:
            self.entries.popleft()

    def prompts(self, model: STPNTracker, t: int, region: np.ndarray):
        """Prompts for frame t whose search crop is ``region``: the K entries (oldest repeated up
        to K), boxes mapped into the crop, offsets tau - t."""
        entries = list(self.entries)
        entries = [entries[0]] * (self.num_support - len(entries)) + entries
        first = entries[0][1]
        tokens = {s: torch.stack([e[1][s] for e in entries], dim=1) for s in first}
        device = next(iter(first.values())).device
        boxes = torch.tensor(np.stack([to_crop(e[2], region) for e in entries]), dtype=torch.float32, device=device)[None]
        offsets = torch.tensor([[e[0] - t for e in entries]], device=device)
        return model.support_prompts(tokens, self.grids, boxes, offsets)

    @property
    def support_index(self) -> list[int]:
        return [e[0] for e in self.entries]


@dataclass
class TrackState:
    """Everything the tracker remembers about one video."""

    template: torch.Tensor  # template tokens (1, prefix + n_t, D)
    box: np.ndarray  # last box x, y, w, h (frame pixels, inside the image)
    width: int
    height: int
    stream: SupportStream | TargetMemory | None  # where the prompts come from (None: the baseline)
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
          refresh_every: int = 4, device: str = "cpu", support_frame: np.ndarray | None = None,
          confidence: float | None = None) -> TrackState:
    """A fresh state from the first frame (H, W, 3) uint8 and the target's x,y,w,h box
    (``support_frame`` as in ``step``; ``confidence``: the target memory's gate, by default the
    model's own, i.e. its run's ``tracking.confidence``)."""
    check_test_support("causal", num_support, stride, refresh_every)
    confidence = getattr(model, "confidence", 0.5) if confidence is None else confidence
    if not 0 <= confidence < 1:
        raise ValueError(f"confidence must be in [0, 1), got {confidence}")
    H, W = frame.shape[:2]
    box = check_box(box, W, H)
    template = crop_frame(frame, crop_region(box, model.template_factor), model.template_size, device, model.mean, model.std)
    target = model.prompting and getattr(model, "supports", "search") == "target"
    stream = None
    if model.prompting:
        stream = (TargetMemory(num_support, stride, confidence) if target
                  else SupportStream("causal", num_support, stride, refresh_every))
    state = TrackState(model.embed_template(template[None]), box, W, H, stream)
    if target:
        stream.add(model, 0, frame if support_frame is None else support_frame, box, device)
    elif stream is not None:
        search = crop_frame(frame if support_frame is None else support_frame, crop_region(box, model.search_factor),
                            model.search_size, device, model.mean, model.std)
        stream.observe(model.stpn, 0, lambda i: search[None])
    return state


@torch.no_grad()
def step(model: STPNTracker, frame: np.ndarray, state: TrackState, support_frame: np.ndarray | None = None,
         support_region: np.ndarray | None = None, support_box: np.ndarray | None = None
         ) -> tuple[np.ndarray, float, TrackState]:
    """Track into the next frame: returns (x,y,w,h box inside the image, score, state).
    The stream keeps this frame's search crop as support; ``support_frame``: crop this frame
    instead (e.g. the uncorrupted one, to corrupt the key frames only); ``support_region``: search
    supports: crop this region (x0, y0, side) instead of the search region; ``support_box``:
    target supports: if this frame enters the memory, keep this x,y,w,h box (and its crop)
    instead of the prediction (both for the support-swap test)."""
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
    memory = state.stream if isinstance(state.stream, TargetMemory) else None
    if memory is not None:
        prompts = memory.prompts(model, t, region)
    else:
        prompts = None if state.stream is None else state.stream.prompts_at(model.stpn, t, image_of)
    out = model.head_forward(state.template, search[None], prompts)
    cxcywh, score = decode(out)
    box, usable = sanitize(from_crop(cxcywh[0].double().cpu().numpy(), region), state.box, state.width, state.height)
    state.box, state.score, state.t = box, float(score[0]), t + 1
    if memory is not None and memory.wants(t, state.score, usable):
        kept = box if support_box is None else check_box(support_box, state.width, state.height, f"frame {t}")
        memory.add(model, t, frame if support_frame is None else support_frame, kept, state.template.device)
    return box, state.score, state


class Tracker:
    """A tracker object as the GOT-10k toolkit expects (``got10k.trackers.Tracker``'s interface):
    ``init(image, box)``, ``update(image) -> [x, y, w, h]`` on PIL images or arrays, and
    ``track(img_files, box)`` -> (boxes, seconds per frame), so
    ``ExperimentGOT10k(root, subset='val').run(Tracker(model))`` works."""

    def __init__(self, model: STPNTracker, num_support: int = 4, stride: int = 4, refresh_every: int = 4,
                 device: str = "cpu", name: str | None = None, confidence: float | None = None):
        self.model = model.eval().to(device)
        self.num_support, self.stride, self.refresh_every, self.device = num_support, stride, refresh_every, device
        self.confidence = confidence
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
                           self.device, confidence=self.confidence)

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
                 device: str = "cpu", support_frames=None, confidence: float | None = None):
    """Track over an iterable of (H, W, 3) uint8 frames from a first box; yields
    (frame, box, score, seconds) per frame, the first frame with the given box.
    ``support_frames``: an iterable beside ``frames`` whose crops the support stream keeps;
    ``confidence``: the target memory's gate (default: the model's)."""
    state = None
    supports = iter(support_frames) if support_frames is not None else None
    for t, frame in enumerate(frames):
        t0 = time.perf_counter()
        support = None if supports is None else next(supports)
        if state is None:
            state = start(model, frame, box, num_support, stride, refresh_every, device, support, confidence)
            out, score = state.box, 1.0
        else:
            out, score, state = step(model, frame, state, support)
        yield frame, out, score, time.perf_counter() - t0
