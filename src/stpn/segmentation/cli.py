"""The segmentation task's own command, ``stpn segment``. Parsing imports nothing heavy (``stpn
--help`` loads no torch): the command's body imports the model side when it runs."""
from __future__ import annotations

from pathlib import Path

from ..engine.arguments import add_support_arguments, fraction, support_settings
from ..engine.tasks import add_source_arguments, check_source_outputs


def add_commands(sub) -> None:
    seg = sub.add_parser("segment", help="instance masks with track ids in a video file, a frame folder or a webcam")
    add_source_arguments(seg, "json the video's tracks as YouTube-VIS results (one RLE or null per frame)")
    seg.add_argument("--png-dir", help="per-frame PNGs of track ids (0: background), as YouTube-VOS / DAVIS masks")
    seg.add_argument("--mode", choices=("global", "local", "causal"), default="causal",
                     help="causal: online, past frames only (default); global/local: offline, uses future frames")
    add_support_arguments(seg)
    seg.add_argument("--score-threshold", type=fraction, help="default: the config's segmentation.score_threshold")
    seg.set_defaults(handler=cmd_segment)


def cmd_segment(args) -> None:
    """Instance masks with track ids on a video file, a frame folder or a webcam: an annotated mp4,
    the video's tracks as YouTube-VIS results (JSON) and per-frame PNGs of track ids."""
    import json

    from ..data.types import atomic_write
    from ..data.video import mark_partial, open_source, partial_note, write_annotated
    from ..detection.build import class_names
    from ..detection.inference import predict_source
    from ..draw import draw_detections, draw_masks
    from ..progress import track
    from .build import load_segmenter
    from .inference import convert_of, new_tracks, write_png
    check_source_outputs(args, ("out", "json"), ("png_dir",))
    seg, cfg = load_segmenter(args.weights, args.config, [f"run.device={args.device}"] if args.device else [])
    video, frames, count, fps = open_source(args.video)
    if args.score_threshold is not None:
        cfg.segmentation.score_threshold = args.score_threshold
    mode, names, d = args.mode, class_names(cfg), cfg.data
    K, stride, refresh = support_settings(args, (d.test_num_support, d.test_stride, d.test_refresh_every))
    frames, preds = predict_source(seg, cfg, video, frames, mode, (K, stride, refresh), convert_of(cfg))
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
