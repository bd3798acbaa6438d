"""``stpn demo --task T``: STPN and the same model without prompts, side by side, for any task.

One runner for every task's demo module (``stpn.<task>.demo``, found by its short name through
``stpn.engine.registry.demo_module``): the module names its ``TASK`` and gives the two runs'
configs (``demo_config``: same data, same budget, ``model.prompting`` on and off), the backbone
pre-training both start from (``pretrain_config``: an object classifier, or None), the scores
whose margins are reported (``METRICS``), a report row from the task's metrics (``row``), the
table (``demo_table``) and its figures (``demo_figures``). The task itself gives only what the
engine needs (build, train, load, evaluate). The runner claims the folder, generates the data, pre-trains the
backbone, trains both side by side (one process and one thread each), evaluates each on one
thread (the first trained while the other still trains), and writes
``report.json`` with ``stpn``, ``baseline`` (each the task's row plus ``train_seconds``), the
margin in points, the configuration and the command. Interrupted demos resume.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import yaml
from rich.console import Console

from ..data.splits import read_split
from ..data.types import atomic_write, differences, write_json
from ..engine.config import config_dict
from ..engine.registry import demo_module, get_task


def static_config(cfg):
    """The paper's control for a prompted demo model ``cfg``: the same run with static prompts
    (VPT: learned tokens that ignore the supports) in the sibling folder ``static``."""
    if not cfg.model.prompting:
        raise ValueError("static prompts are the control of a prompted model; this config has model.prompting false")
    cfg.model.predictor, cfg.model.predictor_kwargs = "static", {}
    cfg.run.out = str(Path(cfg.run.out).parent / "static")
    return cfg


def run_paired_demo(short: str, out: Path, quick: bool = False, seed: int = 0,
                    console: Console | None = None, static: bool = False) -> dict:
    """The demo registered as ``short`` (``det``, ``vis``, ``sot``) in ``out``; returns the report.
    ``static``: also train and score the same model with static prompts (``static_config``)."""
    console = console or Console(width=100)
    demo = demo_module(short)
    task = get_task(demo.TASK)
    out = Path(out)
    command = (f"stpn demo --task {short}{' --quick' if quick else ''}{f' --seed {seed}' if seed else ''}"
               f"{' --static' if static else ''}")
    configs = {"stpn": demo.demo_config(out, quick, True, seed), "baseline": demo.demo_config(out, quick, False, seed)}
    if static:
        configs["static"] = static_config(demo.demo_config(out, quick, True, seed))
    pre = demo.pretrain_config(out, quick, seed)
    claim_demo_folder(out, {"summary": command, "quick": quick,
                            "configs": {k: config_dict(c) for k, c in configs.items()},
                            **({"pretrain": config_dict(pre)} if pre is not None else {})})
    cfg = configs["stpn"]
    atomic_write(out / "demo_config.yaml", yaml.safe_dump(config_dict(cfg)))
    # both splits generated here, before two trainings could race to write them
    items = len(task.train_dataset(cfg))
    read_split(cfg.data, cfg.data.val_split)
    extra = {}
    if pre is not None:
        extra = {"pretrain": pretrain_backbone(pre, console), "pretrain_config": config_dict(pre)}
        p = extra["pretrain"]
        console.print(f"both start from the same backbone, pre-trained for {p['train_seconds']:.0f} s as an object "
                      f"classifier (validation crops: {100 * p['accuracy_clean']:.1f} % right on clean frames, "
                      f"{100 * p['accuracy_deteriorated']:.1f} % on deteriorated ones)")
    # as the trainer counts them on one process: batches of optim.batch_size, accumulate per step
    iterations = cfg.optim.epochs * math.ceil(math.ceil(items / cfg.optim.batch_size) / cfg.optim.accumulate)
    console.print(f"training STPN and the single-frame baseline side by side ({iterations} iterations each); "
                  f"logs in {out}/*/train.log")

    def evaluate(name: str, con: Console) -> dict:
        torch.set_num_threads(1)  # per thread: the one evaluating while the other model trains sets its own
        c = configs[name]
        model, _ = task.load(Path(c.run.out) / "model.safetensors")
        return task.evaluate(model, c, Path(c.run.out) / "eval", console=con)

    # every evaluation on one thread (two barely help these models): the same numbers and the same
    # ms/frame whether a model is evaluated while the other still trains or after
    threads = torch.get_num_threads()
    try:
        seconds, results = train_side_by_side(configs, out / "demo_config.yaml", iterations, console,
                                              while_training=lambda name: evaluate(name, Console(quiet=True)))
        for name in configs:
            if name not in results:
                results[name] = evaluate(name, console)
    finally:
        torch.set_num_threads(threads)
    report = {name: {**demo.row(results[name]), "train_seconds": seconds[name]} for name in configs}
    for name, more in getattr(demo, "more_rows", lambda *a: {})(configs, task, console).items():
        report[name].update(more)  # a demo's further evaluations of the trained models
    report.update(extra)
    report["config"] = config_dict(cfg)
    report["quick"], report["seed"] = quick, seed
    report["command"] = f"{command} --out {out}"
    for other in ("baseline", "static"):
        if other in report:
            report[f"stpn_minus_{other}_points"] = {k: margin_points(report["stpn"][k], report[other][k])
                                                    for k in demo.METRICS}
    write_json(out / "report.json", report)
    demo.demo_table(report, console)
    if quick:
        zero = all(not report[name].get(k) for name in configs for k in demo.METRICS)
        console.print("--quick checks the plumbing (data, training, evaluation, report) on a small data set "
                      "after a short training; its numbers say nothing about STPN."
                      + (" Every score above is 0: after so few iterations neither model yet scores a "
                         "detection above the evaluation's thresholds, which is expected here; the full demo "
                         "(without --quick) trains to useful scores." if zero else ""))
    figures = demo.demo_figures(report, results, configs, out)
    console.print(f"wrote {', '.join(str(p) for p in [out / 'report.json', *figures])}")
    return report


def pretrain_backbone(cfg, console: Console) -> dict:
    """Train the backbone both demo runs start from (``cfg``: a classification run; resumed, or
    kept when finished) and score it on the validation crops; its report entry."""
    from ..engine.trainer import train
    run, classifier = Path(cfg.run.out), get_task(cfg.task)
    if not finished_run(run):
        console.print(f"pre-training the backbone as an object classifier ({cfg.optim.epochs} epochs); run in {run}")
        done, start = train_seconds(run), time.perf_counter()
        train(cfg, classifier, resume="auto", console=console)
        record_train_seconds(run, done + time.perf_counter() - start)
    model, _ = classifier.load(run / "model.safetensors")
    return {"train_seconds": train_seconds(run), **classifier.evaluate(model, cfg, run / "eval")}


def margin_points(stpn: float | None, baseline: float | None) -> float | None:
    """STPN - baseline in points (metrics are fractions); None where either is not a number
    (e.g. no deteriorated frames to score), never a difference with a missing side taken as 0."""
    if stpn is None or baseline is None or not math.isfinite(stpn) or not math.isfinite(baseline):
        return None
    return 100 * (stpn - baseline)


def train_side_by_side(configs: dict, config_file: Path, iterations: int, console,
                       while_training=None, parallel: int = 2) -> tuple[dict, dict]:
    """Train the models of ``configs`` ({name: Config}, all from ``config_file`` but for
    ``run.out``, ``model.prompting`` and the predictor) side by side, one process and one thread each, at most
    ``parallel`` at once (small models barely use a second thread, so two halve the wall time on 2 cores; a
    third waits for a free core), resuming whatever was done before.
    Progress comes from each run's JSONL log. ``while_training(name)``: run, in a thread of this
    process, for a model whose training ended while another still trains (its evaluation on the
    core that training freed). Returns training seconds per model and ``{name: while_training(name)}``
    for the models it ran for."""
    import os
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    from ..progress import Progress

    procs, bars, logs, timings, early = {}, {}, {}, {}, {}
    progress = Progress(TextColumn("{task.description:>9}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console)
    def launch(name: str) -> None:
        cfg = configs[name]
        args = [sys.executable, "-m", "stpn", "train", str(config_file),
                f"run.out={cfg.run.out}", f"model.prompting={str(cfg.model.prompting).lower()}",
                f"model.predictor={cfg.model.predictor}", f"model.predictor_kwargs={json.dumps(cfg.model.predictor_kwargs)}",
                "run.threads=1", "--resume", "auto"]
        logs[name] = (Path(cfg.run.out) / "train.log").open("a")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        procs[name] = (subprocess.Popen(args, stdout=logs[name], stderr=subprocess.STDOUT, env=env), time.perf_counter())
        bars[name] = progress.add_task(name, total=iterations, info="")

    with progress, ThreadPoolExecutor(max_workers=1) as pool:
        waiting = []
        for name, cfg in configs.items():
            run = Path(cfg.run.out)
            run.mkdir(parents=True, exist_ok=True)
            timings[name] = train_seconds(run)
            if not finished_run(run):  # else finished in an earlier run of the demo
                waiting.append(name)
        running = set()
        while waiting and len(running) < parallel:
            running.add(waiting[0])
            launch(waiting.pop(0))
        while running:
            time.sleep(1.0)
            for name in running:
                last = last_log(Path(configs[name].run.out) / "log.jsonl")
                if last:
                    progress.update(bars[name], completed=last["iteration"], info=f"loss {last['loss']:.3f}")
            done = sorted(name for name in running if procs[name][0].poll() is not None)
            running -= set(done)
            for name in done:
                cfg, (proc, start) = configs[name], procs[name]
                logs[name].close()
                if proc.returncode != 0:
                    for other in running:
                        procs[other][0].terminate()
                    raise RuntimeError(f"training {name} failed (exit {proc.returncode}); "
                                       f"see {Path(cfg.run.out) / 'train.log'}")
                timings[name] += time.perf_counter() - start
                record_train_seconds(Path(cfg.run.out), timings[name])
                progress.update(bars[name], completed=iterations, info="trained")
                if waiting:  # its core goes to the next model
                    running.add(waiting[0])
                    launch(waiting.pop(0))
                if while_training and running:
                    early[name] = pool.submit(while_training, name)
                    progress.update(bars[name], info="trained; evaluating while the other trains")
        results = {name: future.result() for name, future in early.items()}
    return timings, results


def claim_demo_folder(out: Path, settings: dict) -> None:
    """A demo folder belongs to one set of settings (task, quick, configurations): a demo with
    other settings refuses it instead of reusing its data and runs (``--quick`` then the full
    demo into one folder used to report the quick runs as the full demo's)."""
    out.mkdir(parents=True, exist_ok=True)
    settings = json.loads(json.dumps(settings))  # as it reads back from the file
    path = out / "demo_settings.json"
    if path.is_file():
        held = json.loads(path.read_text())
        diff = differences(held.get("settings") or {}, settings)
        if diff:
            raise ValueError(f"{out} holds a demo with other settings ({held.get('summary')}; this one: "
                             f"{settings.get('summary')}): {'; '.join(diff[:3])}; use another --out or remove {out}")
        return
    atomic_write(path, json.dumps({"summary": settings.get("summary"), "settings": settings}, indent=1))


def train_seconds(run: Path) -> float:
    """Training seconds a demo recorded for ``run`` (``timing.json``; 0 before any)."""
    timing = run / "timing.json"
    return json.loads(timing.read_text())["train_seconds"] if timing.is_file() else 0.0


def record_train_seconds(run: Path, seconds: float) -> None:
    atomic_write(run / "timing.json", json.dumps({"train_seconds": seconds}))


def finished_run(run: Path) -> bool:
    """Whether a demo trained ``run`` to the end before (its weights and its timing are there)."""
    return (run / "model.safetensors").is_file() and (run / "timing.json").is_file()


def last_log(path: Path) -> dict | None:
    if not path.is_file():
        return None
    lines = path.read_text().splitlines()
    try:
        return json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return json.loads(lines[-2]) if len(lines) > 1 else None
