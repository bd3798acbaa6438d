"""A detector scored on its config's validation split: the devkit file, AP50 on all and on
deteriorated frames with the motion breakdown, metrics.json, the table."""
from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..data.splits import read_sidecar, read_split, sidecar_path
from ..data.types import write_json
from ..data.vid import write_vid_detections
from ..engine.config import Config
from ..evaluation.vid import evaluate_vid
from ..progress import track
from .build import class_names
from .inference import detect_videos, detections_table


def evaluate_run(det, cfg: Config, out: Path, mode: str | None = None, console: Console | None = None) -> dict:
    """Detect on the validation split, write the devkit file, score all frames (and deteriorated
    frames when the data has a sidecar). Returns metrics; writes ``out/metrics.json``."""
    d = cfg.data
    mode = mode or d.test_policy
    videos = read_split(d, d.val_split)
    start = time.perf_counter()
    preds = detect_videos(det, cfg, track(videos, f"detecting ({mode})", console=console), mode)
    seconds = time.perf_counter() - start
    dets = detections_table(videos, preds)
    out.mkdir(parents=True, exist_ok=True)
    write_vid_detections(out / "detections.txt", dets)
    names = class_names(cfg)
    all_frames = evaluate_vid(videos, dets, class_names=names, num_classes=cfg.detection.num_classes)
    metrics = {"mode": mode, "num_support": d.test_num_support, "stride": d.test_stride,
               "refresh_every": d.test_refresh_every, "ap50_all": all_frames["ap50"], "all": all_frames,
               "ms_per_frame": 1e3 * seconds / max(1, sum(len(v) for v in videos))}
    sidecar = sidecar_path(d, d.val_split)
    if sidecar.is_file():
        frames = read_sidecar(sidecar, "vid")
        bad = evaluate_vid(videos, dets, frames=frames, class_names=names, num_classes=cfg.detection.num_classes)
        metrics.update(ap50_deteriorated=bad["ap50"], deteriorated=bad)
    write_json(out / "metrics.json", metrics)
    return metrics


def print_metrics(metrics: dict, cfg: Config, console: Console | None = None) -> None:
    table = Table(title=f"{cfg.data.val_split}: AP50 ({metrics['mode']} supports)")
    for col in ("all frames", "deteriorated frames", "fast", "medium", "slow", "ms/frame"):
        table.add_column(col, justify="right")
    f = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    a = metrics["all"]
    table.add_row(f(metrics["ap50_all"]), f(metrics.get("ap50_deteriorated")), f(a["ap50_fast"]),
                  f(a["ap50_medium"]), f(a["ap50_slow"]), f"{metrics['ms_per_frame']:.1f}")
    (console or Console(width=100)).print(table)
