"""Video instance segmentation scored frame by frame, to tell segmentation from association:

- ``frame_mask_ap``: every frame scored as an independent COCO image (pycocotools' COCOeval,
  ``iouType="segm"``): the per-frame instances (mask, class, score), whatever their track. A
  model that segments well but links badly keeps its per-frame AP and loses video AP. Also
  ``ap50_any_class`` (``useCats=0``): the masks alone, a wrong class still matching.
- ``id_switches``: per ground-truth track, the frames where its matched predicted track differs
  from the one it last matched (CLEAR-MOT's identity switch; per frame, ground truth and
  predictions are matched one-to-one by mask IoU >= ``iou``, Hungarian on IoU). A switch counts
  at the frame where it shows.

Per-frame instances come as ``{video id: [frame: {"rles", "labels", "scores", "track_ids"}]}``
(what ``stpn.segmentation`` keeps per frame). ``frames`` restricts either score to a subset
({video id: frame indices}), e.g. the deteriorated frames.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.optimize import linear_sum_assignment

from ..data.types import AnnotationError, Video
from ..data.ytvis import to_rle


def _check(videos: list[Video], instances: dict) -> dict:
    by_id = {v.meta["id"]: v for v in videos}
    for vid_id, frames in instances.items():
        if vid_id not in by_id:
            raise AnnotationError(f"per-frame instances of video {vid_id}: no such video in the ground truth")
        if len(frames) != len(by_id[vid_id]):
            raise AnnotationError(f"per-frame instances of video {vid_id}: {len(frames)} frames, the video has "
                                  f"{len(by_id[vid_id])}")
        for t, f in enumerate(frames):
            n = len(f["rles"])
            if not (len(f["labels"]) == len(f["scores"]) == len(f.get("track_ids", f["labels"])) == n):
                raise AnnotationError(f"video {vid_id} frame {t}: {n} masks, {len(f['labels'])} labels, "
                                      f"{len(f['scores'])} scores: one each per instance")
    return by_id


def _chooser(frames: dict | None):
    """(video id, frame) -> whether the frame is scored; the subset's sets built once."""
    if frames is None:
        return lambda vid_id, t: True
    sets = {k: {int(x) for x in v} for k, v in frames.items()}
    return lambda vid_id, t: t in sets.get(vid_id, ())


def frame_mask_ap(videos: list[Video], categories: list[dict], instances: dict, frames: dict | None = None) -> dict:
    """{"ap", "ap50", "ap75", "images"}: COCO mask AP with each (video, frame) an image; a video
    missing from ``instances`` has no detections."""
    by_id, chosen = _check(videos, instances), _chooser(frames)
    images, gt_anns, dt_anns = [], [], []
    for vid_id, video in by_id.items():
        for t, tg in enumerate(video.targets):
            if not chosen(vid_id, t):
                continue
            image = len(images) + 1
            images.append({"id": image, "height": video.height, "width": video.width})
            for j in range(len(tg)):
                if tg.masks is None or tg.masks[j] is None:
                    continue
                rle = to_rle(tg.masks[j], video.height, video.width, f"ground truth video {vid_id}, frame {t}")
                area = float(mask_utils.area(rle))
                if area == 0:
                    continue
                gt_anns.append({"id": len(gt_anns) + 1, "image_id": image, "category_id": int(tg.labels[j]),
                                "segmentation": rle, "area": area, "bbox": list(mask_utils.toBbox(rle)),
                                "iscrowd": int(tg.extra.get("iscrowd", np.zeros(len(tg)))[j])})
            found = instances.get(vid_id)
            if found is None:
                continue
            f = found[t]
            for k, rle in enumerate(f["rles"]):
                rle = to_rle(rle, video.height, video.width, f"instances of video {vid_id}, frame {t}, instance {k}")
                dt_anns.append({"id": len(dt_anns) + 1, "image_id": image, "category_id": int(f["labels"][k]),
                                "segmentation": rle, "area": float(mask_utils.area(rle)),
                                "bbox": list(mask_utils.toBbox(rle)), "score": float(f["scores"][k])})
    out = {"ap": None, "ap50": None, "ap75": None, "ap50_any_class": None, "images": len(images)}
    if not gt_anns:
        return out
    if not dt_anns:
        return {**out, "ap": 0.0, "ap50": 0.0, "ap75": 0.0, "ap50_any_class": 0.0}
    coco_gt, coco_dt = COCO(), COCO()
    coco_gt.dataset = {"images": images, "annotations": gt_anns, "categories": categories}
    coco_dt.dataset = {"images": images, "annotations": dt_anns, "categories": categories}
    stats = []
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        coco_dt.createIndex()
        for use_cats in (1, 0):  # per class, then any class (the masks alone: a wrong class still matches)
            ev = COCOeval(coco_gt, coco_dt, "segm")
            ev.params.useCats = use_cats
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            stats.append([float(x) if x >= 0 else None for x in ev.stats[:3]])
    (ap, ap50, ap75), any_class = stats[0], stats[1][1]
    return {**out, "ap": ap, "ap50": ap50, "ap75": ap75, "ap50_any_class": any_class}


def id_switches(videos: list[Video], instances: dict, frames: dict | None = None, iou: float = 0.5) -> dict:
    """{"id_switches", "matches"}: identity switches and matched (ground truth, prediction) pairs
    in the chosen frames (the last match before them still counts as the track's history)."""
    by_id, chosen = _check(videos, instances), _chooser(frames)
    switches = matches = 0
    for vid_id, video in by_id.items():
        found = instances.get(vid_id)
        if found is None:
            continue
        last: dict[int, int] = {}
        for t, tg in enumerate(video.targets):
            gt = [(int(tg.track_ids[j]), to_rle(tg.masks[j], video.height, video.width,
                                                f"ground truth video {vid_id}, frame {t}"))
                  for j in range(len(tg)) if tg.masks is not None and tg.masks[j] is not None]
            f = found[t]
            if not gt or not len(f["rles"]):
                continue
            overlap = np.asarray(mask_utils.iou(list(f["rles"]), [g[1] for g in gt], [0] * len(gt)), dtype=np.float64)
            overlap = overlap.reshape(len(f["rles"]), len(gt))
            for r, c in zip(*linear_sum_assignment(-overlap)):
                if overlap[r, c] < iou:
                    continue
                g, p = gt[c][0], int(f["track_ids"][r])
                if chosen(vid_id, t):
                    matches += 1
                    switches += int(g in last and last[g] != p)
                last[g] = p
    return {"id_switches": switches, "matches": matches}
