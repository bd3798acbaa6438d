"""The ``stpn`` command."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__
from .engine.arguments import HelpFormatter, fraction, frame_size, non_negative_int, positive_int
from .engine.registry import command_modules, demo_names


class _Parser(argparse.ArgumentParser):
    """Every sub-command shows its options' defaults (``HelpFormatter``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # one line naming the flag, as every other refusal (argparse prints the usage too)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stpn", description="Spatio-temporal prompting for video features")
    parser.add_argument("--version", action="version", version=f"stpn {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of its one-line message")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser("demo", help="the main job: STPN vs the same model without prompts on generated video")
    demo.add_argument("--task", choices=(*demo_names(), "features"), default="det",
                      help="det: detection, sot: tracking, vis: instance segmentation (train and score STPN and "
                           "the baseline); features: feature-extraction timing only")
    demo.add_argument("--out", type=Path, help="folder for report.json and figures (default: runs/demo for det, "
                                                "runs/demo_<task> otherwise; with --quick a _quick suffix)")
    demo.add_argument("--quick", action="store_true", help="a smaller dataset and one epoch (minutes)")
    demo.add_argument("--static", action="store_true",
                      help="det, sot, vis: also train the same model with static prompts (VPT: tokens that ignore "
                           "the supports, the paper's control) and report STPN - static")
    demo.add_argument("--seed", type=non_negative_int, default=0,
                      help="det, sot, vis: data seeds 2N / 2N+1 and training seed N (default 0: the README's run)")
    demo.add_argument("--frames", type=positive_int, default=24, help="features: clip length")
    demo.add_argument("--size", type=positive_int, default=224, help="features: frame side in pixels (multiple of 32)")
    demo.add_argument("--tiny", action="store_true", help="features: a 32-dim Swin instead of Swin-T")
    demo.add_argument("--pretrained", action="store_true", help="features: timm's ImageNet Swin-T weights (hub)")

    tr = sub.add_parser("train", help="train a model from a YAML config (torchrun for several processes)")
    tr.add_argument("config", help="YAML config (see src/stpn/configs/)")
    tr.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. optim.lr=1e-4")
    tr.add_argument("--resume", help="'auto' (the run's newest readable checkpoint) or a checkpoint folder")
    tr.add_argument("--overwrite", action="store_true",
                    help="replace the run in run.out (a folder holding a run is refused otherwise)")
    evl = sub.add_parser("eval", help="run a trained model (--weights) on its config's validation split and score it; "
                                      "for a results file you already have, use stpn evaluate")
    evl.add_argument("config", nargs="?", help="YAML config (default: config.json beside the weights)")
    evl.add_argument("overrides", nargs="*", help="section.key=value overrides")
    evl.add_argument("--weights", required=True, help="model.safetensors of a run (or the run folder)")
    evl.add_argument("--mode", choices=("global", "local", "causal"),
                     help="support frames at test time (default: the config's data.test_policy; a tracker is always causal)")
    evl.add_argument("--out", help="folder for the results and metrics.json (default: <run>/eval)")
    evl.add_argument("--overwrite", action="store_true", help="replace the results already in --out")
    exp = sub.add_parser("export", help="write a trained model as ONNX graphs (support embedding, predictor, "
                                        "prompted pass with the task's head) for ONNX Runtime")
    exp.add_argument("--weights", required=True, help="a run's model.safetensors (or the run folder)")
    exp.add_argument("--config", help="YAML config (default: config.json beside the weights)")
    exp.add_argument("--out", required=True, help="folder for the graphs and export.json")
    exp.add_argument("--format", choices=("onnx",), default="onnx", help="graph format")
    exp.add_argument("--size", type=frame_size, help="frame WxH the graphs take (detection and --part backbone; "
                                                     "a tracker's crops have fixed sides)")
    exp.add_argument("--num-support", type=positive_int, metavar="K",
                     help="K of the predictor graph (default: the config's test_num_support)")
    exp.add_argument("--overwrite", action="store_true", help="replace the graphs already in --out")
    exp.add_argument("--part", choices=("task", "backbone"), default="task",
                     help="task: the whole model (detector, tracker); backbone: STPN alone (stage maps)")
    exp.set_defaults(handler=_export)
    rob = sub.add_parser("robustness", help="score trained runs on corrupted validation videos (5 corruptions x "
                                            "severities 1-5, key frame only and key + support frames): table, JSON, plot")
    rob.add_argument("--weights", nargs="+", required=True, help="runs of one task (run folders or model.safetensors), "
                                                                 "e.g. runs/demo/stpn runs/demo/baseline")
    rob.add_argument("--names", nargs="+", help="a name per run (default: the run folders' names)")
    rob.add_argument("--out", required=True, help="folder for robustness.json and robustness.png (resumes there)")
    from .data.corrupt import ALL, LEGACY
    rob.add_argument("--corruptions", nargs="+", default=list(LEGACY), choices=ALL, metavar="KIND",
                     help=f"corruptions to apply (default: {' '.join(LEGACY)}; the ImageNet-C names and "
                          "frame_drop, h264, temporal_average)")
    rob.add_argument("--severities", nargs="+", type=int, choices=(1, 2, 3, 4, 5), default=[1, 2, 3, 4, 5],
                     help="severities to apply")
    rob.add_argument("--settings", nargs="+", default=["key+support", "key"],
                     choices=("key+support", "key", "support"),
                     help="key+support: every frame corrupted; key: the support frames stay clean; support: only "
                          "the support frames are corrupted")
    rob.add_argument("--videos", type=positive_int, metavar="N", help="the first N validation videos only (default: all)")
    rob.add_argument("--seed", type=non_negative_int, default=0, help="corruption seed")
    rob.set_defaults(handler=_robustness)
    for module in command_modules():  # each task's own commands (stpn detect, stpn track, ...)
        module.add_commands(sub)

    ev = sub.add_parser("evaluate", help="score a results file against a benchmark's ground truth (no model; "
                                         "to run a trained model first, use stpn eval)")
    evs = ev.add_subparsers(dest="benchmark", required=True)
    vid = evs.add_parser("vid", help="ImageNet VID AP50 with the motion breakdown")
    vid.add_argument("--gt", required=True, help="dataset root (Data/, Annotations/, ImageSets/)")
    vid.add_argument("--split", default="val", help="split under Data/VID")
    vid.add_argument("--results", required=True, help="devkit detection file: frame class score x1 y1 x2 y2")
    vid.add_argument("--rule", choices=("fixed", "devkit"), default="fixed",
                     help="IoU threshold: fixed 0.5 (MEGA, STPN) or the devkit's size-dependent one")
    ytvis = evs.add_parser("ytvis", help="YouTube-VIS AP with spatio-temporal mask IoU")
    ytvis.add_argument("--gt", required=True, help="instances.json")
    ytvis.add_argument("--frames-root", help="frame folder (default: JPEGImages beside the JSON)")
    ytvis.add_argument("--results", required=True, help="results.json")
    got = evs.add_parser("got10k", help="GOT-10k AO, SR0.5, SR0.75, FPS and a success plot")
    got.add_argument("--root", required=True, help="dataset root holding <split>/")
    got.add_argument("--split", default="val", help="split folder under --root")
    got.add_argument("--results", required=True, help="results folder: <seq>/<seq>_001.txt, <seq>_time.txt")
    got.add_argument("--plot", help="success plot PNG (default: beside --json)")
    for p in (vid, ytvis, got):
        p.add_argument("--subset", help="deteriorated.json sidecar: score its frames only")
        p.add_argument("--json", help="write the metrics here (fractions in [0, 1])")
        p.add_argument("--overwrite", action="store_true", help="replace an existing --json (and plot)")

    data = sub.add_parser("data", help="generate or transform datasets")
    ds = data.add_subparsers(dest="data_command", required=True)
    synth = ds.add_parser("synth", help="generate deteriorated videos in a benchmark layout")
    synth.add_argument("--format", choices=("vid", "ytvis", "got10k"), required=True, help="benchmark layout")
    synth.add_argument("--out", required=True, help="dataset root to create")
    synth.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    synth.add_argument("--videos", type=positive_int, default=8, help="number of videos")
    synth.add_argument("--frames", type=positive_int, default=32, help="frames per video")
    synth.add_argument("--size", type=frame_size, default="256x192", help="frame WxH in pixels")
    synth.add_argument("--classes", type=positive_int, default=3, help="object classes")
    synth.add_argument("--max-objects", type=positive_int, default=3, help="objects per video at most")
    synth.add_argument("--deteriorated", type=fraction, default=0.3, help="fraction of deteriorated frames (<= 0.5)")
    synth.add_argument("--split", default="val", help="split name to write")
    synth.add_argument("--seed", type=non_negative_int, default=0, help="data seed")
    cor = ds.add_parser("corrupt", help="write a corrupted copy of a dataset (motion blur, defocus, ...)")
    cor.add_argument("--format", choices=("vid", "ytvis", "got10k"), required=True, help="benchmark layout")
    cor.add_argument("--root", required=True, help="dataset root (ytvis: instances.json)")
    cor.add_argument("--split", default="val", help="split to corrupt")
    cor.add_argument("--out", required=True, help="dataset root of the corrupted copy (never --root)")
    cor.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    cor.add_argument("--kind", choices=ALL, required=True, metavar="KIND",
                     help="corruption: linear_motion_blur, defocus, occlusion, noise, jpeg, the ImageNet-C names, "
                          "frame_drop, h264, temporal_average")
    cor.add_argument("--severity", type=int, choices=(1, 2, 3, 4, 5), default=3, help="corruption severity")
    cor.add_argument("--seed", type=non_negative_int, default=0, help="corruption seed")
    spl = ds.add_parser("split-ytvis", help="split a YouTube-VIS training set by video into train/ and val/ "
                                            "(the official valid ground truth is withheld)")
    spl.add_argument("--json", required=True, help="the training set's JSON (e.g. train.json of YouTube-VIS 2019)")
    spl.add_argument("--frames", help="its frame folder (default: JPEGImages beside the JSON)")
    spl.add_argument("--out", required=True, help="dataset root for data.root (train/, val/ and split.json)")
    spl.add_argument("--overwrite", action="store_true", help="replace a split already in --out")
    spl.add_argument("--val-fraction", type=fraction, default=0.1, help="share of the videos that go to val/")
    spl.add_argument("--seed", type=non_negative_int, default=0, help="split seed")
    return parser


