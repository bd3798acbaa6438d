"""The segmentation task's own command, ``stpn segment`` (argument parsing only: imports nothing heavy)."""
from ..engine.tasks import add_source_arguments


def add_commands(sub) -> None:
    seg = sub.add_parser("segment", help="instance masks with track ids in a video file, a frame folder or a webcam")
    add_source_arguments(seg, "json the video's tracks as YouTube-VIS results (one RLE or null per frame)")
    seg.add_argument("--png-dir", help="per-frame PNGs of track ids (0: background), as YouTube-VOS / DAVIS masks")
    seg.add_argument("--mode", choices=("global", "local", "causal"), default="causal",
                     help="causal: online, past frames only (default); global/local: offline, uses future frames")
    seg.add_argument("--num-support", type=int, help="K (default: the config's data.test_num_support)")
    seg.add_argument("--stride", type=int, help="default: the config's data.test_stride")
    seg.add_argument("--refresh-every", type=int, help="causal prompt refresh (default: the config's data.test_refresh_every)")
    seg.add_argument("--score-threshold", type=float, help="default: the config's segmentation.score_threshold")
    seg.set_defaults(handler="stpn.segmentation.commands:cmd_segment")
