"""Per-frame inference cost of the detector, STPN versus the single-frame baseline, per mode.

    python benchmarks/detector_speed.py              # the demo's tiny detector, 160x120 frames
    python benchmarks/detector_speed.py --swin-t     # Swin-T Faster R-CNN at 1000x600 (slow on a CPU)
    python benchmarks/detector_speed.py --swin-t --device cuda --dtypes fp32 bf16 --backends eager compiled

Each mode runs over the same generated video; the first frames (warm-up) are not counted.
global: prompts once per video (K=14), amortised over the frames; local: K=2 neighbours per
frame (each frame embedded once); causal: a stream refreshing every 8 frames (K=4, S=8).
``--dtypes bf16`` runs under autocast; ``--backends compiled`` times the backbone compiled
(``torch.compile``, one graph per input shape); the warm-up column (first 2 frames, compilation
included) is not counted in ms/frame.
Ratios divide by the baseline of the same precision and compilation.
"""
from __future__ import annotations

import argparse

import torch
from rich.console import Console
from rich.table import Table

from _timing import default_device, device_name, now, precision
from stpn.data.synth import SynthConfig, synth_video
from stpn.detection.build import build_detector
from stpn.detection.inference import predict_video
from stpn.engine.config import load_config, packaged_config

MODES = {"global K=14 (offline)": ("global", 14, 1, 1),
         "local K=2 S=2 (offline)": ("local", 2, 2, 1),
         "causal K=4 S=8 refresh 8 (online)": ("causal", 4, 8, 8)}


def per_frame(det, video, mode, K, S, refresh, device, dtype, warm: int = 2) -> tuple[float, float]:
    """(seconds per frame after the warm-up, seconds of the warm-up frames)."""
    with precision(device, dtype):
        gen = predict_video(det, video, mode, K, S, refresh, device=device)
        start = now(device)
        for _ in range(warm):
            next(gen)
        mid = now(device)
        n = sum(1 for _ in gen)
        return (now(device) - mid) / n, mid - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--swin-t", action="store_true")
    parser.add_argument("--frames", type=int, default=34)
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--dtypes", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--backends", nargs="+", default=["eager"], choices=["eager", "compiled"])
    parser.add_argument("--modes", nargs="+", default=["global", "local", "causal"], choices=["global", "local", "causal"])
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.swin_t:
        cfg = load_config(packaged_config("vid_swin_t"))
        size = (1000, 600)
    else:
        cfg = load_config(packaged_config("demo_cpu"))
        size = (160, 120)
    video, _, _ = synth_video(SynthConfig(videos=1, frames=args.frames, width=size[0], height=size[1]), 0)
    rows = []  # (precision, compiled, mode, seconds per frame, baseline seconds, warm-up seconds)
    with torch.no_grad():
        for compiled in [b == "compiled" for b in args.backends]:
            models = {}
            for prompting in (False, True):
                cfg.model.prompting = prompting
                models[prompting] = build_detector(cfg).eval().to(args.device)
                if compiled:
                    models[prompting].stpn.backbone.compile(dynamic=False)
            for dtype in args.dtypes:
                base, warm = per_frame(models[False], video, "global", 1, 1, 1, args.device, dtype)
                rows.append((dtype, compiled, "single frame (baseline)", base, base, warm))
                print(*rows[-1], flush=True)
                for label, (mode, K, S, N) in MODES.items():
                    if mode in args.modes:
                        seconds, warm = per_frame(models[True], video, mode, K, S, N, args.device, dtype)
                        rows.append((dtype, compiled, label, seconds, base, warm))
                        print(*rows[-1], flush=True)
    table = Table(title=f"detector inference, {'Swin-T' if args.swin_t else 'demo tiny Swin'}, "
                        f"{size[0]}x{size[1]}, {device_name(args.device)}")
    numbers = ("ms/frame", "frames/s", "x baseline", "warm-up s")
    for col in ("precision", "backbone", "mode", *numbers):
        table.add_column(col, justify="right" if col in numbers else "left")
    for dtype, compiled, label, seconds, base, warm in rows:
        table.add_row(dtype, "compiled" if compiled else "eager", label, f"{seconds * 1e3:.1f}", f"{1 / seconds:.1f}",
                      f"{seconds / base:.2f}", f"{warm:.1f}")
    Console(width=120).print(table)
    return rows


if __name__ == "__main__":
    main()
