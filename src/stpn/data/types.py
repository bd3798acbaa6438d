"""One video type for every benchmark: lazily decoded frames plus per-frame targets.

Boxes are xyxy float pixels; labels are 1-based category ids of the dataset's category list;
track ids identify an object across frames; masks are COCO RLE dicts (or None); ``visible``
is False where the object is annotated as absent or fully occluded in that frame.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image


class AnnotationError(ValueError):
    """A malformed annotation or results file; the message names the file and what was expected."""


@dataclass
class FrameTargets:
    """Annotations of one frame: n objects."""

    boxes: np.ndarray  # (n, 4) float32 xyxy
    labels: np.ndarray  # (n,) int64, 1-based category id
    track_ids: np.ndarray  # (n,) int64
    masks: list | None = None  # n COCO RLE dicts, or None when the dataset has no masks
    visible: np.ndarray | None = None  # (n,) bool
    extra: dict = field(default_factory=dict)  # dataset-specific per-object fields (occluded, cover, ...)

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
        n = len(self.boxes)
        if self.visible is None:
            self.visible = np.ones(n, dtype=bool)
        self.visible = np.asarray(self.visible, dtype=bool).reshape(-1)
        if not (len(self.labels) == len(self.track_ids) == len(self.visible) == n):
            raise ValueError(f"FrameTargets fields disagree in length: boxes {n}, labels {len(self.labels)}, "
                             f"track_ids {len(self.track_ids)}, visible {len(self.visible)}")
        if self.masks is not None and len(self.masks) != n:
            raise ValueError(f"FrameTargets has {n} boxes but {len(self.masks)} masks")

    @classmethod
    def empty(cls) -> "FrameTargets":
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0))

    def __len__(self) -> int:
        return len(self.boxes)


class FrameSource:
    """A sequence of frames decoded on access: ``source[i]`` -> (H, W, 3) uint8 RGB array."""

    def __len__(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def __getitem__(self, index: int) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class ImageFiles(FrameSource):
    """Frames stored as image files, one per frame; nothing is read until asked for."""

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [Path(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        path = self.paths[index]
        if not path.is_file():
            raise FileNotFoundError(f"frame {index} is missing: {path}")
        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("RGB"))
        except OSError as err:
            raise ValueError(f"frame {index} cannot be decoded: {path}: {err}") from err


class ArrayFrames(FrameSource):
    """Frames held in memory (generated data, tests)."""

    def __init__(self, frames: Sequence[np.ndarray]):
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.frames[index]


class MappedFrames(FrameSource):
    """Frames of another source passed through ``fn(frame, index)`` on access (corruptions)."""

    def __init__(self, source: FrameSource, fn: Callable[[np.ndarray, int], np.ndarray]):
        self.source, self.fn = source, fn

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.fn(self.source[index], index)


@dataclass
class Video:
    """A video: name, lazily decoded frames, frame size and optional per-frame targets."""

    name: str
    frames: FrameSource
    width: int
    height: int
    targets: list[FrameTargets] | None = None  # one per frame
    frame_names: list[str] | None = None  # file stems as the dataset names them
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.targets is not None and len(self.targets) != len(self.frames):
            raise ValueError(f"video {self.name}: {len(self.frames)} frames but {len(self.targets)} target entries")

    def __len__(self) -> int:
        return len(self.frames)

    def tracks(self) -> dict[int, dict[int, np.ndarray]]:
        """track id -> {frame index: box} over the frames where the track is annotated."""
        out: dict[int, dict[int, np.ndarray]] = {}
        for t, tg in enumerate(self.targets or []):
            for box, tid in zip(tg.boxes, tg.track_ids):
                out.setdefault(int(tid), {})[t] = box
        return out


def xyxy_to_xywh(boxes) -> np.ndarray:
    """Boxes (..., 4) from corners x1, y1, x2, y2 to x, y, w, h (GOT-10k's format), as float64.
    (torchvision.ops.box_convert does this for tensors; the evaluators here stay free of torch.)"""
    b = np.asarray(boxes, dtype=np.float64)
    return np.concatenate([b[..., :2], b[..., 2:] - b[..., :2]], axis=-1)


def differences(held: dict, wanted: dict, skip: dict | None = None, prefix: str = "") -> list[str]:
    """What a folder's recorded settings (``held``) and a command's (``wanted``) disagree on, as
    ``key: X there, Y here`` lines: the one check behind "this folder belongs to one set of
    settings" (run folders, generated data, demo folders, robustness reports). Mappings are
    compared key by key (``section.key``); ``skip`` maps a dotted prefix ("" for the top, "run"
    for the run section) to keys that do not make a difference (e.g. a run's output folder)."""
    skip = skip or {}
    out = []
    for key in sorted(set(held) | set(wanted)):
        if key in skip.get(prefix.rstrip("."), ()):
            continue
        a, b = held.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, skip, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} there, {b!r} here")
    return out


def current_umask() -> int:
    """The process's umask, read without changing it where the kernel tells it (Linux): setting
    it to read it back would, for an instant, give files another thread creates the wrong mode."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output(path: str | Path, flag: str, *, inputs=(), overwrite: bool = False, folder: bool = False) -> Path:
    """Refuse an output that would destroy an input or silently replace earlier work; say why.

    ``path`` is the value of ``flag``; ``inputs`` the paths the command reads (symlinks resolved).
    An output may not be an input, and a folder output may not hold one.
    An existing file (or a non-empty folder) is replaced only with ``overwrite``. The nearest
    existing ancestor must be a writable folder. Returns ``path`` as a Path.
    """
    out = Path(path)
    target = out.resolve()
    for source in inputs:
        if source is None:
            continue
        src = Path(source).resolve()
        if target == src or (folder and src.is_relative_to(target)):
            raise ValueError(f"{flag} {out}: {'is' if target == src else 'holds'} the input {source}; "
                             "write somewhere else (inputs are never written)")
    if out.exists():
        if folder and not out.is_dir():
            raise ValueError(f"{flag} {out}: is a file; expected a folder")
        if not folder and out.is_dir():
            raise ValueError(f"{flag} {out}: is a folder; expected a file")
        if not overwrite and (not folder or any(out.iterdir())):
            raise ValueError(f"{flag} {out}: exists{' and is not empty' if folder else ''}; pass --overwrite to "
                             "replace it, or choose another path")
    ancestor = out.absolute() if folder and out.is_dir() else out.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{flag} {out}: {ancestor} is a file; expected a folder")
    if not os.access(ancestor, os.W_OK):
        raise ValueError(f"{flag} {out}: {ancestor} is not writable")
    return out


@contextmanager
def atomic_path(path: str | Path):
    """A temporary path beside ``path`` (same suffix) for a writer that takes a file name (PIL,
    matplotlib, safetensors, PyAV, zipfile, the ONNX exporter): renamed over ``path`` when the block
    ends without an error, so readers see the old or the complete new file; removed otherwise.
    The file gets the umask's mode, like any other the user writes (mkstemp's is private)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write a file so that readers see either the old or the complete new content."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def json_safe(obj):
    """``obj`` with every non-finite float (NaN, inf) replaced by None, so that the JSON is valid.
    In stpn's metric files null means "not defined" (e.g. no ground truth in a group)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(path: str | Path, obj, indent: int | None = 1) -> None:
    """Atomically write ``obj`` as valid JSON (non-finite numbers become null)."""
    atomic_write(path, json.dumps(json_safe(obj), indent=indent, allow_nan=False))


def save_jpeg(path: str | Path, frame: np.ndarray, quality: int = 95) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(frame).save(tmp, format="JPEG", quality=quality)


def require_file(path: str | Path, expected: str) -> Path:
    """``path`` as a Path if it is a file; else a FileNotFoundError saying what is there and what
    was expected."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {'a folder' if path.is_dir() else 'no such file'}; expected {expected}")
    return path
