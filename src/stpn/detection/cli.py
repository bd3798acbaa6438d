"""The detection task's own command, ``stpn detect``. Parsing imports nothing heavy (``stpn --help``
loads no torch): the command's body imports the model side when it runs."""
from ..engine.arguments import add_support_arguments, fraction, support_settings
from ..engine.tasks import add_source_arguments, check_source_outputs


def add_commands(sub) -> None:
    det = sub.add_parser("detect", help="detect objects in a video file, a frame folder or a webcam")
    add_source_arguments(det, "json detections per frame (JSON)")
    det.add_argument("--mode", choices=("global", "local", "causal"), default="causal",
                     help="causal: online, past frames only (default); global/local: offline, uses future frames")
    add_support_arguments(det)
    det.add_argument("--score-threshold", type=fraction, default=0.5, help="keep detections scoring at least this")
    det.set_defaults(handler=cmd_detect)


def cmd_detect(args) -> None:
    """Boxes, class names, scores and track ids on a video file, a frame folder or a webcam."""
    from ..association import IoUTracker
    from ..data.types import write_json
    from ..data.video import open_source, partial_note, write_annotated
    from ..draw import draw_detections as draw
    from ..progress import track
    from .build import class_names, load_detector
    from .inference import predict_source
    check_source_outputs(args, ("out", "json"))
    det, cfg = load_detector(args.weights, args.config, [f"run.device={args.device}"] if args.device else [])
    video, frames, count, fps = open_source(args.video)
    mode, names, d = args.mode, class_names(cfg), cfg.data
    K, stride, refresh = support_settings(args, (d.test_num_support, d.test_stride, d.test_refresh_every))
    frames, preds = predict_source(det, cfg, video, frames, mode, (K, stride, refresh))
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
