"""Robustness curves: each model's score as the validation frames get worse (no peer has them).

For every corruption asked for (``stpn.data.corrupt``: this project's first five by default, the
15 of ImageNet-C by their names, the video ones ``frame_drop``, ``h264``, ``temporal_average``) and
severity 1-5, the validation videos are corrupted at test time and every model is scored with
its task's headline metric (AP50 for detection, AO for tracking, mask AP50 for segmentation) at
its config's test settings, in up to three settings:

- ``key+support``: every frame is corrupted (the key frame and the frames the prompts come from);
- ``key``: only the key frames are; the support stream reads the clean frames (a prompted model
  only; for a tracker the search crops it keeps as supports are cut from the clean frames);
- ``support``: only the frames the prompts come from are; the key frames are clean.

The field's summaries (Michaelis et al. 2019): mPC, the mean score over corruptions and
severities (every frame corrupted), and rPC = mPC / the clean score, per run.

Severity 0 is the clean evaluation. Results go to ``robustness.json`` after every evaluation
(atomic writes), so an interrupted run resumes where it stopped; ``robustness.png`` plots metric
vs severity per corruption, every model in its colour, solid for key+support, dashed for key only,
dotted for supports only; with two runs or more, ``robustness_margin.png`` is the heat map (corruption x
severity) of the first prompted run minus the first unprompted one.
"""
from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .data.corrupt import ALL, CORRUPTIONS, corrupt_video
from .data.types import atomic_path, differences, write_json
from .progress import Progress

SETTINGS = ("key+support", "key", "support")
DEFAULT_SETTINGS = SETTINGS[:2]
DEFINITIONS = "stpn-2 (ImageNet-C names; the first motion blur is linear_motion_blur)"


def _load(weights: str):
    from .engine.registry import get_task
    from .engine.runs import resolve_run
    _, cfg = resolve_run(weights, None, [])
    task = get_task(cfg.task)
    model, cfg = task.load(weights)
    return task, model, cfg


def run_robustness(runs: dict[str, str], out: str | Path, corruptions=CORRUPTIONS, severities=(1, 2, 3, 4, 5),
                   settings=DEFAULT_SETTINGS, videos: int | None = None, seed: int = 0,
                   console: Console | None = None) -> dict:
    """Score every run (name -> weights) on its validation split under the corruption suite.
    ``videos``: the first N validation videos only. Returns the report written to
    ``out/robustness.json``."""
    from .data.splits import read_split
    console = console or Console(width=120)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "robustness.json"
    bad = [c for c in corruptions if c not in ALL]
    if bad:
        raise ValueError(f"unknown corruption(s) {bad}; choose from {ALL}")
    bad = [s for s in severities if s not in (1, 2, 3, 4, 5)]
    if bad:
        raise ValueError(f"severities must be in 1..5, got {bad}")
    bad = [s for s in settings if s not in SETTINGS]
    if bad:
        raise ValueError(f"settings must be among {SETTINGS}, got {bad}")
    plan = {"corruptions": list(corruptions), "severities": list(severities), "settings": list(settings),
            "videos": videos, "seed": seed, "definitions": DEFINITIONS}
    report = {"plan": plan, "runs": {}}
    if path.is_file():  # resume: the same plan continues, another plan is refused
        old = json.loads(path.read_text())
        diff = differences(old.get("plan") or {}, plan)
        if diff:
            raise ValueError(f"{path} holds a run with another plan ({'; '.join(diff[:4])}); "
                             f"use another --out or the same settings")
        report = old
    loaded = {name: _load(w) for name, w in runs.items()}
    tasks = {task.name for task, _, _ in loaded.values()}
    if len(tasks) > 1:
        raise ValueError(f"the runs belong to different tasks ({sorted(tasks)}): compare runs of one task")
    jobs = []  # (run, corruption, severity, setting)
    for name, (task, model, cfg) in loaded.items():
        if name in report["runs"] and report["runs"][name]["weights"] != str(runs[name]):
            raise ValueError(f"{path}: run {name!r} was scored from {report['runs'][name]['weights']}, not "
                             f"{runs[name]}; use another --out or another name")
        entry = report["runs"].setdefault(name, {"weights": str(runs[name]), "metric": task.robustness_metric,
                                                 "prompting": bool(getattr(model, "stpn", model).prompting),
                                                 "clean": None, "curves": {}})
        modes = [s for s in settings if entry["prompting"] or s == "key+support"]  # no supports: one setting
        if entry["clean"] is None:
            jobs.append((name, None, 0, "key+support"))
        for c in corruptions:
            curves = entry["curves"].setdefault(c, {})
            for mode in modes:
                values = curves.setdefault(mode, {})
                jobs += [(name, c, s, mode) for s in severities if str(s) not in values]
    split = {name: read_split(cfg.data, cfg.data.val_split)[:videos] for name, (_, _, cfg) in loaded.items()}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("left"), TimeRemainingColumn())  # the expected time, from the evaluations done
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("robustness", total=len(jobs))
        for name, c, s, mode in jobs:
            task, model, cfg = loaded[name]
            progress.update(bar, description=f"{name}: {c or 'clean'} {s} {mode}")
            clean = split[name]
            if c is None:
                value = task.robustness_score(model, cfg, clean)
                report["runs"][name]["clean"] = value
            else:
                corrupted = [corrupt_video(v, c, s, seed) for v in clean]
                if mode == "support":  # clean key frames, prompts from the corrupted ones
                    value = task.robustness_score(model, cfg, clean, corrupted)
                else:
                    value = task.robustness_score(model, cfg, corrupted, clean if mode == "key" else None)
                report["runs"][name]["curves"][c][mode][str(s)] = value
            write_json(path, report)
            progress.advance(bar)
    report["summary"] = summary(report)
    write_json(path, report)
    print_robustness(report, console)
    plot_robustness(report, out / "robustness.png")
    if len(report["runs"]) >= 2:
        heat_map(report, out / "robustness_margin.png")
    return report


