"""GOT-10k layout: read, write, and the results layout of the evaluation server.

    ROOT/<split>/list.txt
    ROOT/<split>/<seq>/00000001.jpg ...
    ROOT/<split>/<seq>/groundtruth.txt        x,y,w,h per frame (test: first frame only)
    ROOT/<split>/<seq>/absence.label          0/1 per frame
    ROOT/<split>/<seq>/cover.label            0..8 per frame (visible fraction in eighths)
    ROOT/<split>/<seq>/cut_by_image.label     0/1 per frame
    ROOT/<split>/<seq>/meta_info.ini          includes "resolution: (W, H)"

    RESULTS/<seq>/<seq>_001.txt (x,y,w,h per frame; _002, _003 for repetitions), <seq>_time.txt
Boxes in ``FrameTargets`` are xyxy = (x, y, x + w, y + h).
"""
from __future__ import annotations

import ast
import configparser
import math
import zipfile
from pathlib import Path

import numpy as np

from ..progress import track
from .types import AnnotationError, FrameTargets, ImageFiles, Video, atomic_path, atomic_write, save_jpeg


def read_boxes(path: Path, expected: int | None = None, name: str = "boxes", strict: bool = False) -> np.ndarray:
    """Read comma-separated x,y,w,h lines -> (n, 4) float64, with errors naming the line.
    ``strict`` (results to score): every value finite, w and h >= 0."""
    rows = []
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.strip().split(",")
        if len(parts) != 4:
            hint = " (values must be separated by commas)" if len(line.split()) == 4 else ""
            raise AnnotationError(f"{path}:{n}: expected 4 comma-separated values x,y,w,h{hint}, got {line!r}")
        try:
            rows.append([float(p) for p in parts])
        except ValueError:
            raise AnnotationError(f"{path}:{n}: not a number in {line!r}") from None
        if strict and not all(math.isfinite(v) for v in rows[-1]):
            raise AnnotationError(f"{path}:{n}: a value that is not a finite number (NaN or inf) in {line!r}")
        if strict and (rows[-1][2] < 0 or rows[-1][3] < 0):
            raise AnnotationError(f"{path}:{n}: negative width or height in {line!r}")
    if expected is not None and len(rows) != expected:
        raise AnnotationError(f"{path}: expected {expected} lines of {name} (one per frame), got {len(rows)}")
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def _read_labels(path: Path, expected: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"label file is missing: {path}")
    values = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(values) != expected:
        raise AnnotationError(f"{path}: expected {expected} lines (one per frame), got {len(values)}")
    try:
        return np.array([int(float(v)) for v in values], dtype=np.int64)
    except ValueError:
        raise AnnotationError(f"{path}: labels must be integers") from None


def read_meta(path: Path) -> dict:
    parser = configparser.ConfigParser()
    text = path.read_text()
    parser.read_string(text if text.lstrip().startswith("[") else "[METAINFO]\n" + text)
    meta = dict(parser[parser.sections()[0]]) if parser.sections() else {}
    if "resolution" in meta:
        try:
            meta["resolution"] = tuple(int(v) for v in ast.literal_eval(meta["resolution"]))
        except (ValueError, SyntaxError):
            raise AnnotationError(f"{path}: resolution must look like '(W, H)', got {meta['resolution']!r}") from None
    return meta


def read_got10k(root: str | Path, split: str = "val", progress: bool = True) -> list[Video]:
    """Read a GOT-10k split. Frames are decoded lazily; the test split keeps only the first box."""
    base = Path(root) / split
    listing = base / "list.txt"
    if not listing.is_file():
        raise FileNotFoundError(f"no GOT-10k split {split!r}: expected {listing}")
    names = [s.strip() for s in listing.read_text().splitlines() if s.strip()]
    videos = []
    for name in (track(names, f"reading GOT-10k {split}") if progress else names):
        seq = base / name
        frames = sorted(seq.glob("*.jpg"))
        if not frames:
            raise FileNotFoundError(f"sequence {name} has no frames (*.jpg) in {seq}")
        n = len(frames)
        gt_path = seq / "groundtruth.txt"
        if not gt_path.is_file():
            raise FileNotFoundError(f"groundtruth of sequence {name} is missing: {gt_path}")
        boxes = read_boxes(gt_path, name="groundtruth boxes")
        if len(boxes) not in (1, n):
            raise AnnotationError(f"{gt_path}: expected {n} lines (one per frame) or 1 (test split), got {len(boxes)}")
        meta = read_meta(seq / "meta_info.ini") if (seq / "meta_info.ini").is_file() else {}
        if "resolution" not in meta:
            raise AnnotationError(f"{seq / 'meta_info.ini'}: missing 'resolution: (W, H)'")
        W, H = meta["resolution"]
        full = len(boxes) == n
        absence = _read_labels(seq / "absence.label", n) if full else np.zeros(n, dtype=np.int64)
        cover = _read_labels(seq / "cover.label", n) if full else np.full(n, 8)
        cut = _read_labels(seq / "cut_by_image.label", n) if full else np.zeros(n, dtype=np.int64)
        targets = []
        for t in range(n):
            if t >= len(boxes):
                targets.append(FrameTargets.empty())
                continue
            x, y, w, h = boxes[t]
            if not absence[t] and (w <= 0 or h <= 0):
                raise AnnotationError(f"{gt_path}:{t + 1}: the target is present but its box {boxes[t].tolist()} "
                                      f"has zero area")
            targets.append(FrameTargets([[x, y, x + w, y + h]], [1], [1], visible=[not absence[t]],
                                        extra={"cover": np.array([cover[t]]), "cut_by_image": np.array([cut[t]])}))
        videos.append(Video(name, ImageFiles(frames), W, H, targets, frame_names=[f.stem for f in frames],
                            meta={**meta, "resolution": (W, H), "cover": cover, "absence": absence,
                                  "first_box_only": not full}))
    return videos


