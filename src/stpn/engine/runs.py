"""A trained run on disk: its weights file and its config, loaded with strict checks."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from torch import nn

from ..data.types import atomic_write
from .config import Config, config_from_dict, load_config


def resolve_run(weights: str | Path, config: str | Path | None = None, overrides=()) -> tuple[Path, Config]:
    """(weights file, config) from ``model.safetensors`` (or its run folder) and either the given
    YAML config or the run's ``config.json``."""
    weights = Path(weights)
    if weights.is_dir():
        weights = weights / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"weights file not found: {weights}")
    if config is not None:
        return weights, load_config(config, overrides)
    if (weights.parent / "config.json").is_file():
        return weights, config_from_dict(json.loads((weights.parent / "config.json").read_text()), overrides)
    raise FileNotFoundError(f"no config.json beside {weights}; pass a config")


def eval_folder(weights: str | Path) -> Path:
    """Where ``stpn eval`` writes by default: ``<run>/eval`` for a run folder or its weights file."""
    weights = Path(weights)
    return (weights if weights.is_dir() else weights.parent) / "eval"


def load_model_weights(model: nn.Module, weights: Path, what: str) -> nn.Module:
    """Load a safetensors state dict that must fit ``model`` exactly; the error says what differs."""
    from safetensors.torch import load_file
    try:
        state = load_file(str(weights))
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"{weights}: not a safetensors weights file ({err})") from None
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in state if k in own and own[k].shape != state[k].shape]
    if missing or unexpected or reshaped:
        raise ValueError(f"{weights} does not fit this {what}: {len(missing)} missing keys (e.g. {missing[:2]}), "
                         f"{len(unexpected)} unexpected (e.g. {unexpected[:2]}), {len(reshaped)} of another "
                         f"shape (e.g. {reshaped[:2]})")
    model.load_state_dict(state)
    return model.eval()


def load_run_model(weights: str | Path, config: str | Path | None, overrides, task: str, what: str, build):
    """(model, config) of a trained run of ``task``: ``build(cfg)`` then the run's weights."""
    weights, cfg = resolve_run(weights, config, overrides)
    if cfg.task != task:
        raise ValueError(f"{weights} is a {cfg.task} run, not a {what}")
    # the run's weights replace whatever it started from: no hub download, no initial weights file needed
    start = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained=False, weights=None))
    model = build(start)
    load_model_weights(model, weights, f"{what} ({cfg.model.backbone}, prompting={cfg.model.prompting})")
    return model, cfg


