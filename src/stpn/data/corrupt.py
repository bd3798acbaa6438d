"""Corruption suites for any dataset at evaluation time, severities 1..5 (0: none):

- ``IMAGENET_C``: the 15 corruptions of ImageNet-C / COCO-C by their names (``stpn.data.imagenet_c``);
- ``VIDEO``: ``frame_drop`` (a 30 fps video shown at 20, 15, 12, 9, 6 fps: a frame repeats the
  last one kept), ``h264`` (encoded with libx264 through PyAV at 0.2, 0.1, 0.05, 0.025, 0.0125
  bits per pixel at 25 fps, decoded back) and ``temporal_average`` (each frame the mean of the
  last 2, 3, 4, 6, 8 frames: ghosting);
- ``LEGACY``: this project's first suite (``linear_motion_blur``, ``defocus``, ``occlusion``,
  ``noise``, ``jpeg``), the default of ``stpn robustness``.

``corrupt(frame, kind, severity, seed)`` (image kinds) is deterministic: the same frame, kind,
severity and seed give the same pixels. ``corrupt_video`` seeds each frame from (seed, video
name, index), so a frame is corrupted the same way however it is reached; the video kinds read
the video's other frames (h264 encodes the whole video once, on first access).
"""
from __future__ import annotations

import io
import math
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from .corruption_names import FAMILIES, IMAGENET_C  # noqa: F401 - also stpn.data.corrupt's
from .types import MappedFrames, Video

LEGACY = ("linear_motion_blur", "defocus", "occlusion", "noise", "jpeg")
CORRUPTIONS = LEGACY  # the default suite of ``stpn robustness``
VIDEO = ("frame_drop", "h264", "temporal_average")
ALL = LEGACY + IMAGENET_C + VIDEO
VIDEO_LEVELS = {"frame_drop": (20, 15, 12, 9, 6),  # frames per second shown, of 30
                "h264": (0.2, 0.1, 0.05, 0.025, 0.0125),  # bits per pixel
                "temporal_average": (2, 3, 4, 6, 8)}  # frames averaged
SEVERITY = {
    "linear_motion_blur": (5, 9, 13, 19, 25),  # blur length in pixels
    "defocus": (1.5, 2.5, 3.5, 5.0, 7.0),  # Gaussian radius in pixels
    "occlusion": (0.05, 0.10, 0.20, 0.30, 0.40),  # fraction of the frame covered
    "noise": (8, 14, 20, 28, 38),  # Gaussian noise std (0-255 scale)
    "jpeg": (40, 25, 15, 10, 5),  # JPEG quality
}


def motion_blur(img: np.ndarray, length: int, angle: float) -> np.ndarray:
    """Linear motion blur of a float (H, W, 3) image: the mean of ``length`` copies shifted
    along the direction ``angle`` (radians)."""
    out = np.zeros_like(img)
    for o in np.linspace(-(length - 1) / 2, (length - 1) / 2, length):
        out += np.roll(img, (int(round(o * np.sin(angle))), int(round(o * np.cos(angle)))), axis=(0, 1))
    return out / length


