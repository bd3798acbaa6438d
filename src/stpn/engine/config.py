"""Run configuration: YAML -> typed dataclasses, ``section.key=value`` overrides, validation
that names the bad key."""
from __future__ import annotations

import copy
import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .registry import get_task, task_names


class ConfigError(ValueError):
    """A configuration problem; the message names the key."""


@dataclass
class ModelConfig:
    """The STPN backbone and its prompting: what every task has."""

    backbone: str = "swin_tiny_patch4_window7_224"
    backbone_kwargs: dict = field(default_factory=dict)
    pretrained: bool = False  # timm's pretrained weights (hub; honours HF_HUB_OFFLINE)
    weights: str | None = None  # a local backbone checkpoint (timm, original Swin or mmdetection layout); a task may also read whole task checkpoints (detection: an mmdetection detector)
    prompting: bool = True  # False: the single-frame baseline
    predictor: str = "attention"
    predictor_kwargs: dict = field(default_factory=dict)
    num_prompts: int = 5
    prompt_depth: str = "shallow"  # where prompts enter: shallow | deep (per stage) | deep_block (per block)
    support_grad: bool = False
    legacy_merge: bool = False
    mean: list | None = None  # input normalisation; null: the backbone's (timm pretrained_cfg)
    std: list | None = None


@dataclass
class DataConfig:
    """Where the videos are and how support frames are chosen: what every task has."""

    format: str = "vid"  # vid | got10k | ytvis: the benchmark layout (each task names those it reads)
    root: str = "data/ILSVRC"
    train_split: str = "train"
    val_split: str = "val"
    train_policy: str = "train_bilateral"
    train_num_support: int = 2
    train_max_offset: int = 9
    train_stride: int = 1  # causal training supports: the K most recent frames on this grid
    key_stride: int = 1  # every n-th frame of a training video is a key frame
    test_policy: str = "global"  # global | local | causal
    test_num_support: int = 14
    test_stride: int = 1
    test_refresh_every: int = 1  # causal: prompt refresh period
    # training-time corruption of key frames and supports (stpn.data.corrupt.TrainCorruption: p, kinds,
    # severities, modes); null: none
    train_corrupt: dict | None = None
    synth: dict | None = None  # generate the data (SynthConfig fields) into root if it is missing
    class_names: list | None = None


@dataclass
class OptimConfig:
    lr: float = 2.5e-5
    weight_decay: float = 0.05
    batch_size: int = 1  # key frames per process and step
    epochs: int = 9
    schedule: str = "step"  # step | cosine
    steps: list = field(default_factory=lambda: [6])  # epochs at which lr *= gamma
    gamma: float = 0.1
    warmup_iters: int = 500
    warmup_ratio: float = 1 / 3
    clip_grad: float | None = None
    accumulate: int = 1
    amp: str = "none"  # none | bf16 | fp16 (GPU only)


@dataclass
class RunConfig:
    out: str = "runs/stpn"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    checkpoint_every: int = 500  # iterations
    keep_checkpoints: int = 2
    log_every: int = 10
    num_workers: int = 0
    threads: int = 0  # torch intra-op threads (0: torch's default)


@dataclass
class SharedConfig:
    """The sections every task has."""

    task: str = "detection"  # a registered task (stpn.engine.registry)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


