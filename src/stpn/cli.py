"""The ``stpn`` command."""
from __future__ import annotations

import argparse
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="stpn", description="Spatio-temporal prompting for video features")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="feature extraction on a generated clip: baseline vs STPN, a table")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for report.json")
    demo.add_argument("--frames", type=int, default=24)
    demo.add_argument("--size", type=int, default=224, help="frame side in pixels (multiple of 32)")
    demo.add_argument("--tiny", action="store_true", help="a 32-dim Swin instead of Swin-T (seconds)")
    demo.add_argument("--pretrained", action="store_true", help="timm's ImageNet Swin-T weights (needs the hub)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.size % 32 or args.size < 64:
            parser.error(f"--size must be a multiple of 32 and >= 64, got {args.size}")
        if args.frames < 2:
            parser.error(f"--frames must be >= 2, got {args.frames}")
        from .demo import run_demo
        run_demo(args.out, frames=args.frames, size=args.size, tiny=args.tiny, pretrained=args.pretrained)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
