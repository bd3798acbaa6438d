"""A tracker scored on its config's validation split: GOT-10k AO / SR / FPS on all and on
deteriorated frames, the success plot, metrics.json, the table."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..data.splits import read_sidecar, read_split, sidecar_path
from ..data.types import write_json
from ..engine.config import Config
from ..engine.trainer import resolve_device
from ..evaluation.got10k import evaluate_got10k, plot_success
from ..progress import track
from .inference import track_videos
from .model import STPNTracker


def evaluate_tracking(model: STPNTracker, cfg: Config, out: Path, console=None) -> dict:
    """Track every validation sequence from its first box, write the GOT-10k results layout with
    the measured seconds per frame, score it (all frames and, with a sidecar, the deteriorated
    ones). Returns the metrics; writes ``out/metrics.json`` and ``out/success.png``."""
    d = cfg.data
    videos = read_split(d, d.val_split)
    results = out / "results"
    device = resolve_device(cfg.run.device)
    model.eval().to(device)
    track_videos(model, cfg, track(videos, "tracking", console=console), results, device)
    metrics = {"all": evaluate_got10k(videos, results)}
    sidecar = sidecar_path(d, d.val_split)
    if sidecar.is_file():  # the deteriorated frames and the others (the clean ones)
        bad = read_sidecar(sidecar)
        metrics["deteriorated"] = evaluate_got10k(videos, results, frames=bad)
        clean = {v.name: sorted(set(range(len(v))) - set(bad.get(v.name, ()))) for v in videos}
        metrics["clean"] = evaluate_got10k(videos, results, frames=clean)
    metrics.update(ao_all=metrics["all"]["ao"], sr50_all=metrics["all"]["sr50"], fps=metrics["all"]["fps"])
    if "deteriorated" in metrics:
        metrics["ao_deteriorated"] = metrics["deteriorated"]["ao"]
        metrics["ao_clean"] = metrics["clean"]["ao"]
    plot_success(metrics["all"], out / "success.png", label="STPN" if model.prompting else "baseline")
    write_json(out / "metrics.json", metrics)
    return metrics


def print_metrics(metrics: dict, title: str, console: Console | None = None) -> None:
    table = Table(title=title)
    for col in ("AO all", "AO clean", "AO deteriorated", "SR0.5", "SR0.75", "FPS"):
        table.add_column(col, justify="right")
    f = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    a = metrics["all"]
    table.add_row(f(a["ao"]), f(metrics.get("ao_clean")), f(metrics.get("ao_deteriorated")), f(a["sr50"]), f(a["sr75"]),
                  "-" if a["fps"] is None else f"{a['fps']:.1f}")
    (console or Console(width=100)).print(table)
