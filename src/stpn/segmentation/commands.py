"""Segmenters at work: evaluation on a split (results.json, its zip, mask AP), ``stpn segment``."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from ..progress import track
from rich.table import Table

from ..data.splits import read_sidecar, read_split, sidecar_path
from ..data.types import atomic_write, write_json
from ..data.ytvis import write_ytvis_results
from ..engine.arguments import support_settings
from ..engine.config import Config
from ..engine.tasks import check_source_outputs
from ..evaluation.ytvis import KEYS, evaluate_ytvis
from .task import SegmentationTask, convert_of, new_tracks, segment_video



def evaluate_run(seg, cfg: Config, out: Path, mode: str | None = None, console: Console | None = None) -> dict:
    """Segment the validation split into tracks, write ``results.json`` (and ``results.zip``,
    what the YouTube-VIS server takes), score mask AP on all frames and on the deteriorated ones
    (when the data has a sidecar). Returns the metrics; writes ``out/metrics.json``."""
    d = cfg.data
    mode = mode or d.test_policy
    videos = read_split(d, d.val_split)
    categories = videos[0].meta["categories"] if videos else []
    device = next(seg.parameters()).device.type
    results, start = [], time.perf_counter()
    for video in track(videos, f"segmenting ({mode})", console=console):
        results += [results_entry(r) for r in segment_video(seg, video, cfg, mode, device)]
    seconds = time.perf_counter() - start
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_ytvis_results(out / "results.json", results, out / "results.zip")
    scores = evaluate_ytvis(videos, categories, results)
    metrics = {"mode": mode, "num_support": d.test_num_support, "stride": d.test_stride,
               "refresh_every": d.test_refresh_every, "ap_all": scores["ap"], "ap50_all": scores["ap50"], "all": scores,
               "ms_per_frame": 1e3 * seconds / max(1, sum(len(v) for v in videos))}
    sidecar = sidecar_path(d, d.val_split)
    if sidecar.is_file():
        bad = evaluate_ytvis(videos, categories, results, frames=read_sidecar(sidecar, "ytvis"))
        metrics.update(ap_deteriorated=bad["ap"], ap50_deteriorated=bad["ap50"], deteriorated=bad)
    write_json(out / "metrics.json", metrics)
    return metrics


def results_entry(track: dict) -> dict:
    """A results.json entry: the four keys the server reads."""
    return {k: track[k] for k in ("video_id", "category_id", "score", "segmentations")}


def print_metrics(metrics: dict, cfg: Config, console: Console | None = None) -> None:
    table = Table(title=f"{cfg.data.val_split}: mask AP, spatio-temporal IoU ({metrics['mode']} supports)")
    table.add_column("frames")
    for k in KEYS:
        table.add_column(k.upper(), justify="right")
    f = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    for frames in ("all", "deteriorated"):
        if frames in metrics:
            table.add_row(frames, *(f(metrics[frames][k]) for k in KEYS))
    console = console or Console(width=110)
    console.print(table)
    console.print(f"{metrics['ms_per_frame']:.1f} ms per frame")


def class_names(cfg: Config) -> list[str]:
    return cfg.data.class_names or [str(c) for c in range(1, cfg.segmentation.num_classes + 1)]


def write_png(path: Path, masks: np.ndarray, track_ids, scores, height: int, width: int) -> None:
    """One frame's instances as a PNG of track ids (0: background), the YouTube-VOS / DAVIS way:
    8-bit with a palette while every id is <= 255, 16-bit grey above. Where masks overlap, the
    higher-scoring instance is on top."""
    from PIL import Image

    from ..draw import color_of
    ids = np.zeros((height, width), dtype=np.uint16)
    for k in np.argsort(scores, kind="stable"):
        ids[masks[k]] = int(track_ids[k])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if ids.max(initial=0) <= 255:
        image = Image.fromarray(ids.astype(np.uint8), mode="P")
        palette = [0, 0, 0] + [c for i in range(1, 256) for c in color_of(i)]
        image.putpalette(palette)
    else:
        image = Image.fromarray(ids, mode="I;16")
    image.save(tmp, format="PNG")
    tmp.replace(path)


def cmd_segment(args) -> None:
    """Instance masks with track ids on a video file, a frame folder or a webcam: an annotated mp4,
    the video's tracks as YouTube-VIS results (JSON) and per-frame PNGs of track ids."""
    import itertools

    from ..data.video import mark_partial, open_source, partial_note, write_annotated
    from ..detection.task import predict_stream, predict_video
    from ..draw import draw_detections, draw_masks
    check_source_outputs(args, ("out", "json"), ("png_dir",))
    seg, cfg = SegmentationTask().load(args.weights, args.config, [f"run.device={args.device}"] if args.device else [])
    device = next(seg.parameters()).device.type
    video, frames, count, fps = open_source(args.video)
    mode = args.mode
    if video is None and mode != "causal":
        raise ValueError(f"a webcam is a live stream: use --mode causal (not {mode})")
    o, d = cfg.segmentation, cfg.data
    if args.score_threshold is not None:
        o.score_threshold = args.score_threshold
    names = class_names(cfg)
    K, stride, refresh = support_settings(args, (d.test_num_support, d.test_stride, d.test_refresh_every))
    convert = convert_of(cfg)
    sizes = (o.test_min_size, o.test_max_size)
    if mode == "causal" or not seg.stpn.prompting:
        frames, mine = itertools.tee(frames)
        preds = predict_stream(seg, mine, K, stride, refresh, device, *sizes, convert=convert)
    else:
        preds = predict_video(seg, video, mode, K, stride, refresh, device, *sizes, convert=convert)
    tracks = new_tracks(cfg)
    png_dir = Path(args.png_dir) if args.png_dir else None

    def annotated():
        for t, (frame, p) in track(enumerate(zip(frames, preds)), "segmenting", total=count):
            kept = tracks.add(p)
            H, W = frame.shape[:2]
            if png_dir is not None:
                write_png(png_dir / f"{t:05d}.png", kept["masks"], kept["track_ids"], kept["scores"], H, W)
            image = draw_masks(frame, kept["masks"], kept["track_ids"])
            yield draw_detections(image, kept["boxes"], kept["labels"], kept["scores"], kept["track_ids"], names)

    def save(status):  # the frames done so far, also when the video breaks mid-stream or is interrupted
        if args.json:  # a YouTube-VIS results list has no room for a note: a partial one gets a .partial.json
            results = tracks.results(1)
            for r in results:
                r["category"] = names[r["category_id"] - 1] if r["category_id"] <= len(names) else str(r["category_id"])
            atomic_write(args.json, json.dumps(results))
            mark_partial(args.json, status)
            print(f"wrote {args.json} ({len(results)} tracks over {tracks.length} frames{partial_note(status)})")
        if png_dir is not None:
            print(f"wrote {tracks.length} PNGs of track ids to {png_dir}")

    write_annotated(annotated(), args.out, fps, source=str(args.video), then=save, total=count)

