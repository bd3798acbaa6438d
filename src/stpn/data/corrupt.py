"""Corruption suite for any dataset at evaluation time (a video ImageNet-C).

``corrupt(frame, kind, severity, seed)`` is deterministic: the same frame, kind, severity and
seed give the same pixels. ``corrupt_video`` seeds each frame from (seed, video name, index),
so a frame is corrupted the same way however it is reached.
"""
from __future__ import annotations

import io
import zlib

import numpy as np
from PIL import Image, ImageFilter

from .types import MappedFrames, Video

CORRUPTIONS = ("motion_blur", "defocus", "occlusion", "noise", "jpeg")
SEVERITY = {
    "motion_blur": (5, 9, 13, 19, 25),  # blur length in pixels
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
    """Corrupt an (H, W, 3) uint8 frame at severity 1..5."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; choose one of {CORRUPTIONS}")
    if severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"severity must be 1..5, got {severity!r}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be an (H, W, 3) uint8 array, got {frame.shape} {frame.dtype}")
    rng = np.random.default_rng(seed)
    level = SEVERITY[kind][severity - 1]
    img = frame.astype(np.float32)
    if kind == "motion_blur":
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
    corrupt(np.zeros((4, 4, 3), np.uint8), kind, severity)  # validate now, not at the first frame
    key = zlib.crc32(video.name.encode())
    frames = MappedFrames(video.frames, lambda f, i: corrupt(f, kind, severity, (seed, key, i)))
    return Video(video.name, frames, video.width, video.height, video.targets, video.frame_names,
                 {**video.meta, "corruption": {"kind": kind, "severity": severity, "seed": seed}})