def _export(args) -> None:
    from .commands import export  # the model side loads only when the command runs
    export(args)


def _robustness(args) -> None:
    from .commands import robustness
    robustness(args)


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def user_error(err: BaseException) -> str | None:
    """The one-line message of an expected failure (bad input, a file that cannot be read or
    written), or None for a bug (then the traceback is the useful output)."""
    from .core.weights import WeightsError
    from .data.types import AnnotationError
    from .engine.config import ConfigError
    if isinstance(err, OSError):
        where = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
        what = err.strerror or str(err)
        return f"{where}: {what}" if where else _one_line(what)
    if isinstance(err, (AnnotationError, ConfigError, WeightsError, ValueError)):
        return _one_line(err)
    if type(err).__module__.startswith(("yaml", "safetensors", "onnx", "av.")):
        return _one_line(f"{type(err).__name__}: {err}")
    return None


def parse(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """The command line's arguments. ``section.key=value`` overrides of ``stpn train`` / ``stpn eval``
    may also stand after the options (``stpn eval CONFIG --weights W data.root=X``), which argparse
    alone refuses once an option has ended the positionals."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "command", None) in ("train", "eval") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parse(parser, argv)
    except SystemExit as done:  # --help, --version, or a refused argument (its line is printed)
        return done.code if isinstance(done.code, int) else 2
    debug = args.debug or os.environ.get("STPN_DEBUG") == "1"
    try:
        return _run(parser, args)
    except KeyboardInterrupt:
        print(f"stpn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - expected failures become one line, bugs keep their traceback
        message = user_error(err)
        if message is None or debug:
            raise
        print(f"stpn {args.command}: error: {message}", file=sys.stderr)
        return 2


def _run(parser, args) -> int:
    if args.command == "eval" and args.config and "=" in args.config and not Path(args.config).exists():
        args.config, args.overrides = None, [args.config, *args.overrides]  # an override, not a config file
    if args.command == "demo" and args.out is None:
        args.out = Path("runs/demo" if args.task == "det" else f"runs/demo_{args.task}")
        if args.quick:  # never the full demo's folder
            args.out = args.out.with_name(args.out.name + "_quick")
        if args.seed:
            args.out = args.out.with_name(f"{args.out.name}_seed{args.seed}")
    if args.command == "demo":  # a demo resumes in its folder: only a file there, or no room to write, is refused
        from .data.types import check_output
        check_output(args.out, "--out", overwrite=True, folder=True)
    if args.command == "demo" and args.task == "features":
        if args.size % 32 or args.size < 64:
            parser.error(f"--size must be a multiple of 32 and >= 64, got {args.size}")
        if args.frames < 2:
            parser.error(f"--frames must be >= 2, got {args.frames}")
        from .demos.features import run_demo
        run_demo(args.out, frames=args.frames, size=args.size, tiny=args.tiny, pretrained=args.pretrained)
        return 0
    if args.command == "demo":
        from .demos.paired import run_paired_demo
        run_paired_demo(args.task, args.out, quick=args.quick, seed=args.seed, static=args.static)
    elif args.command in ("train", "eval"):
        from .commands import run_task_command
        run_task_command(args)
    elif hasattr(args, "handler"):  # stpn export, stpn robustness and each task's own commands
        args.handler(args)
    elif args.command == "evaluate":
        from .commands import evaluate
        evaluate(args)
    else:
        from .commands import data
        data(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