def summary(report: dict) -> dict:
    """Per run: mPC (mean over the plan's corruptions and severities, every frame corrupted),
    rPC = mPC / clean, and each cell (corruption -> severity -> score); None where a cell is missing."""
    plan = report["plan"]
    out = {}
    for name, entry in report["runs"].items():
        cells = {c: {str(s): entry["curves"].get(c, {}).get("key+support", {}).get(str(s))
                     for s in plan["severities"]} for c in plan["corruptions"]}
        values = [v for row in cells.values() for v in row.values()]
        mpc = None if not values or any(v is None for v in values) else sum(values) / len(values)
        rpc = None if mpc is None or not entry["clean"] else mpc / entry["clean"]
        out[name] = {"clean": entry["clean"], "mpc": mpc, "rpc": rpc, "cells": cells}
    return out


def heat_map(report: dict, path: str | Path, first: str | None = None, second: str | None = None) -> Path:
    """Corruption x severity heat map of ``first`` - ``second`` (points, every frame corrupted);
    default: the first prompted run minus the first unprompted one (else the first two runs)."""
    runs = report["runs"]
    if first is None or second is None:
        prompted = [n for n, e in runs.items() if e["prompting"]]
        plain = [n for n, e in runs.items() if not e["prompting"]]
        first, second = (prompted[0], plain[0]) if prompted and plain else list(runs)[:2]
    grid = margin_grid(report, first, second)
    plan = report["plan"]
    metric = next(iter(runs.values()))["metric"]
    return margin_heat_map(grid, plan["corruptions"], plan["severities"],
                           f"{first} - {second}: {metric} (points), every frame corrupted", path)


def margin_grid(report: dict, first: str, second: str):
    """(corruptions, severities) array of ``first`` - ``second`` in points, every frame corrupted
    (NaN where a cell is missing)."""
    import numpy as np
    cells = summary(report)
    plan = report["plan"]
    grid = np.full((len(plan["corruptions"]), len(plan["severities"])), np.nan)
    for i, c in enumerate(plan["corruptions"]):
        for j, s in enumerate(plan["severities"]):
            a, b = cells[first]["cells"][c][str(s)], cells[second]["cells"][c][str(s)]
            if a is not None and b is not None:
                grid[i, j] = 100 * (a - b)
    return grid


