"""``stpn demo``: what STPN buys over the same detector without prompts, on generated video.

Generates a deteriorated-video dataset, pre-trains the backbone as an object classifier on its
training frames (the paper's detectors start from ImageNet weights), trains the STPN
detector and the single-frame baseline from that backbone with the same budget, scores both on
all validation frames and on the deteriorated ones, prints a table and writes ``report.json``, a
bar chart and an annotated mp4. Interrupted runs resume.
"""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..data.splits import read_split
from ..engine.config import Config, load_config, packaged_config, paired_run_config, seed_overrides
from .build import class_names, load_detector
from .inference import predict_video

TASK = "detection"  # the task this demo trains and scores (stpn.demos.paired)
METRICS = ("ap50_all", "ap50_deteriorated")  # scores of ``row`` (fractions) whose margins the report gives

QUICK_DATA = ["data.synth.train_videos=16", "data.synth.val_videos=4"]


def demo_config(out: Path, quick: bool, prompting: bool, seed: int = 0, name: str = "demo_cpu",
                quick_data=QUICK_DATA) -> Config:
    """A model of a demo (packaged config ``name``: this demo's detector, or another task's model
    on the same recipe): it starts from the demo's pre-trained backbone (``pretrain_config``)."""
    overrides = [f"model.weights={Path(out) / 'pretrain' / 'model.safetensors'}",
                 *(["optim.epochs=1", *quick_data] if quick else []), *seed_overrides(seed)]
    return paired_run_config(name, out, prompting, overrides)


def pretrain_config(out: Path, quick: bool, seed: int = 0, name: str = "demo_cpu_pretrain", quick_data=QUICK_DATA,
                    quick_extra=()) -> Config:
    """The demo's backbone pre-training (an object classifier on the same data) in ``out/pretrain``."""
    overrides = [f"data.root={Path(out) / 'data'}", f"run.out={Path(out) / 'pretrain'}",
                 *([*quick_data, *quick_extra] if quick else []), *seed_overrides(seed)]
    return load_config(packaged_config(name), overrides)


def demo_table(report: dict, console: Console) -> None:
    table = Table(title="stpn demo: Faster R-CNN on generated deteriorated video (AP50, %)")
    for col in ("model", "all frames", "deteriorated frames", "train s", "ms/frame"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, label in (("baseline", "single frame (no prompts)"), ("static", "static prompts (control)"),
                        ("stpn", "STPN")):
        if name not in report:
            continue
        r = report[name]
        table.add_row(label, _points(r["ap50_all"]), _points(r["ap50_deteriorated"]),
                      f"{r['train_seconds']:.0f}", f"{r['ms_per_frame']:.1f}")
    console.print(table)
    delta = {k: "-" if v is None else f"{v:+.1f}" for k, v in report["stpn_minus_baseline_points"].items()}
    console.print(f"STPN - baseline: {delta['ap50_all']} AP50 on all frames, "
                  f"{delta['ap50_deteriorated']} on deteriorated frames")
    if "stpn_minus_static_points" in report:
        delta = {k: "-" if v is None else f"{v:+.1f}" for k, v in report["stpn_minus_static_points"].items()}
        console.print(f"STPN - static prompts: {delta['ap50_all']} AP50 on all frames, "
                      f"{delta['ap50_deteriorated']} on deteriorated frames")


def _points(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def demo_figures(report: dict, results: dict, configs: dict, out: Path) -> list[Path]:
    bar_chart(report, out / "ap50.png")
    annotated_video(Path(configs["stpn"].run.out), configs["stpn"], out / "stpn_val0.mp4")
    return [out / "ap50.png", out / "stpn_val0.mp4"]


def bar_chart(report: dict, path: Path, metric: str = "AP50") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    groups = ("ap50_all", "ap50_deteriorated")
    models = [m for m in (("baseline", "#999999", "single frame"), ("static", "#ff7f0e", "static prompts"),
                          ("stpn", "#1f77b4", "STPN")) if m[0] in report]
    width = 0.76 / len(models)
    for i, (name, color, label) in enumerate(models):
        values = [100 * (report[name][g] or 0) for g in groups]
        bars = ax.bar([x + width * i for x in range(2)], values, width=0.95 * width, color=color, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks([x + width * (len(models) - 1) / 2 for x in range(2)], ["all frames", "deteriorated frames"])
    ax.set_ylabel(metric)
    ax.set_ylim(0, 105)
    ax.set_title(f"generated deteriorated video: {metric}")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def annotated_video(run: Path, cfg, path: Path) -> None:
    from ..association import IoUTracker
    from ..data.video import write_video
    from ..draw import draw_detections as draw
    det, _ = load_detector(run / "model.safetensors")
    video = read_split(cfg.data, cfg.data.val_split)[0]
    d = cfg.data
    tracker = IoUTracker()
    names = class_names(cfg)

    def frames():
        for t, p in enumerate(predict_video(det, video, d.test_policy, d.test_num_support, d.test_stride,
                                            d.test_refresh_every)):
            keep = p["scores"] >= 0.5
            ids = tracker.update(p["boxes"][keep], p["labels"][keep])
            yield draw(video.frames[t], p["boxes"][keep], p["labels"][keep], p["scores"][keep], ids, names)
    write_video(path, frames(), fps=8)


def row(metrics: dict) -> dict:
    """The report's entry of one model from its evaluation metrics."""
    return {"ap50_all": metrics["ap50_all"], "ap50_deteriorated": metrics.get("ap50_deteriorated"),
            "ms_per_frame": metrics["ms_per_frame"], "inference_mode": metrics["mode"]}
