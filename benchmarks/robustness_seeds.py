"""STPN minus the single-frame model under corruption, over the seeds of a demo.

    python benchmarks/robustness_seeds.py --task det --seeds 3 [--demo runs/demo_seeds] [--static] \
        [--corruptions ...] [--severities 1 3 5] [--videos 12] [--out runs/robustness_seeds]

For every seed folder that ``benchmarks/demo_seeds.py`` left (``<demo>/<task>[_static]_seedN``),
``stpn robustness`` scores its models with every frame corrupted (``out/seedN``; resumed there),
then the margins are averaged over the seeds: per corruption x severity cell the mean (and the
seeds' min and max), the mPC margin per seed, the worst cell and how many cells lie below -1
point. Writes ``summary.json`` and ``margin_mean.png`` (the heat map of the mean margin).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from stpn.data.corrupt import ALL, CORRUPTIONS
from stpn.data.types import write_json
from stpn.robustness import margin_heat_map, run_robustness, seed_margins


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="det", help="the demo's short name (det, sot, vis)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--demo", type=Path, default=Path("runs/demo_seeds"), help="demo_seeds.py's --out")
    parser.add_argument("--static", action="store_true", help="the seeds run with --static (scores the control too)")
    parser.add_argument("--corruptions", nargs="+", default=list(CORRUPTIONS), choices=ALL, metavar="KIND")
    parser.add_argument("--severities", nargs="+", type=int, default=[1, 2, 3, 4, 5], choices=range(1, 6))
    parser.add_argument("--videos", type=int, default=12, help="the first N validation videos of each seed")
    parser.add_argument("--out", type=Path, default=Path("runs/robustness_seeds"))
    args = parser.parse_args(argv)
    console = Console(width=110)
    stem = f"{args.task}{'_static' if args.static else ''}"
    reports = {}
    for seed in range(args.seeds):
        demo = args.demo / f"{stem}_seed{seed}"
        if not (demo / "report.json").is_file():
            console.print(f"{demo}: no finished demo (run benchmarks/demo_seeds.py --task {args.task} "
                          f"--seeds {args.seeds}{' --static' if args.static else ''} first)")
            return 2
        runs = {name: str(demo / name) for name in ("stpn", "baseline", *(["static"] if args.static else []))}
        console.print(f"seed {seed}: {', '.join(runs)} from {demo}")
        reports[seed] = run_robustness(runs, args.out / f"{stem}_seed{seed}", args.corruptions, args.severities,
                                       settings=("key+support",), videos=args.videos, console=console)
    pairs = [("stpn", "baseline"), *([("stpn", "static")] if args.static else [])]
    result = {f"{a}-{b}": seed_margins(reports, a, b) for a, b in pairs}
    for key, m in result.items():
        table = Table(title=f"{key}, every frame corrupted, mean over {args.seeds} seeds (points; min..max)")
        table.add_column("corruption")
        for s in args.severities:
            table.add_column(str(s), justify="right")
        for c, row in m["cells"].items():
            table.add_row(c, *[f"{v['mean']:+.1f} ({v['min']:+.0f}..{v['max']:+.0f})" for v in row.values()])
        console.print(table)
        below = sum(v["mean"] < -1 for row in m["cells"].values() for v in row.values())
        mp, w = m["mpc_margin"], m["worst_cell"]
        m["cells_below_minus_1"] = below
        console.print(f"{key}: mPC margin {mp['mean']:+.1f} ({mp['min']:+.1f} to {mp['max']:+.1f}); worst cell "
                      f"{w['corruption']} {w['severity']}: {w['mean']:+.1f}; cells below -1 point: {below}")
        import numpy as np
        plot = margin_heat_map(np.array(m["mean_grid"]), args.corruptions, args.severities,
                               f"{key}: mean over {args.seeds} seeds (points), every frame corrupted",
                               args.out / f"{stem}_{key}_mean.png")
        console.print(f"wrote {plot}")
    write_json(args.out / f"{stem}_summary.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
