"""The segmentation task's own command, ``stpn segment`` (argument parsing only: imports nothing heavy)."""
from ..engine.arguments import add_support_arguments, fraction
from ..engine.tasks import add_source_arguments


def add_commands(sub) -> None:
    seg = sub.add_parser("segment", help="instance masks with track ids in a video file, a frame folder or a webcam")
    add_source_arguments(seg, "json the video's tracks as YouTube-VIS results (one RLE or null per frame)")
    seg.add_argument("--png-dir", help="per-frame PNGs of track ids (0: background), as YouTube-VOS / DAVIS masks")
    seg.add_argument("--mode", choices=("global", "local", "causal"), default="causal",
                     help="causal: online, past frames only (default); global/local: offline, uses future frames")
    add_support_arguments(seg)
    seg.add_argument("--score-threshold", type=fraction, help="default: the config's segmentation.score_threshold")
    seg.set_defaults(handler="stpn.segmentation.commands:cmd_segment")
