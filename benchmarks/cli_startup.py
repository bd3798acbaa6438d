"""How long `stpn --help` and `stpn <command> --help` take, as whole processes (printed, never
asserted). Parsing loads no torch; the figure is Python's start plus argparse and rich.

    python benchmarks/cli_startup.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = [["--help"], ["--version"], ["detect", "--help"], ["track", "--help"], ["segment", "--help"],
            ["train", "--help"], ["evaluate", "vid", "--help"]]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    code = "import sys; from stpn.cli import main; rc = main(sys.argv[1:]); print('torch' in sys.modules, file=sys.stderr)"
    for command in COMMANDS:
        times, torch_loaded = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            torch_loaded = done.stderr.strip().splitlines()[-1]
        print(f"stpn {' '.join(command):24s} median {statistics.median(times) * 1e3:6.0f} ms "
              f"(min {min(times) * 1e3:.0f}, max {max(times) * 1e3:.0f}; torch loaded: {torch_loaded})")


if __name__ == "__main__":
    main()