def train_side_by_side(configs: dict, config_file: Path, iterations: int, console) -> dict:
    """Train the models of ``configs`` ({name: Config}, all from ``config_file`` but for
    ``run.out`` and ``model.prompting``) side by side, one process and one thread each (small models barely use a
    second thread, so this halves the wall time on 2 cores), resuming whatever was done before.
    Progress comes from each run's JSONL log. Returns training seconds per model."""
    import os
    import subprocess
    import sys

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    procs, bars, logs, timings = {}, {}, {}, {}
    progress = Progress(TextColumn("{task.description:>9}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console)
    with progress:
        for name, cfg in configs.items():
            run = Path(cfg.run.out)
            run.mkdir(parents=True, exist_ok=True)
            timings[name] = train_seconds(run)
            if finished_run(run):
                continue  # finished in an earlier run of the demo
            args = [sys.executable, "-m", "stpn", "train", str(config_file),
                    f"run.out={cfg.run.out}", f"model.prompting={str(cfg.model.prompting).lower()}",
                    "run.threads=1", "--resume", "auto"]
            logs[name] = (run / "train.log").open("a")
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            procs[name] = (subprocess.Popen(args, stdout=logs[name], stderr=subprocess.STDOUT, env=env), time.perf_counter())
            bars[name] = progress.add_task(name, total=iterations, info="")
        finished = {}
        while len(finished) < len(procs):
            time.sleep(1.0)
            for name, (proc, _) in procs.items():
                if name not in finished and proc.poll() is not None:
                    finished[name] = time.perf_counter()
            for name, cfg in configs.items():
                if name in bars:
                    last = last_log(Path(cfg.run.out) / "log.jsonl")
                    if last:
                        progress.update(bars[name], completed=last["iteration"],
                                        info=f"loss {last['loss']:.3f}")
        for name, (proc, start) in procs.items():
            logs[name].close()
            if proc.returncode != 0:
                raise RuntimeError(f"training {name} failed (exit {proc.returncode}); see {Path(configs[name].run.out) / 'train.log'}")
            timings[name] += finished[name] - start
            record_train_seconds(Path(configs[name].run.out), timings[name])
            progress.update(bars[name], completed=progress.tasks[bars[name]].total)
    return timings


# Settings that do not change what a run computes: a run may continue with other values.
_NOT_IDENTITY = {"run": ("threads", "num_workers", "log_every", "device", "checkpoint_every", "keep_checkpoints")}


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        if key in _NOT_IDENTITY.get(prefix.rstrip("."), ()):
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and not prefix:
            out += _differences(a, b, f"{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} there, {b!r} here")
    return out


def claim_run_folder(out: Path, config: dict, resume: str | None, overwrite: bool = False) -> Path | None:
    """Check that ``out`` may take this training and return the checkpoint to resume from.

    A run folder belongs to the configuration in its ``config.json``. Another configuration is
    refused (naming the keys that differ) unless ``overwrite`` (the old run's files are removed);
    the same configuration is refused without ``resume`` (continue it with ``resume='auto'``).
    ``resume='auto'`` says which checkpoint it resumes from, skips an unreadable newest one (named)
    for the previous one, and says so when there is nothing to resume.
    """
    import shutil
    has_run = any((out / name).exists() for name in ("config.json", "checkpoints", "model.safetensors"))
    if overwrite:
        for name in ("checkpoints", "eval"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in ("model.safetensors", "log.jsonl", "config.json", "ranks.json", "timing.json", "train.log"):
            (out / name).unlink(missing_ok=True)
        if has_run:
            print(f"--overwrite: removed the earlier run in {out}")
        return None
    if has_run and (out / "config.json").is_file():
        try:
            old = json.loads((out / "config.json").read_text())
        except json.JSONDecodeError:
            old = {}
        try:  # a run written with older config keys compares in today's layout
            import warnings

            from .config import config_dict as _layout
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                old = _layout(config_from_dict(old))
        except ValueError:
            pass
        diff = _differences(old, config)
        if diff:
            raise ValueError(f"{out} holds a run of another configuration ({'; '.join(diff[:4])}"
                             f"{'; ...' if len(diff) > 4 else ''}): pass --overwrite to replace it or choose another run.out")
    if has_run and resume is None:
        raise ValueError(f"{out} already holds a run of this configuration: --resume auto continues it, "
                         "--overwrite starts it again")
    if resume is None:
        return None
    if resume != "auto":
        path = Path(resume)
        if not (path / "state.pt").is_file():
            raise FileNotFoundError(f"not a checkpoint folder (no state.pt): {path}")
        return path
    return newest_readable_checkpoint(out)


def newest_readable_checkpoint(out: Path) -> Path | None:
    """The newest ``checkpoints/iter_*`` whose files read back, with a line about each one skipped."""
    import torch
    from safetensors import safe_open
    ckpts = out / "checkpoints"
    pointer = ckpts / "latest"
    if pointer.is_file():
        named = pointer.read_text().strip()
        if not named or not (ckpts / named).is_dir():
            print(f"{pointer} names {named!r}, which is not a checkpoint folder; looking at the folders themselves")
    for path in sorted((p for p in ckpts.glob("iter_*") if p.is_dir()), reverse=True):
        try:
            with safe_open(str(path / "model.safetensors"), "pt"):
                pass
            position = torch.load(path / "state.pt", weights_only=True, map_location="cpu")["position"]
        except Exception as err:  # noqa: BLE001 - any truncated or missing file
            print(f"checkpoint {path} cannot be read ({type(err).__name__}); trying the previous one")
            continue
        print(f"resuming from {path} (iteration {position['iteration']})")
        return path
    print(f"nothing to resume in {ckpts}: starting from iteration 0")
    return None


def run_lock(out: Path):
    """A lock file that keeps a second training out of ``out`` (a stale lock of a dead process is taken over)."""
    import contextlib
    import os

    @contextlib.contextmanager
    def lock():
        path = out / ".lock"
        if path.is_file():
            try:
                pid = int(path.read_text().strip() or 0)
                if pid <= 0:  # os.kill(0, ...) would test our own process group
                    raise ProcessLookupError
                os.kill(pid, 0)
                alive = pid != os.getpid()
            except (ValueError, ProcessLookupError):
                alive = False
            except PermissionError:
                alive = True
            if alive:
                raise ValueError(f"{out} is being written by another training (pid {pid}, lock {path}); "
                                 "wait for it to end or choose another run.out")
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(path, str(os.getpid()))
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
    return lock()


def claim_demo_folder(out: Path, settings: dict) -> None:
    """A demo folder belongs to one set of settings (task, quick, configurations): a demo with
    other settings refuses it instead of reusing its data and runs (``--quick`` then the full
    demo into one folder used to report the quick runs as the full demo's)."""
    import hashlib
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(settings, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = out / "demo_settings.json"
    if path.is_file():
        held = json.loads(path.read_text())
        if held.get("digest") != digest:
            raise ValueError(f"{out} holds a demo with other settings ({held.get('summary')}; this one: "
                             f"{settings.get('summary')}); use another --out or remove {out}")
        return
    atomic_write(path, json.dumps({"digest": digest, "summary": settings.get("summary"), "settings": settings}, indent=1))


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