def gaussian_blur(img: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur (PIL) of an (H, W, 3) image; returns float32."""
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    return np.asarray(pil.filter(ImageFilter.GaussianBlur(radius=radius)), dtype=np.float32)


def corrupt(frame: np.ndarray, kind: str, severity: int, seed: int | tuple = 0) -> np.ndarray:
    """Corrupt an (H, W, 3) uint8 frame at severity 1..5 (an image kind: ``LEGACY`` or ``IMAGENET_C``)."""
    if kind in VIDEO:
        raise ValueError(f"{kind!r} corrupts a video, not a frame: use corrupt_video")
    if kind not in ALL:
        raise ValueError(f"unknown corruption {kind!r}; choose one of {ALL}")
    if severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"severity must be 1..5, got {severity!r}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be an (H, W, 3) uint8 array, got {frame.shape} {frame.dtype}")
    rng = np.random.default_rng(seed)
    if kind in IMAGENET_C:
        import torch

        from .imagenet_c import apply
        g = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
        x = torch.from_numpy(np.array(frame, copy=True)).permute(2, 0, 1).float() / 255  # frames may be read-only views
        out = apply(x, kind, severity, g)
        return (out * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    level = SEVERITY[kind][severity - 1]
    img = frame.astype(np.float32)
    if kind == "linear_motion_blur":
        img = motion_blur(img, level, rng.uniform(0, np.pi))
    elif kind == "defocus":
        img = gaussian_blur(img, level)
    elif kind == "occlusion":
        H, W = frame.shape[:2]
        covered = np.zeros((H, W), dtype=bool)
        while covered.mean() < level:
            h, w = int(rng.uniform(0.1, 0.3) * H) + 1, int(rng.uniform(0.1, 0.3) * W) + 1
            y, x = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
            img[y:y + h, x:x + w] = rng.uniform(0, 255, size=3)
            covered[y:y + h, x:x + w] = True
    elif kind == "noise":
        img = img + rng.normal(0, level, size=img.shape)
    else:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=level)
        img = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def corrupt_video(video: Video, kind: str, severity: int, seed: int = 0) -> Video:
    """The video with every frame corrupted on access; targets are unchanged."""
    if kind in VIDEO:
        if severity not in (1, 2, 3, 4, 5):
            raise ValueError(f"severity must be 1..5, got {severity!r}")
        frames = MappedFrames(video.frames, _video_corruption(video, kind, VIDEO_LEVELS[kind][severity - 1]))
        return Video(video.name, frames, video.width, video.height, video.targets, video.frame_names,
                     {**video.meta, "corruption": {"kind": kind, "severity": severity, "seed": seed}})
    corrupt(np.zeros((4, 4, 3), np.uint8), kind, severity)  # validate now, not at the first frame
    key = zlib.crc32(video.name.encode())
    frames = MappedFrames(video.frames, lambda f, i: corrupt(f, kind, severity, (seed, key, i)))
    return Video(video.name, frames, video.width, video.height, video.targets, video.frame_names,
                 {**video.meta, "corruption": {"kind": kind, "severity": severity, "seed": seed}})


def shown_frame(t: int, fps: float, source_fps: float = 30.0) -> int:
    """``frame_drop``: the frame shown at ``t`` when a ``source_fps`` video keeps ``fps`` frames a
    second (frame j is kept when floor(j r) steps up, r = fps / source_fps; frame 0 always)."""
    r = fps / source_fps
    j = t
    while j > 0 and math.floor(j * r) == math.floor((j - 1) * r):
        j -= 1
    return j


def h264_round_trip(frames: list[np.ndarray], bits_per_pixel: float, fps: int = 25) -> list[np.ndarray]:
    """The frames encoded with libx264 (PyAV) at ``bits_per_pixel`` x width x height x fps bits a
    second, and decoded back (even sizes: an odd last row or column is repeated for the codec)."""
    import av
    H, W = frames[0].shape[:2]
    h, w = H + H % 2, W + W % 2
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.bit_rate = max(1000, int(bits_per_pixel * w * h * fps))
        for f in frames:
            f = np.pad(f, ((0, h - H), (0, w - W), (0, 0)), mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buffer.seek(0)
    with av.open(buffer) as decoded:
        back = [f.to_ndarray(format="rgb24")[:H, :W] for f in decoded.decode(video=0)]
    if len(back) != len(frames):
        raise RuntimeError(f"h264 round trip gave {len(back)} frames for {len(frames)}")
    return back


def _video_corruption(video: Video, kind: str, level):
    """The per-frame function (frame, index) -> corrupted frame of a video kind. Frame ``i``
    itself comes in as ``f``; the other frames a kind reads are decoded once while they are in
    reach (the last ``level`` for temporal_average: frames are read in order in practice)."""
    source = video.frames
    if kind == "frame_drop":
        def drop(f, i):
            j = shown_frame(i, level)
            return np.asarray(f) if j == i else np.asarray(source[j])
        return drop
    if kind == "temporal_average":
        recent: dict[int, np.ndarray] = {}

        def average(f, i):
            recent[i] = np.asarray(f, dtype=np.float32)
            for j in [j for j in recent if j <= i - level or j > i]:
                del recent[j]  # out of this frame's window
            window = [recent.setdefault(j, np.asarray(source[j], dtype=np.float32))
                      for j in range(max(0, i - level + 1), i + 1)]
            return np.clip(np.round(np.mean(window, axis=0)), 0, 255).astype(np.uint8)
        return average
    cache = {}

    def h264(f, i):
        if "frames" not in cache:
            cache["frames"] = h264_round_trip([np.asarray(source[j]) for j in range(len(source))], level)
        return cache["frames"][i]
    return h264


# training-time corruption ------------------------------------------------------------------
# ImageNet-C's noise, blur and digital kinds, fast at demo sizes (glass_blur is ~0.7 s a frame); the
# weather family (snow, frost, fog) and the project's LEGACY suite stay out, so that a robustness
# evaluation on them measures corruptions the model never saw in training.
TRAIN_KINDS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur", "zoom_blur",
               "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression")
TRAIN_MODES = ("all", "key", "support")


@dataclass(frozen=True)
class TrainCorruption:
    """Corrupt training clips so that a prompted model learns what degraded supports (and key
    frames) look like: a clip is corrupted with chance ``p``; then one kind of ``kinds`` at one
    severity of ``severities``, drawn uniformly, hits the frames of one mode, drawn with
    ``modes``' weights: ``all`` (the key frame and its supports: a bad camera), ``key`` (only the
    key frame) or ``support`` (only the supports). Each frame is seeded by (clip seed, its frame
    number), so a frame that is both key and support is corrupted the same way in both places.
    A single-frame model trained on the same items sees the same key frames."""

    p: float = 0.5
    kinds: tuple = TRAIN_KINDS
    severities: tuple = (1, 2, 3, 4, 5)
    modes: tuple = (("all", 0.5), ("key", 0.25), ("support", 0.25))

    def __post_init__(self):
        if not 0 <= self.p <= 1:
            raise ValueError(f"train corruption: p must be in [0, 1], got {self.p!r}")
        if not self.kinds:
            raise ValueError("train corruption: kinds is empty")
        for k in self.kinds:
            if k in VIDEO or k not in ALL:
                raise ValueError(f"train corruption: unknown image corruption {k!r}; choose from {LEGACY + IMAGENET_C}")
        if not self.severities or any(s not in (1, 2, 3, 4, 5) for s in self.severities):
            raise ValueError(f"train corruption: severities must be in 1..5, got {self.severities!r}")
        for m, w in self.modes:
            if m not in TRAIN_MODES:
                raise ValueError(f"train corruption: unknown mode {m!r}; choose from {TRAIN_MODES}")
            if not (isinstance(w, (int, float)) and w >= 0):
                raise ValueError(f"train corruption: mode {m!r} has weight {w!r}, expected a number >= 0")
        if not sum(w for _, w in self.modes) > 0:
            raise ValueError("train corruption: the modes' weights sum to 0")

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainCorruption | None":
        """The config's ``data.train_corrupt`` (null: none), e.g. ``{p: 0.5, modes: {all: 2, key: 1, support: 1}}``."""
        if d is None:
            return None
        if not isinstance(d, dict):
            raise ValueError(f"data.train_corrupt must be a mapping or null, got {d!r}")
        unknown = set(d) - {"p", "kinds", "severities", "modes"}
        if unknown:
            raise ValueError(f"data.train_corrupt: unknown keys {sorted(unknown)}; known: p, kinds, severities, modes")
        kw = dict(d)
        if "kinds" in kw:
            kw["kinds"] = tuple([kw["kinds"]] if isinstance(kw["kinds"], str) else kw["kinds"])
        if "severities" in kw:
            kw["severities"] = tuple(kw["severities"])
        if "modes" in kw:
            if not isinstance(kw["modes"], dict):
                raise ValueError(f"data.train_corrupt.modes must map a mode to its weight, got {kw['modes']!r}")
            kw["modes"] = tuple(kw["modes"].items())
        return cls(**kw)

    def draw(self, rng) -> tuple[str, int, str, int] | None:
        """(kind, severity, mode, seed) for one clip, or None (left clean); ``rng``: a random.Random."""
        if rng.random() >= self.p:
            return None
        modes, weights = zip(*self.modes)
        return (rng.choice(self.kinds), rng.choice(self.severities), rng.choices(modes, weights)[0],
                rng.randrange(2 ** 31))
