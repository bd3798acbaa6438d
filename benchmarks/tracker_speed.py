"""Tracking frames per second, STPN versus the no-prompt baseline, ViT-Tiny and ViT-Base.

    python benchmarks/tracker_speed.py                 # ViT-Tiny and ViT-Base, search 256, template 128
    python benchmarks/tracker_speed.py --models vit_tiny_patch16_224 --frames 20
    python benchmarks/tracker_speed.py --models vit_base_patch16_224 --dtypes fp32 bf16 --backends eager compiled

Random-init weights (speed does not depend on them), a generated 640x360 video, the full
tracking loop per frame (crop, joint template + search pass, head, box back to the frame; for
STPN also the unprompted support passes and the predictor at their real rates). Target supports
(the default) run with the confidence gate at 0, so every grid frame whose box is usable enters the
memory and pays its support pass (with random weights some boxes are unusable and do not). The baseline
and each STPN setting run interleaved in rounds, so machine noise hits them alike; the table
gives the median per-frame time over rounds and the ratio to the baseline of the same precision
and compilation. ``--dtypes bf16`` runs under autocast; ``--backends compiled`` times
``STPNTracker.compile()`` (compilation happens in the first round, which is not counted then).
"""
from __future__ import annotations

import argparse
import statistics

import torch
from rich.console import Console
from rich.table import Table

from _timing import DTYPES, default_device, device_name, now, precision
from stpn.data.synth import SynthConfig, synth_video
from stpn.tracking.model import STPNTracker
from stpn.tracking.tracker import start, step


def seconds_per_frame(model, frames, box, K, S, R, device, warm=2) -> float:
    state = start(model, frames[0], box, K, S, R, device, confidence=0.0)  # every grid frame admitted
    times = []
    for t, frame in enumerate(frames[1:], 1):
        t0 = now(device)
        _, _, state = step(model, frame, state)
        if t > warm:
            times.append(now(device) - t0)
    return sum(times) / len(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["vit_tiny_patch16_224", "vit_base_patch16_224"])
    parser.add_argument("--frames", type=int, default=26, help="frames per round (after 2 warm-up frames)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--dtypes", nargs="+", default=["fp32"], choices=list(DTYPES))
    parser.add_argument("--backends", nargs="+", default=["eager"], choices=["eager", "compiled"])
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    video, _, _ = synth_video(SynthConfig(videos=1, frames=args.frames + 3, width=640, height=360, max_objects=1), 0)
    frames = [video.frames[t] for t in range(len(video))]
    x1, y1, x2, y2 = video.targets[0].boxes[0]
    box = [x1, y1, x2 - x1, y2 - y1]
    # label: (prompting, supports, K, S, refresh); target supports refresh their prompts every frame
    settings = {"baseline (no prompts)": (False, "target", 4, 4, 4),
                "STPN target K=4 S=4 (default)": (True, "target", 4, 4, 4),
                "STPN target K=2 S=1": (True, "target", 2, 1, 1),
                "STPN search K=4 S=4 refresh 4": (True, "search", 4, 4, 4),
                "STPN search K=2 S=1 refresh 1": (True, "search", 2, 1, 1)}
    table = Table(title=f"tracking speed, search 256 / template 128, {device_name(args.device)}")
    for col in ("backbone", "precision", "compiled", "setting", "ms/frame", "FPS", "x baseline"):
        table.add_column(col, justify="right" if col in ("ms/frame", "FPS", "x baseline") else "left")
    for name in args.models:
        for compiled in [b == "compiled" for b in args.backends]:
            models = {label: STPNTracker(name, prompting=p, supports=sup).eval().to(args.device)
                      for label, (p, sup, *_) in settings.items()}
            if compiled:
                for model in models.values():
                    model.compile()
            for dtype in args.dtypes:
                per = {label: [] for label in settings}
                with torch.no_grad(), precision(args.device, dtype):
                    for r in range(args.rounds + compiled):  # a compiled model's first round compiles
                        for label, (_, _, K, S, R) in settings.items():
                            seconds = seconds_per_frame(models[label], frames, box, K, S, R, args.device)
                            if not (compiled and r == 0):
                                per[label].append(seconds)
                base = statistics.median(per["baseline (no prompts)"])
                for label in settings:
                    s = statistics.median(per[label])
                    table.add_row(name, dtype, "yes" if compiled else "no", label, f"{1e3 * s:.1f}", f"{1 / s:.1f}",
                                  f"{s / base:.2f}")
                    print(name, dtype, compiled, label, f"{1e3 * s:.2f} ms", flush=True)
    Console(width=110).print(table)


if __name__ == "__main__":
    main()
