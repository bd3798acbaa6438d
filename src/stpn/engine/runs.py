"""A trained run on disk: its weights file and its config, loaded with strict checks."""
from __future__ import annotations

import json
from pathlib import Path

from torch import nn

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
    model = build(cfg)
    load_model_weights(model, weights, f"{what} ({cfg.model.backbone}, prompting={cfg.model.prompting})")
    return model, cfg
