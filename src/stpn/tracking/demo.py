"""The tracking demo (``stpn demo --task sot``): its two trackers' configs, the pre-trained ViT
they start from, the table and the success curves."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..engine.config import Config, load_config, packaged_config, paired_run_config, seed_overrides

TASK = "tracking"  # the task this demo trains and scores (stpn.demos.paired)
METRICS = ("ao_all", "ao_deteriorated", "ao_clean", "sr50_all")  # scores of ``row`` (fractions) whose margins the report gives

# the demo ---------------------------------------------------------------------------------------
QUICK_DATA = ["data.synth.train_videos=16", "data.synth.val_videos=4"]


def demo_config(out: Path, quick: bool, prompting: bool, seed: int = 0) -> Config:
    """One tracker of the demo: it starts from the demo's pre-trained backbone (``pretrain_config``)."""
    overrides = [f"model.weights={Path(out) / 'pretrain' / 'model.safetensors'}",
                 *(["optim.epochs=2", *QUICK_DATA] if quick else []), *seed_overrides(seed)]
    return paired_run_config("sot_demo_cpu", out, prompting, overrides)


def pretrain_config(out: Path, quick: bool, seed: int = 0) -> Config:
    """The tracker's ViT as an object classifier on the demo's training videos (the same videos as
    ``demo_config``'s, in the VID layout with all their objects, in ``out/pretrain_data``)."""
    overrides = [f"data.root={Path(out) / 'pretrain_data'}", f"run.out={Path(out) / 'pretrain'}",
                 *([*QUICK_DATA, "optim.epochs=2"] if quick else []), *seed_overrides(seed)]
    return load_config(packaged_config("sot_demo_cpu_pretrain"), overrides)


def plot_curves(results: dict, path: Path) -> Path:
    """Success curves of every model, all frames and deteriorated frames side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..evaluation.got10k import success_axes
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), dpi=120)
    for ax, key, title in zip(axes, ("all", "deteriorated"), ("all frames", "deteriorated frames")):
        success_axes(ax, {name: m[key] for name, m in results.items() if key in m}, title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def demo_table(report: dict, console: Console) -> None:
    table = Table(title="stpn demo --task sot: AO / SR0.5 in % on generated deteriorated video")
    for col in ("model", "AO all frames", "AO clean", "AO deteriorated", "SR0.5 all", "train s"):
        table.add_column(col, justify="right")
    f = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    for name in ("baseline", "stpn"):
        r = report[name]
        table.add_row(name, f(r["ao_all"]), f(r.get("ao_clean")), f(r["ao_deteriorated"]), f(r["sr50_all"]),
                      f"{r['train_seconds']:.0f}")
    console.print(table)
    b = report["baseline"]
    if b.get("ao_clean") is not None and b.get("ao_deteriorated") is not None:
        console.print(f"the single-frame tracker loses {100 * (b['ao_clean'] - b['ao_deteriorated']):.1f} AO on "
                      f"deteriorated frames (clean {100 * b['ao_clean']:.1f}, deteriorated {100 * b['ao_deteriorated']:.1f})")


def demo_figures(report: dict, results: dict, configs: dict, out: Path) -> list[Path]:
    """Success curves of both trackers, and the first validation video with both trackers' boxes
    as their evaluation wrote them (STPN red, baseline blue)."""
    from ..data.got10k import read_boxes
    from ..data.splits import read_split
    from ..data.video import write_video
    from ..draw import draw_box
    plot_curves(results, out / "success.png")
    cfg = configs["stpn"]
    video = read_split(cfg.data, cfg.data.val_split)[0]
    rows = {name: read_boxes(Path(c.run.out) / "eval" / "results" / video.name / f"{video.name}_001.txt", len(video))
            for name, c in configs.items()}
    frames = (draw_box(draw_box(video.frames[t], rows["baseline"][t], None, (64, 160, 255)), rows["stpn"][t], None)
              for t in range(len(video)))
    write_video(out / "stpn_val0.mp4", frames, fps=10)
    return [out / "success.png", out / "stpn_val0.mp4"]


def row(metrics: dict) -> dict:
    """The report's entry of one model from its evaluation metrics."""
    return {"ao_all": metrics["ao_all"], "ao_deteriorated": metrics.get("ao_deteriorated"),
            "ao_clean": metrics.get("ao_clean"), "sr50_all": metrics["sr50_all"], "fps": metrics["fps"]}
