"""The detection task's own command, ``stpn detect`` (argument parsing only: imports nothing heavy)."""
from ..engine.tasks import add_source_arguments


def add_commands(sub) -> None:
    det = sub.add_parser("detect", help="detect objects in a video file, a frame folder or a webcam")
    add_source_arguments(det, "json detections per frame (JSON)")
    det.add_argument("--mode", choices=("global", "local", "causal"), default="causal",
                     help="causal: online, past frames only (default); global/local: offline, uses future frames")
    det.add_argument("--num-support", type=int, help="K (default: the config's test_num_support)")
    det.add_argument("--stride", type=int, help="default: the config's data.test_stride")
    det.add_argument("--refresh-every", type=int, help="causal prompt refresh (default: the config's data.test_refresh_every)")
    det.add_argument("--score-threshold", type=float, default=0.5)
    det.set_defaults(handler="stpn.detection.commands:cmd_detect")
