"""YouTube-VIS metric: COCO AP over IoU 0.50:0.05:0.95 where the IoU of two tracks is
spatio-temporal (sum over frames of intersections / sum over frames of unions).

pycocotools' COCOeval does the matching and accumulation (101 recall points, maxDets 1/10/100
per video); we give it videos as images, tracks as annotations whose area is the track's mean
area over its non-empty frames (small < 128^2 <= medium < 256^2 <= large), and the
spatio-temporal IoU.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..data.types import AnnotationError, Video, require_file
from ..data.ytvis import check_track_ids, to_rle

KEYS = ("ap", "ap50", "ap75", "aps", "apm", "apl", "ar1", "ar10")


def _track_masks(segmentations, video: Video, frames, where: str):
    """Per-frame RLEs (None where empty or outside ``frames``), areas and the mean area."""
    rles, areas = [], []
    for t, seg in enumerate(segmentations):
        if seg is None or (frames is not None and t not in frames):
            rles.append(None)
            areas.append(0.0)
            continue
        rle = to_rle(seg, video.height, video.width, f"{where}, frame {t}")
        rles.append(rle)
        areas.append(float(mask_utils.area(rle)))
    nonzero = [a for a in areas if a > 0]
    return rles, np.array(areas), (float(np.mean(nonzero)) if nonzero else 0.0)


def track_iou(dt: list, gt: list, dt_areas: np.ndarray, gt_areas: np.ndarray) -> np.ndarray:
    """Spatio-temporal IoU (n_dt, n_gt): per frame intersections from pycocotools' IoU and the
    areas, summed over frames, divided by the summed unions (a frame where only one side has a
    mask adds that mask's area to the union; 0 where the union is empty).

    A crowd track is not special here: as the official ``YTVOSeval`` (youtubevos/cocoapi), the
    IoU ignores ``iscrowd``; a crowd track only makes the detections it matches ignored
    (COCOeval's matching), unlike COCO images, where the union with a crowd is the detection."""
    n_dt, n_gt = len(dt), len(gt)
    inter, union = np.zeros((n_dt, n_gt)), np.zeros((n_dt, n_gt))
    T = len(dt[0]) if dt else (len(gt[0]) if gt else 0)
    for t in range(T):
        di = [i for i in range(n_dt) if dt[i][t] is not None]
        gi = [j for j in range(n_gt) if gt[j][t] is not None]
        a_d, a_g = dt_areas[:, t], gt_areas[:, t]
        if di and gi:
            iou = np.asarray(mask_utils.iou([dt[i][t] for i in di], [gt[j][t] for j in gi], [0] * len(gi)))
            ad, ag = a_d[di][:, None], a_g[gi][None, :]
            inter[np.ix_(di, gi)] += iou * (ad + ag) / (1 + iou)
        union += a_d[:, None] + a_g[None, :]  # areas of both (zero where one is empty) ...
    union -= inter  # ... minus the intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


class _TrackEval(COCOeval):
    def __init__(self, gt: COCO, dt: COCO, ious: dict):
        super().__init__(gt, dt, "bbox")  # IoU is ours; "bbox" skips mask decoding
        self._track_ious = ious
        self.params.areaRng = [[0, 1e10], [0, 128 ** 2], [128 ** 2, 256 ** 2], [256 ** 2, 1e10]]

    def computeIoU(self, imgId, catId):
        gts = self._gts[imgId, catId]
        dts = sorted(self._dts[imgId, catId], key=lambda d: -d["score"])[: self.params.maxDets[-1]]
        if not gts or not dts:
            return []
        return self._track_ious[imgId].lookup([d["id"] for d in dts], [g["id"] for g in gts])


def evaluate_ytvis(videos: list[Video], categories: list[dict], results: list[dict], frames: dict | None = None) -> dict:
    """AP, AP50, AP75, APs, APm, APl, AR1, AR10 of ``results`` (the results.json list).

    ``videos`` come from ``read_ytvis`` (``meta['id']`` is the video id). ``frames``: optional
    {video id: frame indices} restricting the IoU and areas to those frames; a track (ground
    truth or result) with no mask in them is left out, as detections on other frames are left
    out of a frame subset's detection AP.
    """
    by_id = {v.meta["id"]: v for v in videos}
    cat_ids = {c["id"] for c in categories}
    gt_anns, dt_anns = [], []
    gt_masks, dt_masks = {}, {}
    for vid_id, video in by_id.items():
        chosen = None if frames is None else {int(t) for t in frames.get(vid_id, [])}
        tracks: dict[int, dict] = {}
        for t, tg in enumerate(video.targets):
            for j, tid in enumerate(tg.track_ids):
                tr = tracks.setdefault(int(tid), {"category_id": int(tg.labels[j]), "segs": [None] * len(video),
                                                  "iscrowd": int(tg.extra.get("iscrowd", np.zeros(len(tg)))[j])})
                tr["segs"][t] = tg.masks[j]
        for tid, tr in tracks.items():
            rles, areas, mean_area = _track_masks(tr["segs"], video, chosen, f"ground truth video {vid_id}")
            if not areas.any():
                continue  # nothing of this track in the scored frames
            gt_anns.append({"id": len(gt_anns) + 1, "image_id": vid_id, "category_id": tr["category_id"],
                            "area": mean_area, "iscrowd": tr["iscrowd"], "bbox": [0, 0, 1, 1]})
            gt_masks.setdefault(vid_id, []).append((gt_anns[-1]["id"], rles, areas))
    for i, r in enumerate(results):
        where = f"results[{i}]"
        for key in ("video_id", "category_id", "score", "segmentations"):
            if key not in r:
                raise AnnotationError(f"{where}: missing key {key!r}")
        check_track_ids(r, where, by_id, cat_ids, "in the ground truth")
        score = r["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise AnnotationError(f"{where}: score must be a finite number, got {score!r}")
        video = by_id[r["video_id"]]
        if len(r["segmentations"]) != len(video):
            raise AnnotationError(f"{where}: {len(r['segmentations'])} segmentations for video {r['video_id']} "
                                  f"of {len(video)} frames")
        chosen = None if frames is None else {int(t) for t in frames.get(r["video_id"], [])}
        rles, areas, mean_area = _track_masks(r["segmentations"], video, chosen, where)
        if chosen is not None and not areas.any():
            continue  # nothing of this track in the scored frames: not there, as a ground-truth track
        dt_anns.append({"id": len(dt_anns) + 1, "image_id": r["video_id"], "category_id": r["category_id"],
                        "score": float(r["score"]), "area": mean_area, "bbox": [0, 0, 1, 1]})
        dt_masks.setdefault(r["video_id"], []).append((dt_anns[-1]["id"], rles, areas))
    # spatio-temporal IoU of every detection against every ground truth of the same video,
    # indexed by the global annotation ids COCOeval hands to computeIoU
    ious = {}
    for vid_id in by_id:
        g, d = gt_masks.get(vid_id, []), dt_masks.get(vid_id, [])
        if g and d:
            m = track_iou([x[1] for x in d], [x[1] for x in g], np.stack([x[2] for x in d]),
                          np.stack([x[2] for x in g]))
            ious[vid_id] = _Table({x[0]: i for i, x in enumerate(d)}, {x[0]: j for j, x in enumerate(g)}, m)
    images = [{"id": vid_id} for vid_id in by_id]
    coco_gt, coco_dt = COCO(), COCO()
    coco_gt.dataset = {"images": images, "annotations": gt_anns, "categories": categories}
    coco_dt.dataset = {"images": images, "annotations": dt_anns, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        coco_dt.createIndex()
        ev = _TrackEval(coco_gt, coco_dt, ious)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = ev.stats  # AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl
    out = {k: (float(stats[i]) if stats[i] >= 0 else None) for i, k in enumerate(KEYS)}
    out.update(num_gt_tracks=len(gt_anns), num_results=len(dt_anns))
    return out


class _Table:
    """IoU matrix addressed by global detection / ground-truth annotation ids."""

    def __init__(self, dt_index: dict, gt_index: dict, matrix: np.ndarray):
        self.dt_index, self.gt_index, self.matrix = dt_index, gt_index, matrix

    def lookup(self, dt_ids: list[int], gt_ids: list[int]) -> np.ndarray:
        return self.matrix[np.ix_([self.dt_index[i] for i in dt_ids], [self.gt_index[j] for j in gt_ids])]


def load_results(path: str | Path) -> list[dict]:
    path = require_file(path, "results.json (a JSON list of tracks)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path}: malformed JSON: {err}") from None
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: results must be a JSON list of tracks, got {type(data).__name__}")
    return data
