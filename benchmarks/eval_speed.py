"""Speed of the local evaluators at benchmark scale, on generated ground truth and results.

    python benchmarks/eval_speed.py            # ImageNet VID val size: 555 videos, 176k frames, ~3M detections
    python benchmarks/eval_speed.py --scale 0.01

Prints seconds for: writing and parsing the devkit detection file, and scoring AP50 with the
motion breakdown (motion IoU of every ground-truth box, matching, per-class AP, 4 groups).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from stpn.data.types import ArrayFrames, FrameTargets, Video
from stpn.data.vid import read_vid_detections, write_vid_detections
from stpn.evaluation.vid import evaluate_vid


def generated(num_videos: int, frames: int, dets_per_frame: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    videos, dets, index = [], [], 1
    for v in range(num_videos):
        n_obj = int(rng.integers(1, 4))
        start = rng.uniform(50, 600, size=(n_obj, 2))
        speed = rng.normal(0, 3, size=(n_obj, 2))
        size = rng.uniform(40, 300, size=(n_obj, 2))
        labels = rng.integers(1, 31, size=n_obj)
        targets = []
        for t in range(frames):
            xy = start + speed * t
            boxes = np.concatenate([xy, xy + size], axis=1)
            targets.append(FrameTargets(boxes, labels, np.arange(n_obj)))
            g = index + t
            near = boxes + rng.normal(0, 8, size=boxes.shape)
            rand_xy = rng.uniform(0, 800, size=(dets_per_frame - n_obj, 2))
            rand = np.concatenate([rand_xy, rand_xy + rng.uniform(20, 200, size=(len(rand_xy), 2))], axis=1)
            all_boxes = np.concatenate([near, rand])
            cls = np.concatenate([labels, rng.integers(1, 31, size=len(rand))])
            score = np.concatenate([rng.uniform(0.5, 1, n_obj), rng.uniform(0, 0.6, len(rand))])
            dets.append(np.column_stack([np.full(len(cls), g), cls, score, all_boxes]))
        videos.append(Video(f"v{v}", ArrayFrames([None] * frames), 1280, 720, targets,
                            meta={"frame_indices": list(range(index, index + frames))}))
        index += frames
    return videos, np.concatenate(dets)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of ImageNet VID val to generate")
    args = parser.parse_args(argv)
    num_videos = max(1, int(round(555 * args.scale)))
    videos, dets = generated(num_videos, 317, 17)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dets.txt"
        start = time.perf_counter()
        write_vid_detections(path, dets)
        rows.append(("write devkit detection file", time.perf_counter() - start))
        start = time.perf_counter()
        parsed = read_vid_detections(path)
        rows.append(("parse devkit detection file", time.perf_counter() - start))
    start = time.perf_counter()
    result = evaluate_vid(videos, parsed)
    rows.append(("AP50 + motion breakdown", time.perf_counter() - start))
    table = Table(title=f"VID evaluator: {num_videos} videos, {sum(len(v) for v in videos):,} frames, "
                        f"{result['num_gt']:,} boxes, {len(dets):,} detections")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for name, seconds in rows:
        table.add_row(name, f"{seconds:.1f}")
    console = Console(width=100)
    console.print(table)
    console.print(f"AP50 {result['ap50']:.3f}  fast {result['ap50_fast']}  medium {result['ap50_medium']}  "
                    f"slow {result['ap50_slow']}")


if __name__ == "__main__":
    main()
