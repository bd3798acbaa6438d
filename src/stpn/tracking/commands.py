"""``stpn track``, the tracking metrics table and the tracking demo's configuration and figures."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from ..progress import track
from rich.table import Table

from ..data.types import atomic_write
from ..draw import draw_box
from ..engine.arguments import support_settings
from ..engine.config import Config, seed_overrides
from ..engine.config import paired_run_config
from ..engine.tasks import check_source_outputs
from .model import STPNTracker
from .task import TrackingTask
from .tracker import check_box, track_frames


def load_tracker(weights: str | Path, config: str | Path | None = None, overrides=()) -> tuple[STPNTracker, Config]:
    """(tracker, config) on the config's ``run.device`` from a run's ``model.safetensors`` (or a run
    folder) and its config."""
    return TrackingTask().load(weights, config, overrides)


def print_metrics(metrics: dict, title: str, console: Console | None = None) -> None:
    table = Table(title=title)
    for col in ("AO all", "AO deteriorated", "SR0.5", "SR0.75", "FPS"):
        table.add_column(col, justify="right")
    f = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    a = metrics["all"]
    table.add_row(f(a["ao"]), f(metrics.get("ao_deteriorated")), f(a["sr50"]), f(a["sr75"]),
                  "-" if a["fps"] is None else f"{a['fps']:.1f}")
    (console or Console(width=100)).print(table)


def parse_box(text: str) -> list[float]:
    try:
        box = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--box must be x,y,w,h (four numbers separated by commas), got {text!r}") from None
    if len(box) != 4:
        raise ValueError(f"--box must be x,y,w,h (four numbers separated by commas), got {text!r}")
    return box


def cmd_track(args) -> None:
    """Track one target from a first box through a video file, a frame folder or a webcam."""
    from ..data.video import mark_partial, open_source, partial_note, write_annotated
    if bool(args.weights) == bool(args.onnx):
        raise ValueError("give either --weights (a trained run) or --onnx (a folder written by stpn export)")
    if args.onnx and (args.config or args.device not in (None, "cpu")):
        raise ValueError("--onnx runs on ONNX Runtime on the CPU with the exported settings: --config and "
                         "--device do not apply")
    check_source_outputs(args, ("out", "txt"))
    if args.onnx:
        from ..export import OnnxTracker
        model = OnnxTracker(args.onnx)
        defaults = (model.manifest.get(k, 1) for k in ("test_num_support", "test_stride", "test_refresh_every"))
        device = "cpu"
    else:
        model, cfg = load_tracker(args.weights, args.config, [f"run.device={args.device}"] if args.device else [])
        defaults = (cfg.data.test_num_support, cfg.data.test_stride, cfg.data.test_refresh_every)
        device = next(model.parameters()).device.type  # load_tracker put it on run.device
    video, frames, count, fps = open_source(args.video)
    box = parse_box(args.box)
    K, S, R = support_settings(args, defaults)
    first = next(iter(frames), None)
    if first is None:
        raise ValueError(f"{args.video}: no frames")
    check_box(box, first.shape[1], first.shape[0], f"the first frame of {args.video}")
    import itertools

    rows = []

    def annotated():
        for frame, b, score, seconds in track(track_frames(model, itertools.chain([first], frames), box, K, S, R, device),
                                              "tracking", total=count):
            rows.append((b, score, seconds))
            yield draw_box(frame, b, score if rows[1:] else None)

    def save(status):  # the frames done so far, also when the video breaks mid-stream or is interrupted
        if args.txt:  # GOT-10k's format has no room for a note: a partial file gets a .partial.json beside it
            atomic_write(args.txt, "".join(",".join(f"{v:.2f}" for v in b) + "\n" for b, _, _ in rows))
            mark_partial(args.txt, status)
            print(f"wrote {args.txt} (x,y,w,h per frame, {len(rows)} frames{partial_note(status)})")

    write_annotated(annotated(), args.out, fps, source=str(args.video), then=save, total=count)
    if len(rows) > 1:
        print(f"{len(rows)} frames, {1 / np.mean([s for _, _, s in rows[1:]]):.1f} frames/s "
              f"({'STPN' if model.prompting else 'baseline'}, K={K}, S={S}, refresh every {R})")


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
    from ..engine.config import load_config, packaged_config
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
    for col in ("model", "AO all frames", "AO deteriorated", "SR0.5 all", "train s"):
        table.add_column(col, justify="right")
    for name in ("baseline", "stpn"):
        r = report[name]
        table.add_row(name, f"{100 * r['ao_all']:.1f}", "-" if r["ao_deteriorated"] is None else f"{100 * r['ao_deteriorated']:.1f}",
                      f"{100 * r['sr50_all']:.1f}", f"{r['train_seconds']:.0f}")
    console.print(table)


def demo_figures(results: dict, configs: dict, out: Path) -> list[Path]:
    """Success curves of both trackers, and the first validation video with both trackers' boxes
    as their evaluation wrote them (STPN red, baseline blue)."""
    from ..data.got10k import read_boxes
    from ..data.splits import read_split
    from ..data.video import write_video
    plot_curves(results, out / "success.png")
    cfg = configs["stpn"]
    video = read_split(cfg.data, cfg.data.val_split)[0]
    rows = {name: read_boxes(Path(c.run.out) / "eval" / "results" / video.name / f"{video.name}_001.txt", len(video))
            for name, c in configs.items()}
    frames = (draw_box(draw_box(video.frames[t], rows["baseline"][t], None, (64, 160, 255)), rows["stpn"][t], None)
              for t in range(len(video)))
    write_video(out / "stpn_val0.mp4", frames, fps=10)
    return [out / "success.png", out / "stpn_val0.mp4"]
