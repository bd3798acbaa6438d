"""``stpn eval`` for a pre-trained backbone classifier."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..data.types import write_json
from ..engine.runs import eval_folder, load_run_model
from .task import ClassificationTask, evaluate_classifier


def load_classifier(weights: str | Path, config: str | Path | None = None, overrides=()):
    """(classifier, config) from a classification run's ``model.safetensors`` (or its folder)."""
    return load_run_model(weights, config, overrides, "classification", "classifier", ClassificationTask().build_model)


def cmd_eval(args) -> None:
    model, cfg = load_classifier(args.weights, args.config, args.overrides)
    out = Path(args.out) if args.out else eval_folder(args.weights)
    metrics = evaluate_classifier(model, cfg)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    print_metrics(metrics, f"{cfg.data.val_split}: object classification, top-1 accuracy (%)")
    print(f"wrote {out / 'metrics.json'}")


def print_metrics(metrics: dict, title: str, console: Console | None = None) -> None:
    f = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    table = Table(title=title)
    for col in ("all crops", "clean frames", "deteriorated frames", "crops"):
        table.add_column(col, justify="right")
    table.add_row(f(metrics["accuracy_all"]), f(metrics.get("accuracy_clean")),
                  f(metrics.get("accuracy_deteriorated")), str(metrics["crops"]))
    (console or Console(width=100)).print(table)
