"""The tracking task's own command, ``stpn track`` (argument parsing only: imports nothing heavy)."""
from ..engine.tasks import add_source_arguments


def add_commands(sub) -> None:
    trk = sub.add_parser("track", help="track one target (first box given) in a video file, a frame folder or a webcam")
    add_source_arguments(trk, "txt boxes x,y,w,h per frame (GOT-10k results format)", weights_required=False)
    trk.add_argument("--onnx", help="instead of --weights: a folder written by stpn export (ONNX Runtime, CPU)")
    trk.add_argument("--box", required=True, help="the target in the first frame: x,y,w,h (pixels)")
    trk.add_argument("--num-support", type=int, help="K (default: the config's test_num_support)")
    trk.add_argument("--stride", type=int, help="S (default: the config's test_stride)")
    trk.add_argument("--refresh-every", type=int, help="prompt refresh period (default: the config's)")
    trk.set_defaults(handler="stpn.tracking.commands:cmd_track")
