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


class ConfigError(ValueError):
    """A configuration problem; the message names the key."""


@dataclass
class ModelConfig:
    backbone: str = "swin_tiny_patch4_window7_224"
    backbone_kwargs: dict = field(default_factory=dict)
    pretrained: bool = False  # timm's pretrained weights (hub; honours HF_HUB_OFFLINE)
    weights: str | None = None  # a local backbone checkpoint (timm, original Swin or mmdetection layout); detection: also a whole mmdetection detector (FPN, RPN, box head where shapes fit)
    prompting: bool = True  # False: the single-frame baseline
    predictor: str = "attention"
    predictor_kwargs: dict = field(default_factory=dict)
    num_prompts: int = 5
    depth: str = "shallow"
    support_grad: bool = False
    legacy_merge: bool = False
    num_classes: int = 30
    fpn_channels: int = 256
    box_head_dim: int = 1024
    anchor_scale: int = 8
    conventions: str = "torchvision"  # detection: torchvision | mmdet (the released model's resize, anchors, RoIAlign, ...)
    min_size: list = field(default_factory=lambda: [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800])
    max_size: int = 1333
    test_min_size: int = 600
    test_max_size: int = 1000
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    # tracking (task: tracking)
    template_size: int = 128
    search_size: int = 256
    template_factor: float = 2.0  # crop side / sqrt(w h) of the target
    search_factor: float = 4.0
    head_channels: int = 64


@dataclass
class DataConfig:
    format: str = "vid"  # vid (detection) | got10k (tracking)
    root: str = "data/ILSVRC"
    train_split: str = "train"
    val_split: str = "val"
    train_policy: str = "train_bilateral"
    train_num_support: int = 2
    train_max_offset: int = 9
    det_image_set: str | None = None  # detection training: add the ImageNet DET images of ROOT/ImageSets/<this>.txt (e.g. DET_train_30classes)
    key_stride: int = 1  # every n-th frame of a training video is a key frame
    deteriorated_repeat: int = 1  # detection: key frames listed in deteriorated_<train_split>.json appear this often per epoch
    train_stride: int = 1  # tracking: supports are the K most recent frames on this grid before the search frame
    max_gap: int = 50  # tracking: template frame at most this many frames before the search frame
    samples_per_video: int = 1  # tracking: template/search pairs per video and epoch
    center_jitter: float = 1.0  # tracking: search-centre shift, up to +-center_jitter/2 x sqrt(w h)
    scale_jitter: float = 0.25  # tracking: search-size jitter, exp(N(0, scale_jitter))
    test_policy: str = "global"  # global | local | causal
    test_num_support: int = 14
    test_stride: int = 1
    test_refresh_every: int = 1  # causal (and tracking): prompt refresh period
    crop_size: int = 48  # classification: side of the square crops around objects, at the frame's scale
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


TASKS = ("detection", "tracking", "classification")


@dataclass
class Config:
    task: str = "detection"  # detection | tracking | classification (backbone pre-training on object crops)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def validate(self) -> "Config":
        checks = [
            (self.task in TASKS, "task", f"must be one of {', '.join(TASKS)}, got {self.task!r}"),
            (self.model.depth in ("shallow", "deep", "deep_block"), "model.depth", "must be shallow, deep or deep_block"),
            (self.data.format == {"detection": "vid", "classification": "vid", "tracking": "got10k"}.get(self.task, self.data.format),
             "data.format", f"must be 'vid' for detection and classification and 'got10k' for tracking, got {self.data.format!r}"),
            (self.model.conventions in ("torchvision", "mmdet"), "model.conventions", "must be torchvision or mmdet"),
            (self.data.crop_size >= 1, "data.crop_size", "must be >= 1"),
            (self.data.test_policy in ("global", "local", "causal"), "data.test_policy", "must be global, local or causal"),
            (self.optim.schedule in ("step", "cosine"), "optim.schedule", "must be step or cosine"),
            (self.optim.amp in ("none", "bf16", "fp16"), "optim.amp", "must be none, bf16 or fp16"),
            (self.optim.lr > 0, "optim.lr", "must be > 0"),
            (self.optim.batch_size >= 1, "optim.batch_size", "must be >= 1"),
            (self.optim.accumulate >= 1, "optim.accumulate", "must be >= 1"),
            (self.optim.epochs >= 1, "optim.epochs", "must be >= 1"),
            (self.data.deteriorated_repeat >= 1, "data.deteriorated_repeat", "must be >= 1"),
            (self.run.device in ("auto", "cpu", "cuda"), "run.device", "must be auto, cpu or cuda"),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ConfigError(f"config key {key}: {message}")
        return self


def _build(cls, data: dict, prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(f"config key {prefix or '<root>'}: expected a mapping, got {type(data).__name__}")
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
    """Read a YAML config (or the defaults) and apply ``section.key=value`` overrides."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file() and path.suffix == "" and (Path(__file__).resolve().parents[1] / "configs" / f"{path}.yaml").is_file():
            path = packaged_config(str(path))  # a packaged config by name, e.g. vid_swin_t_released
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: malformed YAML: {err}") from None
    return config_from_dict(data, overrides)


def config_from_dict(data: dict, overrides: list[str] = ()) -> Config:
    """A Config from its dict form (a YAML file's content, ``config.json`` of a run) with
    ``section.key=value`` overrides applied."""
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
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
    path = Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no packaged config {name!r} ({path})")
    return path


def seed_overrides(seed: int) -> list[str]:
    """A demo's data and training seeds: generated training/validation data from seeds 2N / 2N+1
    and ``run.seed=N``. Seed 0 is the demos' default and adds nothing."""
    if seed == 0:
        return []
    return [f"run.seed={seed}", f"data.synth.train_seed={2 * seed}", f"data.synth.val_seed={2 * seed + 1}"]


def demo_config(name: str, out: Path, prompting: bool, quick_overrides: list[str] | None = None) -> Config:
    """One of the two runs of a demo: packaged config ``name`` with data in ``out/data`` and the
    run in ``out/stpn`` (prompting) or ``out/baseline``; ``quick_overrides`` for ``--quick``."""
    overrides = [f"data.root={out / 'data'}", f"run.out={out / ('stpn' if prompting else 'baseline')}",
                 f"model.prompting={str(prompting).lower()}", *(quick_overrides or [])]
    return load_config(packaged_config(name), overrides)


def config_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)
