"""Per-frame inference cost of the detector, STPN versus the single-frame baseline, per mode.

    python benchmarks/detector_speed.py              # the demo's tiny detector, 160x120 frames
    python benchmarks/detector_speed.py --swin-t     # Swin-T Faster R-CNN at 600x1000 (slow on a CPU)

Each mode runs over the same generated video; the first frames (warm-up) are not counted.
global: prompts once per video (K=14), amortised over the frames; local: K=2 neighbours per
frame (each frame embedded once); causal: a stream refreshing every 8 frames (K=4, S=8).
"""
from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console
from rich.table import Table

from stpn.data.synth import SynthConfig, synth_video
from stpn.detection.task import build_detector, predict_video
from stpn.engine.config import load_config, packaged_config


def per_frame(det, video, mode, K, S, refresh, warm: int = 2) -> float:
    gen = predict_video(det, video, mode, K, S, refresh)
    for _ in range(warm):
        next(gen)
    start = time.perf_counter()
    n = sum(1 for _ in gen)
    return (time.perf_counter() - start) / n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--swin-t", action="store_true")
    parser.add_argument("--frames", type=int, default=34)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.swin_t:
        cfg = load_config(packaged_config("vid_swin_t"))
        size = (1000, 600)
    else:
        cfg = load_config(packaged_config("demo_cpu"))
        size = (160, 120)
    video, _, _ = synth_video(SynthConfig(videos=1, frames=args.frames, width=size[0], height=size[1]), 0)
    rows = []
    with torch.no_grad():
        cfg.model.prompting = False
        base = per_frame(build_detector(cfg).eval(), video, "global", 1, 1, 1)
        cfg.model.prompting = True
        det = build_detector(cfg).eval()
        rows.append(("single frame (baseline)", base))
        for label, (mode, K, S, N) in {"global K=14 (offline)": ("global", 14, 1, 1),
                                       "local K=2 S=2 (offline)": ("local", 2, 2, 1),
                                       "causal K=4 S=8 refresh 8 (online)": ("causal", 4, 8, 8)}.items():
            rows.append((label, per_frame(det, video, mode, K, S, N)))
    table = Table(title=f"detector inference, {'Swin-T' if args.swin_t else 'demo tiny Swin'}, "
                        f"{size[0]}x{size[1]}, CPU {torch.get_num_threads()} threads")
    for col in ("mode", "ms/frame", "x baseline"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for label, seconds in rows:
        table.add_row(label, f"{seconds * 1e3:.1f}", f"{seconds / base:.2f}")
    Console(width=100).print(table)


if __name__ == "__main__":
    main()
