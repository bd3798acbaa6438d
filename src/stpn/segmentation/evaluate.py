"""A segmenter scored on its config's validation split: YouTube-VIS results, video AP on all and
on deteriorated frames, per-frame mask AP (all, deteriorated, clean) and identity switches (all,
deteriorated), metrics.json, the table."""
from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..data.splits import read_sidecar, read_split, sidecar_path
from ..data.types import write_json
from ..data.ytvis import write_ytvis_results
from ..engine.config import Config
from ..evaluation.vis_frames import frame_mask_ap, id_switches
from ..evaluation.ytvis import KEYS, evaluate_ytvis
from ..progress import track
from .inference import segment_video


def evaluate_run(seg, cfg: Config, out: Path, mode: str | None = None, console: Console | None = None) -> dict:
    """Segment the validation split into tracks, write ``results.json`` (and ``results.zip``,
    what the YouTube-VIS server takes), score mask AP on all frames and on the deteriorated ones
    (when the data has a sidecar). Returns the metrics; writes ``out/metrics.json``."""
    d = cfg.data
    mode = mode or d.test_policy
    videos = read_split(d, d.val_split)
    categories = videos[0].meta["categories"] if videos else []
    device = next(seg.parameters()).device.type
    # per video and frame: the tracked instances (identity switches) and all instances before
    # association (per-frame AP: the segmentation alone, whatever the tracker keeps)
    results, per_frame, detected, start = [], {}, {}, time.perf_counter()
    for video in track(videos, f"segmenting ({mode})", console=console):
        tracked, found = per_frame.setdefault(video.meta.get("id", 1), []), detected.setdefault(video.meta.get("id", 1), [])

        def keep(t, k, tracked=tracked, found=found):
            tracked.append({x: k[x] for x in ("rles", "labels", "scores", "track_ids")})
            found.append(k["detected"])
        results += [results_entry(r) for r in segment_video(seg, video, cfg, mode, device, on_frame=keep)]
    seconds = time.perf_counter() - start
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_ytvis_results(out / "results.json", results, out / "results.zip")
    scores = evaluate_ytvis(videos, categories, results)
    metrics = {"mode": mode, "num_support": d.test_num_support, "stride": d.test_stride,
               "refresh_every": d.test_refresh_every, "ap_all": scores["ap"], "ap50_all": scores["ap50"], "all": scores,
               "ms_per_frame": 1e3 * seconds / max(1, sum(len(v) for v in videos))}
    frame = {"all": frame_mask_ap(videos, categories, detected)}
    switches = {"all": id_switches(videos, per_frame)}
    sidecar = sidecar_path(d, d.val_split)
    if sidecar.is_file():
        worse = read_sidecar(sidecar, "ytvis")
        bad = evaluate_ytvis(videos, categories, results, frames=worse)
        metrics.update(ap_deteriorated=bad["ap"], ap50_deteriorated=bad["ap50"], deteriorated=bad)
        clean = {v.meta["id"]: [t for t in range(len(v)) if t not in set(worse.get(v.meta["id"], []))] for v in videos}
        frame.update(deteriorated=frame_mask_ap(videos, categories, detected, worse),
                     clean=frame_mask_ap(videos, categories, detected, clean))
        switches["deteriorated"] = id_switches(videos, per_frame, worse)
    for k, v in frame.items():
        metrics[f"frame_ap_{k}"], metrics[f"frame_ap50_{k}"] = v["ap"], v["ap50"]
        metrics[f"frame_ap50_any_class_{k}"] = v["ap50_any_class"]
    for k, v in switches.items():
        metrics[f"id_switches_{k}"] = v["id_switches"]
    metrics.update(frame_ap=frame, switches=switches)
    write_json(out / "metrics.json", metrics)
    return metrics


def results_entry(track: dict) -> dict:
    """A results.json entry: the four keys the server reads."""
    return {k: track[k] for k in ("video_id", "category_id", "score", "segmentations")}


def print_metrics(metrics: dict, cfg: Config, console: Console | None = None) -> None:
    table = Table(title=f"{cfg.data.val_split}: mask AP, spatio-temporal IoU ({metrics['mode']} supports)")
    table.add_column("frames")
    for k in KEYS:
        table.add_column(k.upper(), justify="right")
    f = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    for frames in ("all", "deteriorated"):
        if frames in metrics:
            table.add_row(frames, *(f(metrics[frames][k]) for k in KEYS))
    console = console or Console(width=110)
    console.print(table)
    if "frame_ap" in metrics:
        parts = [f"{k} {f(v['ap50'])}" for k, v in metrics["frame_ap"].items()]
        console.print(f"per-frame mask AP50 (each frame an image): {', '.join(parts)}; identity switches: "
                      + ", ".join(f"{k} {v['id_switches']}" for k, v in metrics["switches"].items()))
    console.print(f"{metrics['ms_per_frame']:.1f} ms per frame")
