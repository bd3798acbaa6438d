"""GOT-10k metrics, computed locally as the toolkit does.

Per sequence, frames 1..N-1 (the first is given) where ``cover > 0``; boxes of both result and
ground truth clipped to the image; AO = mean IoU over all such frames of all sequences and
repetitions; SR_t = fraction with IoU > t (strict); FPS = mean over sequences of the mean
1 / time over frames with a positive time.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.got10k import read_boxes
from ..data.types import AnnotationError, Video, xyxy_to_xywh

THRESHOLDS = np.linspace(0, 1, 101)


def rect_iou(a: np.ndarray, b: np.ndarray, bound: tuple[int, int] | None = None) -> np.ndarray:
    """IoU of paired xywh boxes (n, 4); with ``bound=(W, H)`` both are clipped to the image."""
    a, b = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
    if bound is not None:
        for r in (a, b):
            r[:, 0] = np.clip(r[:, 0], 0, bound[0])
            r[:, 1] = np.clip(r[:, 1], 0, bound[1])
            r[:, 2] = np.clip(r[:, 2], 0, bound[0] - r[:, 0])
            r[:, 3] = np.clip(r[:, 3], 0, bound[1] - r[:, 1])
    x1, y1 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.clip(inter / (union + np.finfo(float).eps), 0.0, 1.0)


def _gt_xywh(video: Video) -> np.ndarray:
    out = np.zeros((len(video), 4))
    for t, tg in enumerate(video.targets):
        if len(tg):
            out[t] = xyxy_to_xywh(tg.boxes[0])
    return out


def evaluate_got10k(videos: list[Video], results_dir: str | Path, frames: dict | None = None) -> dict:
    """Score a results folder against ground truth. ``frames``: optional {sequence: frame
    indices (0-based)} restricting the scored frames (e.g. deteriorated frames only)."""
    results_dir = Path(results_dir)
    known = {v.name for v in videos}
    if not results_dir.is_dir():
        raise FileNotFoundError(f"{results_dir}: {'a file' if results_dir.exists() else 'no such folder'}; expected "
                                "a results folder (<seq>/<seq>_001.txt, <seq>_time.txt; unzip a submission first)")
    extra = sorted(p.name for p in results_dir.iterdir() if p.is_dir() and p.name not in known)
    if extra:
        raise ValueError(f"{results_dir}: results for sequences not in the ground truth: {extra[:5]}")
    all_ious, per_sequence, speeds = [], {}, []
    for video in videos:
        if video.meta.get("first_box_only"):
            raise ValueError(f"sequence {video.name} has only its first box (test split): score it on the server")
        seq_dir = results_dir / video.name
        reps = sorted(seq_dir.glob(f"{video.name}_[0-9][0-9][0-9].txt"))
        if not reps:
            raise FileNotFoundError(f"no results for sequence {video.name}: expected {seq_dir / (video.name + '_001.txt')}")
        gt = _gt_xywh(video)
        cover = np.asarray(video.meta.get("cover", np.full(len(video), 8)))
        keep = np.zeros(len(video), dtype=bool)
        keep[1:] = cover[1:] > 0
        if frames is not None:
            chosen = np.zeros(len(video), dtype=bool)
            chosen[[int(i) for i in frames.get(video.name, []) if 0 <= int(i) < len(video)]] = True
            keep &= chosen
        ious = [rect_iou(read_boxes(p, len(video), "result boxes", strict=True)[keep], gt[keep], video.meta.get("resolution"))
                for p in reps]
        seq_ious = np.concatenate(ious)
        all_ious.append(seq_ious)
        time_path = seq_dir / f"{video.name}_time.txt"
        fps = None
        if time_path.is_file():
            try:
                times = np.array([float(v) for v in time_path.read_text().split()], dtype=np.float64)
            except ValueError:
                raise AnnotationError(f"{time_path}: one number (seconds) per line expected") from None
            if not np.isfinite(times).all():
                raise AnnotationError(f"{time_path}:{int(np.flatnonzero(~np.isfinite(times))[0]) + 1}: "
                                      "a time that is not a finite number (NaN or inf)")
            if len(times) != len(video):
                raise AnnotationError(f"{time_path}: expected {len(video)} lines (one per frame), got {len(times)}")
            times = times[times > 0]
            if len(times):
                fps = float(np.mean(1.0 / times))
                speeds.append(fps)
        per_sequence[video.name] = {
            "ao": float(seq_ious.mean()) if len(seq_ious) else None,
            "sr50": float(np.mean(seq_ious > 0.5)) if len(seq_ious) else None,
            "sr75": float(np.mean(seq_ious > 0.75)) if len(seq_ious) else None,
            "fps": fps, "frames_scored": int(len(seq_ious) // len(reps)), "repetitions": len(reps)}
    ious = np.concatenate(all_ious) if all_ious else np.zeros(0)
    if not len(ious):
        raise ValueError("no frame to score (all frames excluded by cover == 0, the first frame or the frame subset)")
    return {"ao": float(ious.mean()), "sr50": float(np.mean(ious > 0.5)), "sr75": float(np.mean(ious > 0.75)),
            "fps": float(np.mean(speeds)) if speeds else None, "per_sequence": per_sequence,
            "success_curve": {"thresholds": THRESHOLDS.tolist(),
                              "success": [float(np.mean(ious > t)) for t in THRESHOLDS]},
            "num_frames": int(len(ious))}


def success_axes(ax, results: dict, title: str = "GOT-10k success plot") -> None:
    """Draw the success curves of {label: result} on a matplotlib axis."""
    for label, result in results.items():
        curve = result["success_curve"]
        ax.plot(curve["thresholds"], curve["success"], label=f"{label} [AO {result['ao']:.3f}]")
    ax.set(xlabel="overlap threshold", ylabel="success rate", xlim=(0, 1), ylim=(0, 1.01), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")


def plot_success(result: dict, path: str | Path, label: str = "tracker") -> Path:
    """Success plot (fraction of frames with IoU > threshold) as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    success_axes(ax, {label: result})
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