@dataclass
class Config(SharedConfig):
    """A run: its task, the shared sections, and the task's own section (YAML key: the task's
    name, e.g. ``detection:``; in code ``cfg.detection`` or ``cfg.section``)."""

    section: object = None  # the task's settings (its ``Section`` dataclass)

    def __getattr__(self, name: str):
        if name not in ("task", "section") and name == self.__dict__.get("task"):
            return self.__dict__["section"]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def validate(self) -> "Config":
        task = get_task(self.task)
        formats = task.data_formats
        checks = [
            (self.model.prompt_depth in ("shallow", "deep", "deep_block"), "model.prompt_depth",
             "must be shallow, deep or deep_block"),
            (self.data.format in formats, "data.format",
             f"must be {' or '.join(map(repr, formats))} for {self.task}, got {self.data.format!r}"),
            ((self.model.mean is None) == (self.model.std is None) and all(
                v is None or (len(v) == 3 and all(isinstance(x, (int, float)) for x in v)) for v in (self.model.mean, self.model.std)),
             "model.mean", "model.mean and model.std must both be null or both be 3 numbers"),
            (self.model.std is None or all(x > 0 for x in self.model.std), "model.std", "must be > 0"),
            (self.data.test_policy in ("global", "local", "causal"), "data.test_policy", "must be global, local or causal"),
            (self.optim.schedule in ("step", "cosine"), "optim.schedule", "must be step or cosine"),
            (self.optim.amp in ("none", "bf16", "fp16"), "optim.amp", "must be none, bf16 or fp16"),
            (self.optim.lr > 0, "optim.lr", "must be > 0"),
            (self.optim.batch_size >= 1, "optim.batch_size", "must be >= 1"),
            (self.optim.accumulate >= 1, "optim.accumulate", "must be >= 1"),
            (self.optim.epochs >= 1, "optim.epochs", "must be >= 1"),
            (self.run.device in ("auto", "cpu", "cuda"), "run.device", "must be auto, cpu or cuda"),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ConfigError(f"config key {key}: {message}")
        for key, message in getattr(self.section, "problems", lambda: [])():
            raise ConfigError(f"config key {self.task}.{key}: {message}")
        return self


def _build(cls, data: dict, prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(f"config key {prefix or '<root>'}: expected a mapping, got {type(data).__name__}")
    if cls is Config:
        return _build_config(data)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise ConfigError(f"unknown config key {prefix}{key}{hint}; valid keys: {', '.join(fields)}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, hint, f"{prefix}{key}")
    return cls(**kwargs)


def _build_config(data: dict) -> Config:
    TASKS = task_names()
    data = dict(data)
    name = data.get("task", Config.task)
    if name not in TASKS:
        close = difflib.get_close_matches(str(name), TASKS, n=1)
        raise ConfigError(f"config key task: must be one of {', '.join(TASKS)}, got {name!r}"
                          + (f" (did you mean {close[0]}?)" if close else ""))
    task = get_task(name)  # old flat keys were moved to the section by config_from_dict
    others = [k for k in data if k in TASKS and k != name]
    if others:
        raise ConfigError(f"config key {others[0]}: a section of another task (this config's task is {name})")
    if "section" in data:
        raise ConfigError(f"unknown config key section; the task's settings go under {name}:")
    section = _build(task.Section, data.pop(name, None) or {}, f"{name}.")
    cfg = _build(SharedConfig, data, "")
    return Config(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(SharedConfig)}, section=section)


# Keys that moved: (section, old key) -> (section, new key). Runs and configs written before keep working.
_RENAMED = {("model", "depth"): ("model", "prompt_depth")}


def _new_name(part: str, key: str, task: str, own: set) -> tuple[str, str] | None:
    """Where an old ``part.key`` lives now, or None when it has not moved."""
    if (part, key) in _RENAMED:
        return _RENAMED[(part, key)]
    shared = {"model": ModelConfig, "data": DataConfig}.get(part)
    if shared is not None and key not in {f.name for f in dataclasses.fields(shared)} and key in own:
        return task, key
    return None


def _warn_moved(moved: list[str]) -> None:
    if moved:
        import warnings
        warnings.warn(f"old config keys: {'; '.join(moved)}. Write them under their new names", FutureWarning,
                      stacklevel=4)


def _move_legacy_keys(data: dict, task: str, section_cls) -> None:
    """Earlier configs kept every task's keys in ``model`` and ``data``: move a task's keys into
    its section (and renamed keys to their names), saying so once. A key given under both its
    old and its new name is refused."""
    own = {f.name for f in dataclasses.fields(section_cls)}
    moved, others = [], None
    for part in ("model", "data"):
        node = data.get(part)
        if not isinstance(node, dict):
            continue
        for key in list(node):
            new = _new_name(part, key, task, own)
            if new is None:
                if others is None:
                    others = _other_task_fields(task)
                shared = {f.name for f in dataclasses.fields({"model": ModelConfig, "data": DataConfig}[part])}
                if key not in shared and key in others:  # the old flat layout held every task's keys
                    node.pop(key)
                    moved.append(f"{part}.{key} (a {others[key]} key) dropped")
                continue
            target = data.get(new[0])
            if target is None:
                target = data[new[0]] = {}
            if not isinstance(target, dict):
                raise ConfigError(f"config key {new[0]}: expected a mapping, got {type(target).__name__}")
            if new[1] in target:
                raise ConfigError(f"config key {part}.{key} is now {new[0]}.{new[1]}, and both are given")
            target[new[1]] = node.pop(key)
            moved.append(f"{part}.{key} -> {'.'.join(new)}")
    _warn_moved(moved)


def _other_task_fields(task: str) -> dict[str, str]:
    """Field name -> task, of every other registered task's section."""
    TASKS = task_names()
    return {f.name: name for name in TASKS if name != task for f in dataclasses.fields(get_task(name).Section)}


def _renamed_override(item: str, task: str, section_cls) -> str:
    key, raw = item.split("=", 1)
    parts = key.split(".")
    new = _new_name(parts[0], parts[1], task, {f.name for f in dataclasses.fields(section_cls)}) \
        if len(parts) == 2 else None
    if new is None:
        return item
    _warn_moved([f"{key} -> {'.'.join(new)}"])
    return f"{'.'.join(new)}={raw}"


def _coerce(value, hint, key):
    """Check a value against a field type: str, bool, int, float, list, dict, or ``X | None``."""
    if value is None:
        if type(None) in typing.get_args(hint):
            return None
        raise ConfigError(f"config key {key}: may not be null")
    target = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
    if target is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"config key {key}: expected a number, got {value!r}")
    if target is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"config key {key}: expected an integer, got {value!r}")
    if target in (str, bool, list, dict) and not isinstance(value, target):
        raise ConfigError(f"config key {key}: expected {target.__name__}, got {value!r}")
    return value


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or the defaults) and apply ``section.key=value`` overrides.

    A config may start from another: ``base: NAME`` (a packaged config, e.g. ``vid_swin_t``) or
    ``base: FILE.yaml`` (relative to this file) is read first, and this file's sections are merged
    into it key by key (mappings merge, everything else replaces), as mmdetection's ``_base_``."""
    return config_from_dict({} if path is None else _read_yaml(Path(path), ()), overrides)


