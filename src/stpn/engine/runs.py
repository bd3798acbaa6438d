"""A trained run on disk: its weights file and its config, loaded with strict checks."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from torch import nn

from ..data.types import atomic_write, differences
from .config import Config, config_dict, config_from_dict, load_config


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


# Settings that do not change what a run computes: a run may continue with other values.
_NOT_IDENTITY = {"run": ("threads", "num_workers", "log_every", "device", "checkpoint_every", "keep_checkpoints")}


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
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                old = config_dict(config_from_dict(old))
        except ValueError:
            pass
        diff = differences(old, config, _NOT_IDENTITY)
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
