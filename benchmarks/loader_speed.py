"""Training images/s of the demo detector with frames decoded in 0 and 2 DataLoader workers.

    python benchmarks/loader_speed.py [--iterations 20] [--repeats 2] [--data runs/bench_loader/data]

The demo's config (``demo_cpu``: STPN, K=2 bilateral supports, batch 4) trains for the given
iterations from scratch with ``run.num_workers`` 0 and 2, alternately, each time in a fresh run
folder; printed: key frames per second of each (median over repeats) and their ratio. The
generated data is written once and read back as JPEG files, so decoding costs what it costs on
a real dataset.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch


def main(argv=None) -> None:
    from stpn.detection.task import DetectionTask
    from stpn.engine.config import load_config, packaged_config
    from stpn.engine.trainer import train
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--data", default="runs/bench_loader/data")
    args = parser.parse_args(argv)
    seconds: dict[int, list[float]] = {w: [] for w in args.workers}
    batch = None
    for r in range(args.repeats):
        for w in args.workers:
            out = Path(tempfile.mkdtemp(prefix="stpn_loader_"))
            cfg = load_config(packaged_config("demo_cpu"), [f"data.root={args.data}", f"run.out={out}",
                                                            f"run.num_workers={w}", "run.log_every=1000"])
            DetectionTask().train_dataset(cfg)  # generate the data before timing
            batch = cfg.optim.batch_size
            start = time.perf_counter()
            train(cfg, DetectionTask(), max_iterations=args.iterations)
            seconds[w].append(time.perf_counter() - start)
            shutil.rmtree(out, ignore_errors=True)
            print(f"repeat {r}, {w} workers: {args.iterations * batch / seconds[w][-1]:.2f} key frames/s")
    base = statistics.median(seconds[args.workers[0]])
    print(f"\n{'workers':>8} {'key frames/s':>13} {'x 0 workers':>12}   (torch threads {torch.get_num_threads()})")
    for w in args.workers:
        med = statistics.median(seconds[w])
        print(f"{w:>8} {args.iterations * batch / med:>13.2f} {base / med:>12.2f}")


if __name__ == "__main__":
    main()
