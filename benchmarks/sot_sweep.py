"""Tracking-demo variants over seeds, many runs at once (a many-core machine or a GPU).

    python benchmarks/sot_sweep.py --variants demo scratch --seeds 3 [--jobs 12] [--device cuda] [--out runs/sot_sweep]

Each (variant, seed) gets its own generated data (the demo's seeds: data 2N / 2N+1, training N)
and trains STPN and the single-frame baseline from ``sot_demo_cpu`` plus the variant's
overrides, one thread per run, ``--jobs`` runs at a time, then scores both on all and on the
deteriorated validation frames. Results go to ``OUT/results.jsonl`` as runs finish (a rerun
skips finished runs) and a table of AO margins (mean, min, max over seeds) is printed.
The README's numbers come from ``benchmarks/demo_seeds.py``; this script is for choosing.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

OLD_CROPS = ["tracking.search_factor=4.0", "tracking.template_size=64"]  # 0.8x the frame's scale
# name: (starts from the pre-trained ViT, overrides of sot_demo_cpu)
VARIANTS = {
    "demo": (True, []),  # the shipped demo
    "scratch": (False, []),
    "crops08": (True, OLD_CROPS),
    "crops08_indep": (True, [*OLD_CROPS, "tracking.support_jitter=independent"]),
    "crops08_scratch": (False, OLD_CROPS),
    "jitter1": (True, ["tracking.center_jitter=1.0"]),
    "jitter3": (True, ["tracking.center_jitter=3.0"]),
    "epochs30": (True, ["optim.epochs=30"]),
    "k4": (True, ["data.train_num_support=4", "data.test_num_support=4"]),
    # the demo before the look-alikes (commit d62b511): from scratch, 0.8x crops, independent jitter of 1.0
    "old_demo": (False, [*OLD_CROPS, "tracking.support_jitter=independent", "tracking.center_jitter=1.0",
                         "data.synth.look_alike=0.0", "data.synth.min_objects=1"]),
}


def pretrain_overrides(seed: int, out: Path, device: str) -> list[str]:
    from stpn.engine.config import seed_overrides
    return [f"data.root={out / f'pretrain_seed{seed}' / 'data'}", f"run.out={out / f'pretrain_seed{seed}'}",
            f"run.device={device}", "run.threads=1", *seed_overrides(seed), *QUICK]


def overrides(variant: str, seed: int, out: Path, prompting: bool, device: str) -> list[str]:
    from stpn.engine.config import seed_overrides
    folder = out / f"{variant}_seed{seed}"
    pretrained, extra = VARIANTS[variant]
    weights = [f"model.weights={out / f'pretrain_seed{seed}' / 'model.safetensors'}"] if pretrained else []
    return [*weights, f"data.root={folder / 'data'}", f"run.out={folder / ('stpn' if prompting else 'baseline')}",
            f"model.prompting={str(prompting).lower()}", f"run.device={device}", "run.threads=1",
            *extra, *seed_overrides(seed), *QUICK]


QUICK: list[str] = []  # --quick: a plumbing check


def one(variant: str, seed: int, prompting: bool, out: Path, device: str) -> dict:
    """Train (or resume) and evaluate one run; returns its row."""
    import torch
    torch.set_num_threads(1)
    from stpn.engine.config import load_config, packaged_config
    from stpn.engine.trainer import train
    from stpn.tracking.evaluate import evaluate_tracking
    from stpn.tracking.task import TrackingTask
    cfg = load_config(packaged_config("sot_demo_cpu"), overrides(variant, seed, out, prompting, device))
    task = TrackingTask()
    start = time.perf_counter()
    run = train(cfg, task, resume="auto")
    seconds = time.perf_counter() - start
    model, _ = task.load(run / "model.safetensors", None, [f"run.device={device}"])
    import importlib.util
    if importlib.util.find_spec("matplotlib") is None:  # a bare GPU machine: no success plot
        import stpn.evaluation.got10k as g
        g.plot_success = lambda *a, **k: None
    m = evaluate_tracking(model, cfg, run / "eval")
    return {"variant": variant, "seed": seed, "model": "stpn" if prompting else "baseline", "settings": VARIANTS[variant],
            "ao_all": m["ao_all"], "ao_deteriorated": m.get("ao_deteriorated"), "sr50_all": m["sr50_all"],
            "train_seconds": seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["demo", "scratch"], choices=tuple(VARIANTS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("runs/sot_sweep"))
    parser.add_argument("--one", nargs=3, metavar=("VARIANT", "SEED", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="1 epoch on 8 + 4 videos: a plumbing check")
    args = parser.parse_args(argv)
    if args.quick:
        QUICK.extend(["optim.epochs=1", "data.synth.train_videos=8", "data.synth.val_videos=4"])
    results = args.out / "results.jsonl"
    if args.one and args.one[0] == "pretrain":
        import torch
        torch.set_num_threads(1)
        from stpn.classification.task import ClassificationTask, evaluate_classifier
        from stpn.engine.config import load_config, packaged_config
        from stpn.engine.trainer import train
        cfg = load_config(packaged_config("sot_demo_cpu_pretrain"), pretrain_overrides(int(args.one[1]), args.out, args.device))
        run = train(cfg, ClassificationTask(), resume="auto")
        model, _ = ClassificationTask().load(run / "model.safetensors", None, [f"run.device={args.device}"])
        print(json.dumps(evaluate_classifier(model, cfg)))
        return 0
    if args.one:
        v, s, name = args.one
        row = {**one(v, int(s), name == "stpn", args.out, args.device), "quick": args.quick}
        with results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        sys.stdout.flush()
        os._exit(0)  # a CUDA worker has been seen to hang at interpreter exit
    args.out.mkdir(parents=True, exist_ok=True)
    done = set()
    for r in read_rows(results):  # finished runs are read back; a variant redefined since is refused
        if r["settings"] != list(VARIANTS[r["variant"]]) or r.get("quick", False) != args.quick:
            raise SystemExit(f"{results}: {r['variant']} seed {r['seed']} ran with other settings "
                             f"({r['settings']}, quick={r.get('quick', False)}); use another --out")
        done.add((r["variant"], r["seed"], r["model"]))
    from stpn.data.splits import read_split
    from stpn.engine.config import load_config, packaged_config
    todo = []
    for v in args.variants:
        for s in range(args.seeds):
            cfg = load_config(packaged_config("sot_demo_cpu"), overrides(v, s, args.out, True, args.device))
            read_split(cfg.data, cfg.data.train_split), read_split(cfg.data, cfg.data.val_split)  # generate once
            todo += [(v, s, m) for m in ("stpn", "baseline") if (v, s, m) not in done]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    seeds = sorted({s for v, s, _ in todo if VARIANTS[v][0]})
    pre = [(s, subprocess.Popen([sys.executable, __file__, "--one", "pretrain", str(s), "-", "--out", str(args.out),
                                  "--device", args.device, *(["--quick"] if args.quick else [])],
                                 stdout=(args.out / f"pretrain_seed{s}.log").open("w"), stderr=subprocess.STDOUT, env=env))
           for s in seeds if not (args.out / f"pretrain_seed{s}" / "model.safetensors").is_file()]
    for s, proc in pre:
        if proc.wait():
            raise SystemExit(f"pre-training seed {s} failed; see {args.out / f'pretrain_seed{s}.log'}")
        print(f"{time.perf_counter() - t0:6.0f} s  pre-trained seed {s}: "
              f"{(args.out / f'pretrain_seed{s}.log').read_text().splitlines()[-1]}", flush=True)
    print(f"{len(todo)} runs, {args.jobs} at a time", flush=True)
    running = []
    while todo or running:
        while todo and len(running) < args.jobs:
            v, s, m = todo.pop(0)
            log = (args.out / f"{v}_seed{s}_{m}.log").open("w")
            cmd = [sys.executable, __file__, "--one", v, str(s), m, "--out", str(args.out), "--device", args.device,
                   *(["--quick"] if args.quick else [])]
            running.append(((v, s, m), subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)))
        time.sleep(2)
        for item in [r for r in running if r[1].poll() is not None]:
            running.remove(item)
            print(f"{time.perf_counter() - t0:6.0f} s  {item[0]} exit {item[1].returncode}", flush=True)
    summarize(results)
    return 0


def read_rows(results: Path) -> list[dict]:
    """The finished runs' rows (JSON lines; settings as JSON gives them back: lists)."""
    if not results.is_file():
        return []
    return [json.loads(line) for line in results.read_text().splitlines()]


def summarize(results: Path) -> None:
    """Per variant: each seed's single frame -> STPN AO and the margin's mean (min, max) over the
    seeds where both runs finished."""
    from stpn.evaluation.margins import margin_summary
    rows = read_rows(results)
    for v in dict.fromkeys(r["variant"] for r in rows):
        by_seed = {}
        for r in rows:
            if r["variant"] == v:
                by_seed.setdefault(r["seed"], {})[r["model"]] = r
        reports = {s: m for s, m in by_seed.items() if {"stpn", "baseline"} <= set(m)}
        if not reports:
            continue
        line = [f"{v:16s}"]
        for key, k in margin_summary(reports, ["ao_all", "ao_deteriorated"]).items():
            seeds = " ".join(f"{r['baseline']:.1f}->{r['stpn']:.1f}" for r in k["per_seed"].values())
            line.append(f"{key}: {seeds}  margin {k['mean']:+.1f} ({k['min']:+.1f}..{k['max']:+.1f})")
        print("  ".join(line), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
