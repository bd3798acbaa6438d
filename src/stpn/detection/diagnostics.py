"""Do a trained STPN detector's prompts carry the class of the video? A support-swap test.

    python -m stpn.detection.diagnostics --weights runs/demo/stpn/model.safetensors [--clean]
    python -m stpn.detection.diagnostics --weights runs/demo_vis/stpn/model.safetensors

Works for detectors and segmenters (a segmenter is a detector with masks). On generated data
with one object per video (the detection demo's; for a run on generated multi-object data, the
same generator's settings with one object per video, written to ``<run>/swap_data``), each deteriorated validation frame
(``--clean``: the first 4 clean frames of each video) is detected twice through the same support
stream as ``stpn eval`` (local supports t-1, t+1): once with its own video's frames as supports
and once with the same-numbered frames of the next video whose object has another class.
Printed: how often the top detection's class is right with its own supports, and with swapped
supports how often it follows the swapped video's class or stays right. Prompts that carry the
class make the swapped class win; prompts that the detector ignores leave it unchanged.
"""
from __future__ import annotations

import argparse
import json

import torch

from ..core.streaming import SupportStream
from ..data.types import Video
from .inference import _at_test_sizes, _detect


def top_class(det, video: Video, t: int, support_video: Video, num_support: int = 2, sizes=(None, None)) -> int:
    """Class of the highest-scoring detection of frame t of ``video`` when its local supports are
    read from ``support_video`` (the same frame numbers, clipped to its length); 0: none.
    ``sizes``: the test resize (min, max), as ``stpn eval`` uses it (None: the detector's own)."""
    stream = SupportStream("local", num_support, 1, num_frames=len(video))
    frame_at = lambda i: support_video.frames[min(i, len(support_video) - 1)]  # noqa: E731
    device = next(det.parameters()).device
    out = next(_at_test_sizes(det, *sizes, lambda: _detect(det, [video.frames[t]], stream, device, frame_at, t)))
    return int(out["labels"][0]) if len(out["labels"]) else 0


def swap_test(det, videos: list[Video], frames_of: dict[str, list[int]], num_support: int = 2,
              sizes=(None, None)) -> dict:
    classes = {}
    for v in videos:
        labels = {int(c) for tg in v.targets for c in tg.labels}
        if len(labels) != 1:
            raise ValueError(f"video {v.name}: the swap test needs one class per video, got {sorted(labels)}")
        classes[v.name] = labels.pop()
    counts = {"frames": 0, "own_right": 0, "swapped_follows": 0, "swapped_right": 0}
    for i, v in enumerate(videos):
        other = next((o for o in videos[i + 1:] + videos[:i] if classes[o.name] != classes[v.name]), None)
        if other is None:
            raise ValueError("the swap test needs videos of at least two classes")
        for t in frames_of[v.name]:
            a, b = top_class(det, v, t, v, num_support, sizes), top_class(det, v, t, other, num_support, sizes)
            counts["frames"] += 1
            counts["own_right"] += a == classes[v.name]
            counts["swapped_follows"] += b == classes[other.name]
            counts["swapped_right"] += b == classes[v.name]
    return counts


def main(argv=None):
    import dataclasses
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from ..data.splits import deteriorated_frames, read_split
    from ..engine.registry import get_task
    from ..engine.runs import resolve_run
    parser = argparse.ArgumentParser(prog="python -m stpn.detection.diagnostics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="an STPN detection or segmentation run's model.safetensors (or the run folder)")
    parser.add_argument("--clean", action="store_true", help="test clean frames instead of deteriorated ones")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    weights, cfg = resolve_run(args.weights)
    if cfg.task not in ("detection", "segmentation"):
        raise SystemExit(f"{args.weights}: a {cfg.task} run; the swap test takes a detector or a segmenter")
    det, cfg = get_task(cfg.task).load(weights)
    if not det.stpn.prompting:
        raise SystemExit(f"{args.weights}: a run without prompts has no supports to swap")
    data = cfg.data
    if data.synth and data.synth.get("max_objects", 3) > 1:  # one object per video, else the class is not the video's
        synth = {**data.synth, "min_objects": 1, "max_objects": 1}
        data = dataclasses.replace(data, root=str(Path(weights).parent / "swap_data"), synth=synth)
    videos = read_split(data, data.val_split)
    bad = deteriorated_frames(data, data.val_split)
    frames_of = {v.name: ([t for t in range(len(v)) if t not in bad[v.name]][:4] if args.clean else bad[v.name])
                 for v in videos}
    counts = swap_test(det, videos, frames_of, sizes=(cfg.section.test_min_size, cfg.section.test_max_size))
    table = Table(title=f"{'clean' if args.clean else 'deteriorated'} frames, top detection's class")
    for col in ("frames", "right (own supports)", "swapped class (swapped supports)", "right (swapped supports)"):
        table.add_column(col, justify="right")
    n = max(1, counts["frames"])
    table.add_row(str(counts["frames"]), *(f"{100 * counts[k] / n:.1f} %" for k in ("own_right", "swapped_follows", "swapped_right")))
    Console().print(table)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
