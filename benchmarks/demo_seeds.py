"""STPN's margin over the single-frame baseline on several seeds of a demo.

    python benchmarks/demo_seeds.py --task det --seeds 3 [--quick] [--static] [--out runs/demo_seeds]

Each seed runs the whole demo (``stpn demo --task TASK --seed N``: generated data from seeds
2N / 2N+1, pre-training where the demo has it, both models trained with seed N) in its own
folder, then prints every seed's numbers and the margin's mean, min and max, and writes
``summary.json`` and ``margins.png``. Finished seeds are read back, not run again. ``--static``
also trains the static-prompt control in each seed (``stpn demo --static``, seed folders
``<task>_static_seedN``) and gives STPN - static beside STPN - single frame.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from stpn.data.types import write_json
from stpn.evaluation.margins import margin_summary, strip_plot

MINUTES = {"det": (1, 18), "sot": (1, 10), "vis": (2, 15)}  # per seed on a 2-core CPU: quick, full (measured, busy machine)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from stpn.engine.registry import demo_module, demo_names
    parser.add_argument("--task", choices=tuple(demo_names()), required=True)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (0 is the README's demo run)")
    parser.add_argument("--quick", action="store_true", help="the quick demos (pipeline check, not accuracy)")
    parser.add_argument("--static", action="store_true", help="also the static-prompt control (a third model a seed)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo_seeds"))
    args = parser.parse_args(argv)
    console = Console(width=110)
    minutes = MINUTES[args.task][0 if args.quick else 1] * args.seeds * (1.5 if args.static else 1)
    console.print(f"{args.seeds} seeds of the {args.task} demo{' (quick)' if args.quick else ''}: about "
                  f"{minutes} min on 2 CPU cores; finished seeds in {args.out} are read back")
    from stpn.cli import main as stpn
    reports = {}
    stem = f"{args.task}{'_static' if args.static else ''}{'_quick' if args.quick else ''}"
    for seed in range(args.seeds):
        out = args.out / f"{stem}_seed{seed}"
        if not (out / "report.json").is_file():
            start = time.perf_counter()
            code = stpn(["demo", "--task", args.task, "--seed", str(seed), "--out", str(out),
                         *(["--quick"] if args.quick else []), *(["--static"] if args.static else [])])
            if code:
                console.print(f"seed {seed} failed (exit {code})")
                return code
            console.print(f"seed {seed}: {(time.perf_counter() - start) / 60:.1f} min")
        reports[seed] = json.loads((out / "report.json").read_text())
    metrics = list(demo_module(args.task).METRICS)
    summary = margin_summary(reports, metrics)
    static = margin_summary(reports, metrics, against="static") if args.static else None
    table = Table(title=f"{args.task} demo over {args.seeds} seeds (points)")
    for col in ("metric", "seed", "single frame", *(["static"] if static else []), "STPN", "STPN - single frame",
                *(["STPN - static"] if static else [])):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key, s in summary.items():
        for seed, r in s["per_seed"].items():
            st = static[key]["per_seed"][seed] if static else None
            table.add_row(key, str(seed), f"{r['baseline']:.1f}", *([f"{st['baseline']:.1f}"] if st else []),
                          f"{r['stpn']:.1f}", f"{r['margin']:+.1f}", *([f"{st['margin']:+.1f}"] if st else []))
        spread = lambda m: f"{m['mean']:+.1f} ({m['min']:+.1f}, {m['max']:+.1f})"  # noqa: E731
        table.add_row(key, "mean (min, max)", "", *([""] if static else []), "", spread(s),
                      *([spread(static[key])] if static else []), end_section=True)
    console.print(table)
    write_json(args.out / f"{stem}_summary.json", {**summary, **({"against_static": static} if static else {})})
    plot = strip_plot(summary, args.out / f"{stem}_margins.png",
                      f"{args.task} demo: STPN - single frame, {args.seeds} seeds")
    console.print(f"wrote {plot}")
    if static:
        console.print(f"wrote {strip_plot(static, args.out / f'{stem}_margins_static.png', f'{args.task} demo: STPN - static prompts, {args.seeds} seeds')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
