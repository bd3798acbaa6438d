"""The tracker's support design, part by part, on the tracking demo's seeds.

    python benchmarks/sot_ablation.py --seeds 3 [--seeds-dir runs/demo_seeds] [--out runs/sot_ablation]

Needs the demo's seeds first (``python benchmarks/demo_seeds.py --task sot --seeds N``): each seed's
data, pre-trained ViT, baseline and final STPN tracker are read from there. Per seed it trains three
more STPN trackers side by side (one thread each) from the same pre-trained ViT on the same data
and recipe (``sot_demo_cpu``), and scores every row on all and on deteriorated validation frames:

- ``global``: supports are past search crops pooled into position-free prompts (the earlier design);
- ``target``: supports are crops centred on the target at template scale, no position;
- ``target+position``: + a target token per support with its box and age embedded (no search map);
- ``target+position+map``: the demo's STPN as shipped (+ the search map), every frame admitted;
- ``target+position+map+gate``: the same model with the confidence gate at 0.5 (the field's value);
- ``target+position+map+prompt_gate``: the shipped design + the prompt-gated head (ODTrack/AQATrack:
  the search tokens weighted by their correlation with the prompts before the head), trained.

``--variants`` trains only some of the trained rows (default: all); trainings run ``--jobs`` at a
time (default 2, one thread each), across seeds.

Prints the AO margins over the seed's baseline (mean, min, max over seeds) and writes
``OUT/ablation.json``; finished runs are read back, not run again.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

VARIANTS = {"global": ["tracking.supports=search"], "target": ["tracking.support_box=false"],
            "target+position": ["tracking.support_map=false"], "target+position+map+prompt_gate": ["tracking.prompt_gate=true"]}
ROWS = ("global", "target", "target+position", "target+position+map", "target+position+map+gate",
        "target+position+map+prompt_gate")


def stpn(*args: str) -> None:
    code = subprocess.call([sys.executable, "-m", "stpn", *args])
    if code:
        raise SystemExit(f"stpn {' '.join(args)} failed (exit {code})")


def metrics(run: Path, out: Path, overrides=()) -> dict:
    """Evaluate once (results in ``out``) and return (AO all, AO deteriorated)."""
    if not (out / "metrics.json").is_file():
        config = [str(run / "config.json"), *overrides] if overrides else []
        stpn("eval", *config, "--weights", str(run), "--out", str(out), "--overwrite")
    m = json.loads((out / "metrics.json").read_text())
    return {"ao_all": m["ao_all"], "ao_deteriorated": m.get("ao_deteriorated")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seeds-dir", type=Path, default=Path("runs/demo_seeds"))
    parser.add_argument("--out", type=Path, default=Path("runs/sot_ablation"))
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), help="trained rows to run (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at a time (one thread each)")
    args = parser.parse_args(argv)
    from stpn.engine.config import packaged_config, seed_overrides
    variants = {k: VARIANTS[k] for k in (args.variants or VARIANTS)}
    pending = []
    for seed in range(args.seeds):
        demo = args.seeds_dir / f"sot_seed{seed}"
        if not (demo / "report.json").is_file():
            raise SystemExit(f"{demo}/report.json is missing: run benchmarks/demo_seeds.py --task sot --seeds {args.seeds}")
        for name, extra in variants.items():
            run = args.out / f"seed{seed}" / name
            if not (run / "model.safetensors").is_file():
                overrides = [f"data.root={demo / 'data'}", f"run.out={run}", f"model.weights={demo / 'pretrain' / 'model.safetensors'}",
                             "run.threads=1", *seed_overrides(seed), *extra]
                pending.append((run, [sys.executable, "-m", "stpn", "train", str(packaged_config("sot_demo_cpu")),
                                      *overrides, "--resume", "auto"]))
    running = []
    while pending or running:
        while pending and len(running) < args.jobs:
            run, command = pending.pop(0)
            run.mkdir(parents=True, exist_ok=True)
            log = open(run.parent / f"{run.name}.log", "w")
            running.append((run, log, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)))
        run, log, proc = running.pop(0)
        code = proc.wait()
        log.close()
        if code:
            raise SystemExit(f"the training {run} failed: see {run.parent / (run.name + '.log')}")
    results = {}
    for seed in range(args.seeds):
        demo = args.seeds_dir / f"sot_seed{seed}"
        base = metrics(demo / "baseline", demo / "baseline" / "eval")
        rows = {"baseline": base}
        for name in VARIANTS:
            if (args.out / f"seed{seed}" / name / "model.safetensors").is_file():
                rows[name] = metrics(args.out / f"seed{seed}" / name, args.out / f"seed{seed}" / name / "eval")
        rows["target+position+map"] = metrics(demo / "stpn", args.out / f"seed{seed}" / "nogate_eval",
                                              ["tracking.confidence=0.0"])
        rows["target+position+map+gate"] = metrics(demo / "stpn", args.out / f"seed{seed}" / "gate_eval",
                                                   ["tracking.confidence=0.5"])
        results[seed] = rows
    table = {}
    print(f"{'row':24s} {'AO all: margin mean (min, max)':>34s} {'AO deteriorated: margin mean (min, max)':>42s}")
    for row in ROWS:
        if any(row not in results[s] for s in results):
            continue  # not trained (--variants)
        entry = {}
        for key in ("ao_all", "ao_deteriorated"):
            m = [100 * (results[s][row][key] - results[s]["baseline"][key]) for s in results]
            entry[key] = {"mean": sum(m) / len(m), "min": min(m), "max": max(m), "per_seed": m}
        table[row] = entry
        f = lambda e: f"{e['mean']:+.1f} ({e['min']:+.1f}, {e['max']:+.1f})"  # noqa: E731
        print(f"{row:24s} {f(entry['ao_all']):>34s} {f(entry['ao_deteriorated']):>42s}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation.json").write_text(json.dumps({"seeds": results, "margins": table}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