def margin_heat_map(grid, corruptions, severities, title: str, path: str | Path) -> Path:
    """A (corruption x severity) grid of margins in points as a red-blue heat map, each cell written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    reach = max(1.0, float(np.nanmax(np.abs(grid)))) if np.isfinite(grid).any() else 1.0
    fig, ax = plt.subplots(figsize=(1.0 * len(severities) + 2.6, 0.36 * len(corruptions) + 1.4), dpi=120)
    im = ax.imshow(grid, cmap="RdBu", vmin=-reach, vmax=reach, aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:+.1f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(severities)), [str(s) for s in severities])
    ax.set_yticks(range(len(corruptions)), [c.replace("_", " ") for c in corruptions], fontsize=8)
    ax.set_xlabel("severity")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return Path(path)


def print_robustness(report: dict, console: Console | None = None) -> None:
    """One row per run, corruption and setting: the score at severity 0 (clean) and 1..5, in %."""
    severities = report["plan"]["severities"]
    metric = next(iter(report["runs"].values()))["metric"] if report["runs"] else ""
    table = Table(title=f"robustness: {metric} (%) vs severity")
    for col in ("run", "corruption", "corrupted", "clean", *map(str, severities), "mean"):
        table.add_column(col, justify="left" if col in ("run", "corruption", "corrupted") else "right")
    for name, entry in report["runs"].items():
        for c, curves in entry["curves"].items():
            for mode, values in curves.items():
                row = [values.get(str(s)) for s in severities]
                done = [v for v in row if v is not None]
                table.add_row(name, c, mode, _pct(entry["clean"]), *map(_pct, row),
                              _pct(sum(done) / len(done) if done else None))
    console = console or Console(width=120)
    console.print(table)
    for name, row in summary(report).items():
        if row["mpc"] is not None:
            console.print(f"{name}: clean {_pct(row['clean'])}, mPC {_pct(row['mpc'])}, rPC {_pct(row['rpc'])} %")


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def plot_robustness(report: dict, path: str | Path) -> Path:
    """Metric vs severity (0 = clean), one panel per corruption."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    corruptions = report["plan"]["corruptions"]
    severities = report["plan"]["severities"]
    fig, axes = plt.subplots(1, len(corruptions), figsize=(2.6 * len(corruptions) + 0.6, 3.0), dpi=120,
                             sharey=True, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    metric = ""
    for i, (name, entry) in enumerate(report["runs"].items()):
        metric = entry["metric"]
        for ax, c in zip(axes[0], corruptions):
            for mode, values in entry["curves"].get(c, {}).items():
                xs = [0] + [s for s in severities if str(s) in values]
                ys = [entry["clean"]] + [values[str(s)] for s in severities if str(s) in values]
                if entry["clean"] is None:
                    xs, ys = xs[1:], ys[1:]
                label = {"key+support": name, "key": f"{name}, key frame only", "support": f"{name}, supports only"}[mode]
                ax.plot(xs, [100 * y for y in ys], {"key+support": "-", "key": "--", "support": ":"}[mode], marker="o", ms=3,
                        color=colours[i % len(colours)], label=label)
            ax.set_title(c.replace("_", " "), fontsize=9)
            ax.set_xlabel("severity (0 = clean)", fontsize=8)
            ax.set_xticks([0, *severities])
            ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{metric} (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(1, len(labels)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def seed_margins(reports: dict, first: str, second: str) -> dict:
    """``first`` - ``second`` over several seeds' robustness reports (seed -> report, one plan):
    per cell (every frame corrupted) the mean, min and max margin in points, and the mPC margin per
    seed with its mean, min and max. A cell or mPC missing in any seed is refused by seed and name."""
    import numpy as np
    if not reports:
        raise ValueError("no robustness reports to summarise")
    plans = {json.dumps(r["plan"], sort_keys=True) for r in reports.values()}
    if len(plans) > 1:
        raise ValueError("the seeds' robustness reports have different plans; score every seed with one plan")
    plan = next(iter(reports.values()))["plan"]
    grids, mpc = [], {}
    for seed, report in sorted(reports.items()):
        for name in (first, second):
            if name not in report["runs"]:
                raise ValueError(f"seed {seed}: no run named {name!r} (runs: {sorted(report['runs'])})")
        grid = margin_grid(report, first, second)
        missing = [(c, s) for i, c in enumerate(plan["corruptions"]) for j, s in enumerate(plan["severities"])
                   if not np.isfinite(grid[i, j])]
        if missing:
            raise ValueError(f"seed {seed}: cells missing for {first} or {second}, e.g. {missing[:3]}")
        grids.append(grid)
        s = summary(report)
        mpc[seed] = 100 * (s[first]["mpc"] - s[second]["mpc"])
    stack = np.stack(grids)
    mean = stack.mean(0)
    worst = np.unravel_index(int(np.argmin(mean)), mean.shape)
    return {"first": first, "second": second, "plan": plan, "seeds": sorted(reports),
            "cells": {c: {str(s): {"mean": float(mean[i, j]), "min": float(stack[:, i, j].min()),
                                   "max": float(stack[:, i, j].max())}
                          for j, s in enumerate(plan["severities"])} for i, c in enumerate(plan["corruptions"])},
            "worst_cell": {"corruption": plan["corruptions"][worst[0]], "severity": plan["severities"][worst[1]],
                           "mean": float(mean[worst])},
            "mpc_margin": {"per_seed": mpc, "mean": sum(mpc.values()) / len(mpc), "min": min(mpc.values()),
                           "max": max(mpc.values())},
            "mean_grid": mean.tolist()}