def _find_config(path: Path, relative_to: Path | None = None) -> Path:
    """A config file: ``path`` itself (a ``base:`` file: relative to the config naming it, never to
    the working directory), else a packaged config of that name (no suffix, e.g. vid_swin_t)."""
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    if not path.is_file() and path.suffix == "" and _packaged(path.name).is_file():
        return _packaged(path.name)  # a packaged config by name, e.g. vid_swin_t_released
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    return path


def _read_yaml(path: Path, chain: tuple, relative_to: Path | None = None) -> dict:
    path = _find_config(path, relative_to)
    if path.resolve() in chain:
        raise ConfigError(f"{path}: its base chain comes back to it ({' -> '.join(str(p) for p in chain)})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: malformed YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping of config sections (model:, data:, ...), "
                          f"got a {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: base must name a config (a packaged name or a YAML file), got {base!r}")
    return _merged(_read_yaml(Path(base), (*chain, path.resolve()), path.parent), data)


def _merged(base: dict, child: dict) -> dict:
    """``child`` over ``base``: mappings merge key by key, any other value replaces."""
    out = dict(base)
    for key, value in child.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def config_from_dict(data: dict, overrides: list[str] = ()) -> Config:
    """A Config from its dict form (a YAML file's content, ``config.json`` of a run) with
    ``section.key=value`` overrides applied."""
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
    task = next((i.split("=", 1)[1].strip() for i in reversed(overrides) if i.split("=", 1)[0] == "task"),
                data.get("task", Config.task))
    TASKS = task_names()
    if task in TASKS:  # old flat keys move to the task's section, in the file and in the overrides alike
        section_cls = get_task(task).Section
        _move_legacy_keys(data, task, section_cls)
        overrides = [_renamed_override(i, task, section_cls) for i in overrides]
    for item in overrides:
        key, raw = item.split("=", 1)
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return _build(Config, data, "").validate()


def packaged_config(name: str) -> Path:
    """Path of a config shipped with stpn (``demo_cpu``, ``vid_swin_t``)."""
    path = _packaged(name)
    if not path.is_file():
        raise FileNotFoundError(f"no packaged config {name!r} ({path})")
    return path


def _packaged(name: str) -> Path:
    return Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml"


def seed_overrides(seed: int) -> list[str]:
    """A demo's data and training seeds: generated training/validation data from seeds 2N / 2N+1
    and ``run.seed=N``. Seed 0 is the demos' default and adds nothing."""
    if seed == 0:
        return []
    return [f"run.seed={seed}", f"data.synth.train_seed={2 * seed}", f"data.synth.val_seed={2 * seed + 1}"]


def paired_run_config(name: str, out: Path, prompting: bool, quick_overrides: list[str] | None = None) -> Config:
    """One of the two runs of a demo: packaged config ``name`` with data in ``out/data`` and the
    run in ``out/stpn`` (prompting) or ``out/baseline``; ``quick_overrides`` for ``--quick``."""
    overrides = [f"data.root={out / 'data'}", f"run.out={out / ('stpn' if prompting else 'baseline')}",
                 f"model.prompting={str(prompting).lower()}", *(quick_overrides or [])]
    return load_config(packaged_config(name), overrides)


def config_dict(cfg: Config) -> dict:
    """The dict form of a config (``config.json``, YAML): the shared sections and the task's
    section under the task's name."""
    out = dataclasses.asdict(cfg)
    out[cfg.task] = out.pop("section")
    return out
