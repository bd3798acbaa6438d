"""Tasks as units: the interface a task implements (``Task``, ``Section``) and what every task's
package shares (its commands' common arguments, the STPN of a config, its normalisation).

A task is one package (``stpn.detection``, ``stpn.tracking``, ...) with a ``Task`` subclass,
declared in ``pyproject.toml`` (``stpn.engine.registry``). The engine, the CLI and ``stpn.data``
never name a task: ``stpn train / eval / demo`` and the task's own commands (``stpn detect``,
``stpn track``) dispatch through the registry.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import _moved
from . import registry


def add_source_arguments(parser, results: str, weights_required: bool = True) -> None:
    """The arguments every ``stpn <verb> VIDEO`` command of a task shares."""
    parser.add_argument("video", help="video file, folder of frames, or webcam index (0, 1, ...)")
    parser.add_argument("--weights", required=weights_required, help="a run's model.safetensors (or the run folder)")
    parser.add_argument("--config", help="YAML config (default: config.json beside the weights)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: the config's run.device")
    parser.add_argument("--out", help="annotated video (mp4)")
    parser.add_argument(f"--{results.split()[0]}", help=" ".join(results.split()[1:]))
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def check_source_outputs(args, files=("out",), folders=()) -> None:
    """Before any work: the outputs of a ``stpn <verb> VIDEO`` command (flags by attribute name)
    neither are inputs nor replace existing files unless ``--overwrite`` (``check_output``)."""
    from ..data.types import check_output
    inputs = [args.video if not str(args.video).isdigit() else None, args.weights, args.config,
              getattr(args, "onnx", None)]
    seen: dict[Path, str] = {}
    for names, folder in ((files, False), (folders, True)):
        for name in names:
            if getattr(args, name, None):
                flag = f"--{name.replace('_', '-')}"
                out = check_output(getattr(args, name), flag, inputs=inputs, overwrite=args.overwrite, folder=folder)
                if out.resolve() in seen:
                    raise ValueError(f"{flag} {out}: is also {seen[out.resolve()]}; each output needs its own path")
                seen[out.resolve()] = flag


def build_stpn(cfg):
    """The config's STPN (the ``model`` section), for any task that runs it as its backbone."""
    from ..core import STPN
    m = cfg.model
    return STPN(m.backbone, predictor=m.predictor, num_prompts=m.num_prompts, prompt_depth=m.prompt_depth,
                pretrained=m.pretrained, prompting=m.prompting, support_grad=m.support_grad,
                legacy_merge=m.legacy_merge, backbone_kwargs=m.backbone_kwargs, predictor_kwargs=m.predictor_kwargs)


def normalization_of(cfg) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The input mean/std of the config's backbone: ``model.mean``/``model.std`` when set, else the
    backbone's own (timm's pretrained config). Every task normalises with this."""
    from ..core.backbones import normalization
    return normalization(cfg.model.backbone, cfg.model.mean, cfg.model.std)


@dataclass
class Section:
    """A task's own config section. ``problems()`` lists (key, message) of invalid values."""

    def problems(self) -> list[tuple[str, str]]:
        return []


class Task:
    """What a task gives the engine. Subclasses set ``name``, ``data_formats`` (benchmark layouts
    it reads: ``vid``, ``got10k``, ``ytvis``), ``Section`` (its config dataclass) and ``what``
    (a noun for messages: "detector")."""

    name: str = ""
    what: str = "model"
    data_formats: tuple[str, ...] = ()
    Section: type = Section

    # training ------------------------------------------------------------------------------
    def build_model(self, cfg):
        raise NotImplementedError

    def train_dataset(self, cfg):
        """Items with ``video_of_item`` (for sharding), ``collate`` and ``set_epoch``."""
        raise NotImplementedError

    def loss(self, model, batch: dict, device: str) -> dict:
        raise NotImplementedError

    # inference and evaluation -------------------------------------------------------------
    def load(self, weights: str | Path, config=None, overrides=()):
        """(model, config) of a trained run on the config's ``run.device``."""
        from .runs import load_run_model  # the engine's run machinery, below every task but above this interface
        from .trainer import resolve_device
        model, cfg = load_run_model(weights, config, overrides, self.name, self.what, self.build_model)
        return model.to(resolve_device(cfg.run.device)).eval(), cfg

    def evaluate(self, model, cfg, out: Path, mode: str | None = None, console=None) -> dict:
        """Run on the validation split, write results and ``out/metrics.json``; return the metrics."""
        raise NotImplementedError

    def print_metrics(self, metrics: dict, cfg, console=None) -> None:
        raise NotImplementedError

    # robustness curves (``stpn.robustness``) --------------------------------------------------
    robustness_metric: str = ""  # the score ``robustness_score`` returns (a fraction), e.g. "AP50"

    def robustness_score(self, model, cfg, videos: list, support_videos: list | None = None) -> float:
        """The task's headline score of ``model`` on ``videos`` (all frames), at the config's test
        settings; ``support_videos``: the same videos whose frames feed the support stream."""
        raise NotImplementedError(f"robustness curves are not implemented for the {self.name} task yet")


# the registry's names were importable from here: for one release, with a FutureWarning
__getattr__ = _moved.moved_names(__name__, {n: registry for n in ("get_task", "task_names", "register_task",
                                                                   "command_modules")})
