"""``stpn demo``: what STPN buys over the same detector without prompts, on generated video.

Generates a deteriorated-video dataset, pre-trains the backbone as an object classifier on its
training frames (the paper's detectors start from ImageNet weights), trains the STPN
detector and the single-frame baseline from that backbone with the same budget, scores both on
all validation frames and on the deteriorated ones, prints a table and writes ``report.json``, a
bar chart and an annotated mp4. Interrupted runs resume.
"""
from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..data.types import atomic_write, write_json
from ..engine.config import config_dict
from ..engine.runs import claim_demo_folder, finished_run, record_train_seconds, train_seconds, train_side_by_side
from .commands import demo_config, evaluate_run, load_detector, pretrain_config
from .task import predict_video, read_split, train_clips, train_videos


def bar_chart(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    groups = ("ap50_all", "ap50_deteriorated")
    for i, (name, color) in enumerate((("baseline", "#999999"), ("stpn", "#1f77b4"))):
        values = [100 * (report[name][g] or 0) for g in groups]
        bars = ax.bar([x + 0.38 * i for x in range(2)], values, width=0.36, color=color,
                      label="single frame" if name == "baseline" else "STPN")
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks([0.19, 1.19], ["all frames", "deteriorated frames"])
    ax.set_ylabel("AP50")
    ax.set_ylim(0, 105)
    ax.set_title("generated deteriorated video: AP50")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def annotated_video(run: Path, cfg, path: Path) -> None:
    from ..data.video import write_video
    from .draw import IoUTracker, draw
    det, _ = load_detector(run / "model.safetensors")
    video = read_split(cfg, cfg.data.val_split)[0]
    d = cfg.data
    tracker = IoUTracker()
    names = d.class_names or [str(c) for c in range(1, cfg.model.num_classes + 1)]

    def frames():
        for t, p in enumerate(predict_video(det, video, d.test_policy, d.test_num_support, d.test_stride,
                                            d.test_refresh_every)):
            keep = p["scores"] >= 0.5
            ids = tracker.update(p["boxes"][keep], p["labels"][keep])
            yield draw(video.frames[t], p["boxes"][keep], p["labels"][keep], p["scores"][keep], ids, names)
    write_video(path, frames(), fps=8)


def pretrain_backbone(cfg, console: Console) -> dict:
    """Train the demo's backbone classifier (or resume it; a finished one is kept) and score it."""
    import time

    from ..classification.commands import load_classifier
    from ..classification.task import ClassificationTask, evaluate_classifier
    from ..engine.trainer import train
    run = Path(cfg.run.out)
    if not finished_run(run):
        console.print(f"pre-training the backbone as an object classifier ({cfg.optim.epochs} epochs); run in {run}")
        done, start = train_seconds(run), time.perf_counter()
        train(cfg, ClassificationTask(), resume="auto", console=console)
        record_train_seconds(run, done + time.perf_counter() - start)
    model, _ = load_classifier(run / "model.safetensors")
    return {"train_seconds": train_seconds(run), **evaluate_classifier(model, cfg)}


def run_detection_demo(out: Path, quick: bool = False, console: Console | None = None, seed: int = 0) -> dict:
    console = console or Console(width=100)
    out = Path(out)
    configs = {"stpn": demo_config(out, quick, True, seed), "baseline": demo_config(out, quick, False, seed)}
    claim_demo_folder(out, {"summary": f"stpn demo --task det{' --quick' if quick else ''}{f' --seed {seed}' if seed else ''}", "quick": quick,
                            "configs": {k: config_dict(c) for k, c in configs.items()},
                            "pretrain": config_dict(pretrain_config(out, quick, seed))})
    import yaml
    atomic_write(out / "demo_config.yaml", yaml.safe_dump(config_dict(configs["stpn"])))
    cfg = configs["stpn"]
    videos = train_videos(cfg)  # generate the data once, before every run
    read_split(cfg, cfg.data.val_split)
    pretrain_cfg = pretrain_config(out, quick, seed)
    pretrain = pretrain_backbone(pretrain_cfg, console)
    items = len(train_clips(cfg, videos))
    iterations = cfg.optim.epochs * math.ceil(items / cfg.optim.batch_size / cfg.optim.accumulate)
    console.print(f"training STPN and the single-frame baseline side by side ({configs['stpn'].optim.epochs} "
                  f"epochs each); logs in {out}/*/train.log")
    seconds = train_side_by_side(configs, out / "demo_config.yaml", iterations, console)
    report = {}
    for name, cfg in configs.items():
        det, _ = load_detector(Path(cfg.run.out) / "model.safetensors")
        metrics = evaluate_run(det, cfg, Path(cfg.run.out) / "eval", console=console)
        report[name] = {"ap50_all": metrics["ap50_all"], "ap50_deteriorated": metrics.get("ap50_deteriorated"),
                        "train_seconds": seconds[name], "ms_per_frame": metrics["ms_per_frame"],
                        "inference_mode": metrics["mode"]}
    report["pretrain"] = pretrain
    report["config"] = config_dict(configs["stpn"])
    report["pretrain_config"] = config_dict(pretrain_cfg)
    report["quick"], report["seed"] = quick, seed
    table = Table(title="stpn demo: Faster R-CNN on generated deteriorated video (AP50, %)")
    for col in ("model", "all frames", "deteriorated frames", "train s", "ms/frame"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, label in (("baseline", "single frame (no prompts)"), ("stpn", "STPN")):
        r = report[name]
        table.add_row(label, f"{100 * r['ap50_all']:.1f}", f"{100 * (r['ap50_deteriorated'] or 0):.1f}",
                      f"{r['train_seconds']:.0f}", f"{r['ms_per_frame']:.1f}")
    console.print(table)
    p = pretrain
    console.print(f"both start from the same backbone, pre-trained for {p['train_seconds']:.0f} s as an object "
                  f"classifier (validation crops: {100 * p['accuracy_clean']:.1f} % right on clean frames, "
                  f"{100 * p['accuracy_deteriorated']:.1f} % on deteriorated ones)")
    delta = {k: 100 * ((report["stpn"][k] or 0) - (report["baseline"][k] or 0)) for k in ("ap50_all", "ap50_deteriorated")}
    report["stpn_minus_baseline_points"] = delta
    console.print(f"STPN - baseline: {delta['ap50_all']:+.1f} AP50 on all frames, "
                  f"{delta['ap50_deteriorated']:+.1f} on deteriorated frames")
    write_json(out / "report.json", report)
    bar_chart(report, out / "ap50.png")
    annotated_video(Path(report["config"]["run"]["out"]), configs["stpn"], out / "stpn_val0.mp4")
    console.print(f"wrote {out / 'report.json'}, {out / 'ap50.png'}, {out / 'stpn_val0.mp4'}")
    return report
