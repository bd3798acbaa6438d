"""``stpn demo --task T``: STPN and the same model without prompts, side by side, for any task.

One runner with task hooks (``stpn.engine.tasks.Task.demo_*``): the task gives the two runs'
configs (same data, same budget, ``model.prompting`` on and off), prepares what both start from
(generated data, a pre-trained backbone), says how many iterations a run takes, turns its
evaluation metrics into a report row and draws its figures. The runner claims the folder,
trains both side by side (one process and one thread each), evaluates both, and writes
``report.json`` with ``stpn``, ``baseline`` (each the task's row plus ``train_seconds``), the
margin in points, the configuration and the command. Interrupted demos resume.
"""
from __future__ import annotations

from pathlib import Path

import yaml
from rich.console import Console

from ..data.types import atomic_write, write_json
from .config import config_dict
from .runs import claim_demo_folder, train_side_by_side
from .tasks import demo_tasks, get_task


def run_paired_demo(task_name: str, out: Path, quick: bool = False, seed: int = 0,
                    console: Console | None = None) -> dict:
    console = console or Console(width=100)
    task = get_task(task_name)
    out = Path(out)
    short = {v: k for k, v in demo_tasks().items()}.get(task_name, task_name)
    command = f"stpn demo --task {short}{' --quick' if quick else ''}{f' --seed {seed}' if seed else ''}"
    configs = {"stpn": task.demo_config(out, quick, True, seed), "baseline": task.demo_config(out, quick, False, seed)}
    claim_demo_folder(out, {"summary": command, "quick": quick,
                            "configs": {k: config_dict(c) for k, c in configs.items()},
                            **task.demo_settings(out, quick, seed)})
    cfg = configs["stpn"]
    atomic_write(out / "demo_config.yaml", yaml.safe_dump(config_dict(cfg)))
    extra = task.demo_prepare(configs, out, quick, seed, console)  # data generated before both runs
    iterations = task.demo_iterations(cfg)
    console.print(f"training STPN and the single-frame baseline side by side ({iterations} iterations each); "
                  f"logs in {out}/*/train.log")
    seconds = train_side_by_side(configs, out / "demo_config.yaml", iterations, console)
    report, results = {}, {}
    for name, c in configs.items():
        model, _ = task.load(Path(c.run.out) / "model.safetensors")
        results[name] = task.evaluate(model, c, Path(c.run.out) / "eval", console=console)
        report[name] = {**task.demo_row(results[name]), "train_seconds": seconds[name]}
    report.update(extra)
    report["config"] = config_dict(cfg)
    report["quick"], report["seed"] = quick, seed
    report["command"] = f"{command} --out {out}"
    report["stpn_minus_baseline_points"] = {
        k: 100 * ((report["stpn"][k] or 0) - (report["baseline"][k] or 0))
        for k, v in report["stpn"].items() if isinstance(v, float) and k != "train_seconds" and not k.startswith(("ms_", "fps"))}
    write_json(out / "report.json", report)
    task.demo_table(report, console)
    figures = task.demo_figures(report, results, configs, out)
    console.print(f"wrote {', '.join(str(p) for p in [out / 'report.json', *figures])}")
    return report
