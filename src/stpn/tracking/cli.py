"""The tracking task's own command, ``stpn track``. Parsing imports nothing heavy (``stpn --help``
loads no torch): the command's body imports the model side when it runs."""
from ..engine.arguments import add_support_arguments, below_one, support_settings
from ..engine.tasks import add_source_arguments, check_source_outputs


def add_commands(sub) -> None:
    trk = sub.add_parser("track", help="track one target (first box given) in a video file, a frame folder or a webcam")
    add_source_arguments(trk, "txt boxes x,y,w,h per frame (GOT-10k results format)", weights_required=False)
    trk.add_argument("--onnx", help="instead of --weights: a folder written by stpn export (ONNX Runtime, CPU)")
    trk.add_argument("--box", required=True, help="the target in the first frame: x,y,w,h (pixels)")
    add_support_arguments(trk)
    trk.add_argument("--confidence", type=below_one, default=None,
                     help="target supports: a frame enters the memory only when the tracker's score is above this "
                          "(default: the run's tracking.confidence)")
    trk.set_defaults(handler=cmd_track)



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
    import itertools

    import numpy as np

    from ..data.types import atomic_write
    from ..data.video import mark_partial, open_source, partial_note, write_annotated
    from ..draw import draw_box
    from ..progress import track
    from .build import load_tracker
    from .tracker import check_box, track_frames
    if bool(args.weights) == bool(args.onnx):
        raise ValueError("give either --weights (a trained run) or --onnx (a folder written by stpn export)")
    if args.onnx and (args.config or args.device not in (None, "cpu")):
        raise ValueError("--onnx runs on ONNX Runtime on the CPU with the exported settings: --config and "
                         "--device do not apply")
    check_source_outputs(args, ("out", "txt"))
    if args.onnx:
        from .onnx import OnnxTracker
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
    rows = []

    def annotated():
        for frame, b, score, seconds in track(track_frames(model, itertools.chain([first], frames), box, K, S, R, device, None, args.confidence),
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
