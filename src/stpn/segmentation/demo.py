"""``stpn demo --task vis``: STPN vs the same Mask R-CNN without prompts on generated video.

Generates deteriorated videos of 2-3 objects that move, cross and occlude one another (YouTube-VIS
layout), pre-trains the backbone as an object classifier on the training frames (as the
detection demo), trains the STPN segmenter and the single-frame baseline from it with the same
budget, segments the validation videos into tracks and scores mask AP (spatio-temporal IoU) on
all frames and on the deteriorated ones, beside per-frame mask AP (each frame an image: the
segmentation without the association) and identity switches; the baseline is also scored with
the untrained box features for association (what the trained head lifts). Writes
``report.json``, a bar chart and an annotated mp4 (coloured masks, track ids). Interrupted runs
resume.
"""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..data.splits import read_split
from ..engine.config import Config

TASK = "segmentation"  # the task this demo trains and scores (stpn.demos.paired)
# scores of ``row`` (fractions) whose margins the report gives
METRICS = ("ap_all", "ap50_all", "ap_deteriorated", "ap50_deteriorated", "frame_ap50_all", "frame_ap50_deteriorated")

QUICK_DATA = ["data.synth.train_videos=8", "data.synth.val_videos=4"]


def demo_config(out: Path, quick: bool, prompting: bool, seed: int = 0) -> Config:
    from ..detection import demo
    return demo.demo_config(out, quick, prompting, seed, "vis_demo_cpu", QUICK_DATA)


def pretrain_config(out: Path, quick: bool, seed: int = 0) -> Config:
    from ..detection import demo
    return demo.pretrain_config(out, quick, seed, "vis_demo_cpu_pretrain", QUICK_DATA, ["optim.epochs=3"])


def demo_table(report: dict, console: Console) -> None:
    table = Table(title="stpn demo: Mask R-CNN on generated deteriorated video (mask AP, %)")
    for col in ("model", "AP all", "AP50 all", "AP deteriorated", "AP50 deteriorated", "train s", "ms/frame"):
        table.add_column(col, justify="left" if col == "model" else "right")
    f = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    for name, label in (("baseline", "single frame (no prompts)"), ("stpn", "STPN")):
        r = report[name]
        table.add_row(label, f(r["ap_all"]), f(r["ap50_all"]), f(r["ap_deteriorated"]), f(r["ap50_deteriorated"]),
                      f"{r['train_seconds']:.0f}", f"{r['ms_per_frame']:.1f}")
    console.print(table)
    delta = {k: "-" if v is None else f"{v:+.1f}" for k, v in report["stpn_minus_baseline_points"].items()}
    console.print(f"STPN - baseline: {delta['ap50_all']} mask AP50 on all frames, {delta['ap50_deteriorated']} on "
                  f"deteriorated frames ({delta['ap_all']} / {delta['ap_deteriorated']} AP)")
    frames = Table(title="per-frame mask AP50 (each frame an image, %) and identity switches")
    for col in ("model", "all", "deteriorated", "clean", "ID switches all", "on deteriorated"):
        frames.add_column(col, justify="left" if col == "model" else "right")
    for name, label in (("baseline", "single frame"), ("stpn", "STPN")):
        r = report[name]
        if "frame_ap50_all" in r:
            frames.add_row(label, f(r["frame_ap50_all"]), f(r["frame_ap50_deteriorated"]), f(r["frame_ap50_clean"]),
                           str(r["id_switches_all"]), str(r["id_switches_deteriorated"]))
    console.print(frames)
    base = report["baseline"]
    if "box_features_ap50_all" in base:
        console.print(f"the single-frame model's video mask AP50 with the trained association head: "
                      f"{f(base['ap50_all'])} all / {f(base['ap50_deteriorated'])} deteriorated; with the untrained "
                      f"box features: {f(base['box_features_ap50_all'])} / {f(base['box_features_ap50_deteriorated'])}")


def demo_figures(report: dict, results: dict, configs: dict, out: Path) -> list[Path]:
    from ..detection.demo import bar_chart
    bar_chart(report, out / "mask_ap50.png", "mask AP50")
    annotated_video(configs["stpn"], out / "stpn_val0.mp4")
    return [out / "mask_ap50.png", out / "stpn_val0.mp4"]


def annotated_video(cfg, path: Path) -> None:
    """The first validation video with the STPN segmenter's masks, boxes, classes and track ids."""
    from ..data.video import write_video
    from ..detection.build import class_names
    from ..draw import draw_detections, draw_masks
    from .build import load_segmenter
    from .inference import segment_video
    seg, cfg = load_segmenter(Path(cfg.run.out) / "model.safetensors")
    video = read_split(cfg.data, cfg.data.val_split)[0]
    names, drawn = class_names(cfg), []

    def draw(t, kept):
        image = draw_masks(video.frames[t], kept["masks"], kept["track_ids"])
        drawn.append(draw_detections(image, kept["boxes"], kept["labels"], kept["scores"], kept["track_ids"], names))
    segment_video(seg, video, cfg, on_frame=draw)
    write_video(path, drawn, fps=6)


def row(metrics: dict) -> dict:
    """The report's entry of one model from its evaluation metrics."""
    return {"ap_all": metrics["ap_all"], "ap50_all": metrics["ap50_all"],
            "ap_deteriorated": metrics.get("ap_deteriorated"), "ap50_deteriorated": metrics.get("ap50_deteriorated"),
            **{k: metrics.get(k) for k in ("frame_ap50_all", "frame_ap50_deteriorated", "frame_ap50_clean",
                                           "id_switches_all", "id_switches_deteriorated")},
            "ms_per_frame": metrics["ms_per_frame"], "inference_mode": metrics["mode"]}


def more_rows(configs: dict, task, console: Console) -> dict:
    """The baseline's video AP with the untrained box features for association (its own detector
    and masks): how much the trained head lifts it. Nothing for a box_features demo."""
    c = configs["baseline"]
    if c.segmentation.association != "quasi_dense":
        return {}
    out, weights = Path(c.run.out) / "eval_box_features", Path(c.run.out) / "model.safetensors"
    done = out / "metrics.json"
    if done.is_file() and done.stat().st_mtime >= weights.stat().st_mtime:  # scored from these weights
        import json
        m = json.loads(done.read_text())
    else:
        model, cfg = task.load(weights, None, ["segmentation.track_embedding=box_features"])
        m = task.evaluate(model, cfg, out, console=Console(quiet=True))
    return {"baseline": {"box_features_ap50_all": m["ap50_all"], "box_features_ap50_deteriorated": m.get("ap50_deteriorated"),
                         "box_features_id_switches_all": m.get("id_switches_all")}}
