"""Detectors on disk and at work: loading, evaluation on a split, ``stpn detect``."""
from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from ..progress import track
from rich.table import Table

from ..data.splits import read_sidecar, sidecar_path
from ..data.types import write_json
from ..engine.arguments import support_settings
from ..engine.config import Config
from ..engine.runs import load_run_model
from ..engine.tasks import check_source_outputs
from ..data.splits import read_split
from .task import DetectionTask, detect_videos, detections_table, predict_video


def load_detector(weights: str | Path, config: str | Path | None = None, overrides=()):
    """(detector, config) on the config's ``run.device``: from a run's ``model.safetensors`` (or a
    run folder) and its config, or from an mmdetection checkpoint (``.pth``, e.g. the released
    ``stpn_swint_adam_9x.pth``) with a config that describes it (``vid_swin_t_released``)."""
    import dataclasses

    from ..engine.config import load_config
    from ..engine.trainer import resolve_device
    from .released import load_detector_checkpoint
    if Path(weights).suffix in (".pth", ".pt", ".bin"):
        if not Path(weights).is_file():
            raise FileNotFoundError(f"weights file not found: {weights}")
        if config is None:
            raise ValueError(f"{weights} is an mmdetection checkpoint and carries no stpn config: pass one "
                             "(for the released model: vid_swin_t_released)")
        cfg = load_config(config, overrides)
        if cfg.task != "detection":
            raise ValueError(f"{config} is a {cfg.task} config, not a detector's")
        start = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained=False, weights=None))
        det = DetectionTask().build_model(start)
        load_detector_checkpoint(det, weights, strict=True)
    else:
        det, cfg = load_run_model(weights, config, overrides, "detection", "detector", DetectionTask().build_model)
    return det.to(resolve_device(cfg.run.device)).eval(), cfg


def evaluate_run(det, cfg: Config, out: Path, mode: str | None = None, console: Console | None = None) -> dict:
    """Detect on the validation split, write the devkit file, score all frames (and deteriorated
    frames when the data has a sidecar). Returns metrics; writes ``out/metrics.json``."""
    from ..evaluation.vid import evaluate_vid
    d = cfg.data
    mode = mode or d.test_policy
    videos = read_split(d, d.val_split)
    start = time.perf_counter()
    preds = detect_videos(det, cfg, track(videos, f"detecting ({mode})", console=console), mode)
    seconds = time.perf_counter() - start
    dets = detections_table(videos, preds)
    from ..data.vid import write_vid_detections
    out.mkdir(parents=True, exist_ok=True)
    write_vid_detections(out / "detections.txt", dets)
    names = class_names(cfg)
    all_frames = evaluate_vid(videos, dets, class_names=names, num_classes=cfg.detection.num_classes)
    metrics = {"mode": mode, "num_support": d.test_num_support, "stride": d.test_stride,
               "refresh_every": d.test_refresh_every, "ap50_all": all_frames["ap50"], "all": all_frames,
               "ms_per_frame": 1e3 * seconds / max(1, sum(len(v) for v in videos))}
    sidecar = sidecar_path(d, d.val_split)
    if sidecar.is_file():
        frames = read_sidecar(sidecar, "vid")
        bad = evaluate_vid(videos, dets, frames=frames, class_names=names, num_classes=cfg.detection.num_classes)
        metrics.update(ap50_deteriorated=bad["ap50"], deteriorated=bad)
    write_json(out / "metrics.json", metrics)
    return metrics


def print_metrics(metrics: dict, cfg: Config, console: Console | None = None) -> None:
    table = Table(title=f"{cfg.data.val_split}: AP50 ({metrics['mode']} supports)")
    for col in ("all frames", "deteriorated frames", "fast", "medium", "slow", "ms/frame"):
        table.add_column(col, justify="right")
    f = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    a = metrics["all"]
    table.add_row(f(metrics["ap50_all"]), f(metrics.get("ap50_deteriorated")), f(a["ap50_fast"]),
                  f(a["ap50_medium"]), f(a["ap50_slow"]), f"{metrics['ms_per_frame']:.1f}")
    (console or Console(width=100)).print(table)


def class_names(cfg: Config) -> list[str]:
    return cfg.data.class_names or [str(c) for c in range(1, cfg.detection.num_classes + 1)]


def cmd_detect(args) -> None:
    """Boxes, class names, scores and track ids on a video file, a frame folder or a webcam."""
    import itertools

    from ..data.video import open_source, partial_note, write_annotated
    from ..association import IoUTracker
    from ..draw import draw_detections as draw
    from .task import predict_stream
    check_source_outputs(args, ("out", "json"))
    det, cfg = load_detector(args.weights, args.config, [f"run.device={args.device}"] if args.device else [])
    device = next(det.parameters()).device.type
    video, frames, count, fps = open_source(args.video)
    mode = args.mode
    if video is None and mode != "causal":
        raise ValueError(f"a webcam is a live stream: use --mode causal (not {mode})")
    names = class_names(cfg)
    d = cfg.data
    K, stride, refresh = support_settings(args, (d.test_num_support, d.test_stride, d.test_refresh_every))
    sizes = (cfg.detection.test_min_size, cfg.detection.test_max_size)
    if mode == "causal" or not det.stpn.prompting:
        frames, mine = itertools.tee(frames)
        preds = predict_stream(det, mine, K, stride, refresh, device, *sizes)
    else:
        preds = predict_video(det, video, mode, K, stride, refresh, device, *sizes)
    tracker, records = IoUTracker(), []

    def annotated():
        for t, (frame, p) in track(enumerate(zip(frames, preds)), "detecting", total=count):
            keep = p["scores"] >= args.score_threshold
            boxes, labels, scores = p["boxes"][keep], p["labels"][keep], p["scores"][keep]
            ids = tracker.update(boxes, labels)
            image = draw(frame, boxes, labels, scores, ids, names)
            records.append({"frame": t, "detections": [
                {"box": [round(float(v), 2) for v in b], "label": int(c), "class": names[int(c) - 1],
                 "score": round(float(s), 4), "track_id": int(i)}
                for b, c, s, i in zip(boxes, labels, scores, ids)]})
            yield image

    def save(status):  # the frames done so far, also when the video breaks mid-stream or is interrupted
        if args.json:
            write_json(args.json, {"video": str(args.video), "mode": mode, "num_support": K, "stride": stride,
                                   "refresh_every": refresh, "prompting": cfg.model.prompting, **status,
                                   "frames": records}, indent=None)
            print(f"wrote {args.json} ({len(records)} frames{partial_note(status)})")

    write_annotated(annotated(), args.out, fps, source=str(args.video), then=save, total=count)