def write_got10k(root: str | Path, split: str, videos: list[Video], write_frames: bool = True,
                 progress: bool = True) -> None:
    """Write single-target videos in the GOT-10k layout: the target is the first object visible in
    the first frame."""
    base = Path(root) / split
    for video in (track(videos, f"writing GOT-10k {split}") if progress else videos):
        seq = base / video.name
        if write_frames:
            for t in range(len(video)):
                save_jpeg(seq / f"{t + 1:08d}.jpg", video.frames[t])
        first = video.targets[0] if video.targets else FrameTargets.empty()
        seen = [int(i) for i, v in zip(first.track_ids, first.visible) if v]
        if not seen:
            raise AnnotationError(f"video {video.name}: no object is visible in its first frame; a GOT-10k "
                                  f"sequence starts with its target visible")
        target_id = seen[0]  # the first object visible in the first frame
        gt, absence, cover, cut = [], [], [], []
        last = [0.0, 0.0, 0.0, 0.0]
        for tg in video.targets:
            j = np.flatnonzero(tg.track_ids == target_id)
            if len(j) and tg.visible[j[0]]:
                x1, y1, x2, y2 = tg.boxes[j[0]].tolist()
                last = [x1, y1, x2 - x1, y2 - y1]
                gt.append(last)
                absence.append(0)
                cover.append(int(tg.extra.get("cover", np.full(len(tg), 8))[j[0]]))
                cut.append(int(tg.extra.get("cut_by_image", np.zeros(len(tg)))[j[0]]))
            else:
                gt.append(last)  # absent: the last known box, as a placeholder
                absence.append(1)
                cover.append(0)
                cut.append(0)
        atomic_write(seq / "groundtruth.txt", "".join(",".join(f"{v:.4f}" for v in b) + "\n" for b in gt))
        atomic_write(seq / "absence.label", "".join(f"{v}\n" for v in absence))
        atomic_write(seq / "cover.label", "".join(f"{v}\n" for v in cover))
        atomic_write(seq / "cut_by_image.label", "".join(f"{v}\n" for v in cut))
        extra = {k: v for k, v in video.meta.items() if isinstance(v, str)}
        lines = ["[METAINFO]"] + [f"{k}: {v}" for k, v in extra.items()]
        lines.append(f"resolution: ({video.width}, {video.height})")
        atomic_write(seq / "meta_info.ini", "\n".join(lines) + "\n")
    atomic_write(base / "list.txt", "".join(f"{v.name}\n" for v in videos))


def write_got10k_results(out_dir: str | Path, name: str, boxes: list[np.ndarray] | np.ndarray,
                         times: np.ndarray) -> None:
    """Write one sequence's results: ``boxes`` (N, 4) xywh, or a list of them for repetitions,
    and ``times`` (N,) measured seconds per frame."""
    seq = Path(out_dir) / name
    reps = [boxes] if isinstance(boxes, np.ndarray) else list(boxes)
    for r, b in enumerate(reps, 1):
        b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
        atomic_write(seq / f"{name}_{r:03d}.txt", "".join(",".join(f"{v:.4f}" for v in row) + "\n" for row in b))
    atomic_write(seq / f"{name}_time.txt", "".join(f"{t:.8f}\n" for t in np.asarray(times, dtype=np.float64)))


def zip_results(out_dir: str | Path, zip_path: str | Path) -> Path:
    """Pack a results folder into the zip the evaluation server takes."""
    out_dir, zip_path = Path(out_dir), Path(zip_path)
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(out_dir.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(out_dir))
    return zip_path
