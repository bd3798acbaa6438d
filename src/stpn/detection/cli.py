"""The detection task's own command, ``stpn detect`` (argument parsing only: imports nothing heavy)."""
from ..engine.arguments import add_support_arguments, fraction
from ..engine.tasks import add_source_arguments


def add_commands(sub) -> None:
    det = sub.add_parser("detect", help="detect objects in a video file, a frame folder or a webcam")
    add_source_arguments(det, "json detections per frame (JSON)")
    det.add_argument("--mode", choices=("global", "local", "causal"), default="causal",
                     help="causal: online, past frames only (default); global/local: offline, uses future frames")
    add_support_arguments(det)
    det.add_argument("--score-threshold", type=fraction, default=0.5, help="keep detections scoring at least this")
    det.set_defaults(handler="stpn.detection.commands:cmd_detect")
