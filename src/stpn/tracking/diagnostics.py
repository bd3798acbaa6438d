"""Do a trained STPN tracker's prompts carry the target's identity? A support-swap test.

    python -m stpn.tracking.diagnostics --weights runs/demo_sot/stpn [--videos 48]

The run's generated validation sequences are regenerated in memory with every object (the
GOT-10k layout keeps the target only). Each sequence with a distractor (another object visible
in the first frame) is tracked twice from the target's first box through the same causal
support stream as ``stpn eval``: once with its own support crops (the search regions, as
always), once with support crops cut around the distractor (its true box in each frame, at the
tracker's search factor; with target supports: the memory keeps the distractor's box and a
crop around it whenever the gate admits a frame). Printed per setting: AO on the target, and the share of frames where
the box is on the distractor (IoU with it >= 0.3 and above the IoU with the target). Prompts
that carry the target's identity pull the box to the distractor under the swap; prompts the
tracker ignores leave the numbers unchanged. A run without prompts gets the first row only: how
often the single-frame tracker drifts to the distractor.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..data.types import Video, xyxy_to_xywh
from .model import crop_region
from .tracker import start, step


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two x,y,w,h boxes."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def object_boxes(video: Video, track_id: int) -> list[np.ndarray | None]:
    """x,y,w,h of one object per frame (None where absent or not visible)."""
    out = []
    for tg in video.targets:
        j = np.flatnonzero(tg.track_ids == track_id)
        out.append(xyxy_to_xywh(tg.boxes[j[0]]) if len(j) and tg.visible[j[0]] else None)
    return out


def validation_videos(cfg, with_deteriorated: bool = False):
    """The run's generated validation videos with all their objects (as ``read_split`` made them);
    ``with_deteriorated``: also each video's set of deteriorated frames."""
    from ..data.synth import SynthConfig, synth_video
    d = cfg.data
    if d.synth is None:
        raise ValueError("the support-swap test regenerates the run's data: it needs a run on generated data (data.synth)")
    splits = (f"{d.train_split}_", f"{d.val_split}_")
    synth = {k: v for k, v in d.synth.items() if not k.startswith(splits)}
    synth["videos"] = d.synth.get(f"{d.val_split}_videos", synth.get("videos", 8))
    synth["seed"] = d.synth.get(f"{d.val_split}_seed", 1)
    config = SynthConfig(**synth)
    made = [synth_video(config, i) for i in range(config.videos)]
    videos = [v for v, _, _ in made]
    return (videos, [set(chosen) for _, chosen, _ in made]) if with_deteriorated else videos


def swap_test(model, videos: list[Video], num_support: int, stride: int, refresh_every: int,
              factor: float, deteriorated: list[set] | None = None) -> dict:
    """AO on the target and the share of frames on the distractor, own vs swapped supports (a
    tracker without prompts: its own row only, the drift a prompted tracker is measured against);
    with ``deteriorated`` (each video's deteriorated frames) also both on those frames and on the others."""
    rows = {"own": [], "swapped": []} if model.prompting else {"own": []}
    used = 0
    for v, video in enumerate(videos):
        first = video.targets[0]
        seen = [int(i) for i, v in zip(first.track_ids, first.visible) if v]
        if len(seen) < 2:
            continue
        target, distractor = object_boxes(video, seen[0]), object_boxes(video, seen[1])
        used += 1
        for setting in rows:
            state = start(model, video.frames[0], target[0], num_support, stride, refresh_every)
            last_d = distractor[0]
            for t in range(1, len(video)):
                last_d = distractor[t] if distractor[t] is not None else last_d
                swapped = setting == "swapped"
                if getattr(model, "supports", "search") == "target":  # the memory keeps the distractor's box
                    box, _, state = step(model, video.frames[t], state, support_box=last_d if swapped else None)
                else:
                    region = crop_region(last_d, factor) if swapped else None
                    box, _, state = step(model, video.frames[t], state, support_region=region)
                on_target = iou(box, target[t]) if target[t] is not None else None
                on_distractor = iou(box, distractor[t]) if distractor[t] is not None else 0.0
                if on_target is not None:
                    bad = deteriorated is not None and t in deteriorated[v]
                    rows[setting].append((on_target, on_distractor >= 0.3 and on_distractor > on_target, bad))
    out = {"sequences": used}
    for setting, r in rows.items():
        out[setting] = _shares(r)
        if deteriorated is not None:
            out[setting]["deteriorated"] = _shares([x for x in r if x[2]])
            out[setting]["clean"] = _shares([x for x in r if not x[2]])
    return out


def _shares(rows: list) -> dict:
    return {"ao": float(np.mean([r[0] for r in rows])) if rows else None,
            "on_distractor": float(np.mean([r[1] for r in rows])) if rows else None, "frames": len(rows)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="an STPN tracker run (folder or model.safetensors)")
    parser.add_argument("--videos", type=int, help="the first N validation videos (default: all)")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    from .build import load_tracker
    model, cfg = load_tracker(args.weights)
    d = cfg.data
    videos, deteriorated = validation_videos(cfg, with_deteriorated=True)
    result = swap_test(model, videos[:args.videos], d.test_num_support, d.test_stride,
                       d.test_refresh_every, model.search_factor, deteriorated[:args.videos])
    for setting in ("own", "swapped") if model.prompting else ("own",):
        r = result[setting]
        print(f"{setting:8s} supports: AO {100 * r['ao']:.1f}, on the distractor in {100 * r['on_distractor']:.1f} % "
              f"of {r['frames']} frames ({result['sequences']} sequences with a distractor)")
        for part in ("clean", "deteriorated"):
            q = r[part]
            if q["frames"]:
                print(f"{'':8s} {part:>12s} frames: AO {100 * q['ao']:.1f}, on the distractor in "
                      f"{100 * q['on_distractor']:.1f} % of {q['frames']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
