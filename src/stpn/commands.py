"""``stpn train`` / ``stpn eval`` dispatch by task; ``stpn evaluate`` and ``stpn data``: file in, table and JSON out."""
from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .data.types import check_output


def _fmt(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _subset(path: str | None, key: str | None = None):
    from .data.splits import read_sidecar
    return None if path is None else read_sidecar(path, key)


def _write_json(path: str | None, result: dict) -> None:
    if path:
        from .data.types import write_json
        write_json(path, result)


def evaluate(args, console: Console | None = None) -> dict:
    console = console or Console(width=100)
    inputs = [getattr(args, k, None) for k in ("gt", "root", "results", "subset", "frames_root")]
    plot = None
    if args.benchmark == "got10k":  # the success plot: --plot, or beside --json
        plot = args.plot or (str(Path(args.json).with_suffix("")) + "_success.png" if args.json else None)
    for flag, path in (("--json", args.json), ("--plot", plot)):
        if path:
            check_output(path, flag, inputs=inputs, overwrite=args.overwrite)
    if args.benchmark == "vid":
        from .data.vid import VID_NAMES, read_vid, read_vid_detections
        from .evaluation.vid import evaluate_vid
        videos = read_vid(args.gt, args.split)
        dets = read_vid_detections(args.results)
        result = evaluate_vid(videos, dets, rule=args.rule, frames=_subset(args.subset, "vid"), class_names=VID_NAMES)
        table = Table(title=f"ImageNet VID {args.split}: AP50 ({args.rule} IoU rule)"
                      + (" on the subset" if args.subset else ""))
        for col in ("all", "fast", "medium", "slow", "gt boxes", "detections"):
            table.add_column(col, justify="right")
        table.add_row(_fmt(result["ap50"]), _fmt(result["ap50_fast"]), _fmt(result["ap50_medium"]),
                      _fmt(result["ap50_slow"]), str(result["num_gt"]), str(result["num_detections"]))
        console.print(table)
        per = Table(title="per-class AP50")
        per.add_column("class")
        per.add_column("AP50", justify="right")
        for name, ap in result["per_class"].items():
            if ap is not None:
                per.add_row(name, _fmt(ap))
        console.print(per)
    elif args.benchmark == "ytvis":
        from .data.ytvis import read_ytvis
        from .evaluation.ytvis import KEYS, evaluate_ytvis, load_results
        videos, categories = read_ytvis(args.gt, args.frames_root)
        from .data.types import AnnotationError
        try:  # the results file is refused as a whole, naming it and the track (never scored in part)
            result = evaluate_ytvis(videos, categories, load_results(args.results), frames=_subset(args.subset, "ytvis"))
        except AnnotationError as err:
            raise AnnotationError(str(err) if str(err).startswith(str(args.results)) else f"{args.results}: {err}") from None
        table = Table(title="YouTube-VIS (spatio-temporal mask IoU)" + (" on the subset" if args.subset else ""))
        for label in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10"):  # KEYS, in order
            table.add_column(label, justify="right")
        table.add_row(*[_fmt(result[k]) for k in KEYS])
        console.print(table)
    else:
        from .data.got10k import read_got10k
        from .evaluation.got10k import evaluate_got10k, plot_success
        videos = read_got10k(args.root, args.split)
        result = evaluate_got10k(videos, args.results, frames=_subset(args.subset))
        table = Table(title=f"GOT-10k {args.split}" + (" on the subset" if args.subset else ""))
        for col in ("AO", "SR0.5", "SR0.75", "FPS", "frames"):
            table.add_column(col, justify="right")
        fps = "-" if result["fps"] is None else f"{result['fps']:.1f}"
        table.add_row(_fmt(result["ao"]), _fmt(result["sr50"]), _fmt(result["sr75"]), fps, str(result["num_frames"]))
        console.print(table)
        if plot:
            plot_success(result, plot, label=Path(args.results).name)
            result["plot"] = str(plot)
            console.print(f"success plot: {plot}")
    _write_json(args.json, result)
    if args.json:
        console.print(f"wrote {args.json}")
    return result


def data(args, console: Console | None = None) -> None:
    console = console or Console(width=100)
    inputs = [getattr(args, k) for k in {"corrupt": ["root"], "split-ytvis": ["json", "frames"]}.get(args.data_command, [])]
    check_output(args.out, "--out", inputs=inputs, overwrite=args.overwrite, folder=True)
    if args.data_command == "synth":
        from .data.synth import SynthConfig, write_synth
        w, h = args.size
        config = SynthConfig(videos=args.videos, frames=args.frames, width=w, height=h, classes=args.classes,
                             max_objects=args.max_objects, deteriorated=args.deteriorated, seed=args.seed)
        sidecar = write_synth(args.out, args.format, config, split=args.split)
        console.print(f"wrote {config.videos} videos x {config.frames} frames ({args.format}) to {args.out}; "
                      f"{100 * sidecar['fraction']:.1f}% deteriorated frames listed in {Path(args.out) / 'deteriorated.json'}")
    elif args.data_command == "corrupt":
        from .data.corrupt import corrupt_video
        if args.format == "vid":
            from .data.vid import read_vid, write_vid
            videos = [corrupt_video(v, args.kind, args.severity, args.seed) for v in read_vid(args.root, args.split)]
            write_vid(args.out, args.split, videos)
        elif args.format == "got10k":
            from .data.got10k import read_got10k, write_got10k
            videos = [corrupt_video(v, args.kind, args.severity, args.seed) for v in read_got10k(args.root, args.split)]
            write_got10k(args.out, args.split, videos)
        else:
            from .data.ytvis import read_ytvis, write_ytvis
            videos, categories = read_ytvis(args.root)
            write_ytvis(Path(args.out) / "instances.json",
                        [corrupt_video(v, args.kind, args.severity, args.seed) for v in videos], categories)
        console.print(f"wrote {args.kind} severity {args.severity} copy to {args.out}")
    elif args.data_command == "split-ytvis":
        from .data.ytvis import split_ytvis
        record = split_ytvis(args.json, args.out, args.val_fraction, args.seed, args.frames)
        console.print(f"split {len(record['train']) + len(record['val'])} videos: {len(record['train'])} to "
                      f"{Path(args.out) / 'train'}, {len(record['val'])} to {Path(args.out) / 'val'} "
                      f"(which: {Path(args.out) / 'split.json'})")


def export(args) -> None:
    """``stpn export``: a run's model as ONNX graphs (``stpn.export``)."""
    from .detection.model import STPNDetector
    from .engine.registry import get_task
    from .engine.runs import resolve_run
    from .export import export_onnx
    from .tracking.model import STPNTracker
    check_output(args.out, "--out", inputs=[_weights_file(args.weights), args.config], overwrite=args.overwrite,
                 folder=True)
    _, cfg = resolve_run(args.weights, args.config, ["run.device=cpu"])
    model, cfg = get_task(cfg.task).load(args.weights, args.config, ["run.device=cpu"])
    d = cfg.data
    K = d.test_num_support if args.num_support is None else args.num_support
    if args.part == "backbone":
        model = model if not hasattr(model, "stpn") else model.stpn
    elif not isinstance(model, (STPNDetector, STPNTracker)):
        raise ValueError(f"stpn export exports detectors, segmenters and trackers (task {cfg.task!r} is not supported "
                         f"yet); --part backbone exports its STPN")
    size = None
    if not isinstance(model, STPNTracker):
        if not args.size:
            raise ValueError("--size WxH is needed: the graphs take frames of one size")
        w, h = args.size
        size = (h, w)
    extra = {"weights": str(args.weights), "config_task": cfg.task, "test_num_support": K,
             "test_stride": d.test_stride, "test_refresh_every": d.test_refresh_every}
    out = export_onnx(model, args.out, size=size, num_support=K, extra=extra)
    manifest = json.loads((out / "export.json").read_text())
    print(f"wrote {', '.join(manifest['graphs'])} and export.json to {out}")


def robustness(args) -> None:
    """``stpn robustness``: robustness curves of trained runs (``stpn.robustness``)."""
    from .robustness import run_robustness
    check_output(args.out, "--out", overwrite=True, folder=True)  # it resumes there
    names = args.names or [_run_name(w) for w in args.weights]
    if len(names) != len(args.weights):
        raise ValueError(f"--names gives {len(names)} names for {len(args.weights)} runs")
    if len(set(names)) != len(names):
        raise ValueError(f"run names must differ, got {names}: give --names")
    run_robustness(dict(zip(names, args.weights)), args.out, args.corruptions, args.severities, args.settings,
                   args.videos, args.seed)
    print(f"wrote {Path(args.out) / 'robustness.json'} and {Path(args.out) / 'robustness.png'}")


def _weights_file(weights: str) -> Path:
    """A run's weights file, given it or its folder (what an output must not be)."""
    return Path(weights) / "model.safetensors" if Path(weights).is_dir() else Path(weights)


def _run_name(weights: str) -> str:
    p = Path(weights)
    return (p.parent if p.suffix == ".safetensors" else p).name


def run_task_command(args) -> None:
    """``stpn train`` and ``stpn eval`` through the config's task (``stpn.engine.tasks``)."""
    from .engine.config import load_config
    from .engine.registry import get_task
    if args.command == "train":
        from .engine.trainer import train
        cfg = load_config(args.config, args.overrides)
        out = train(cfg, get_task(cfg.task), resume=args.resume, overwrite=args.overwrite)
        print(f"trained: {out / 'model.safetensors'}")
        return
    from .engine.runs import eval_folder, resolve_run
    _, cfg = resolve_run(args.weights, args.config, args.overrides)
    task = get_task(cfg.task)
    out = Path(args.out) if args.out else eval_folder(args.weights)
    check_output(out, "--out", inputs=[_weights_file(args.weights), args.config], overwrite=args.overwrite, folder=True)
    model, cfg = task.load(args.weights, args.config, args.overrides)
    metrics = task.evaluate(model, cfg, out, args.mode)
    task.print_metrics(metrics, cfg)
    print(f"wrote {out / 'metrics.json'} and the results beside it in {out}")
