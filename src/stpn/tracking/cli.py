"""The tracking task's own command, ``stpn track`` (argument parsing only: imports nothing heavy)."""
from ..engine.arguments import add_support_arguments
from ..engine.tasks import add_source_arguments


def add_commands(sub) -> None:
    trk = sub.add_parser("track", help="track one target (first box given) in a video file, a frame folder or a webcam")
    add_source_arguments(trk, "txt boxes x,y,w,h per frame (GOT-10k results format)", weights_required=False)
    trk.add_argument("--onnx", help="instead of --weights: a folder written by stpn export (ONNX Runtime, CPU)")
    trk.add_argument("--box", required=True, help="the target in the first frame: x,y,w,h (pixels)")
    add_support_arguments(trk)
    trk.set_defaults(handler="stpn.tracking.commands:cmd_track")
