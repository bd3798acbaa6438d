"""ImageNet VID detection metric: AP at IoU 0.5 with the motion breakdown, for any dataset.

- IoU with the devkit's +1 pixel convention; VOC all-point interpolated AP per class; mean over
  the classes that have ground truth.
- Matching: detections of a frame in descending score order (ties: file order); each takes the
  unmatched ground-truth box of its class with the largest IoU among those with
  IoU >= threshold. Threshold: ``fixed`` 0.5 (MEGA, STPN) or ``devkit``
  min(0.5, wh / ((w + 10)(h + 10))) of the ground-truth box.
- Motion IoU of a ground-truth box: mean IoU with the same track's boxes in frames t-10..t+10
  (t excluded, frames where the track exists). fast < 0.7 <= medium <= 0.9 < slow. A box whose
  track has no other box in that window has no motion IoU and belongs to no motion group.
  When scoring a group, a detection matched to ground truth of another group is ignored
  (neither true nor false positive) and that ground truth is not counted.
"""
from __future__ import annotations

import numpy as np

from ..data.types import Video
from ..data.vid import check_vid_detections

GROUPS = ("fast", "medium", "slow")


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of broadcastable (..., 4) xyxy boxes with inclusive pixel coordinates (+1 convention);
    NaN boxes give NaN."""
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    return inter / (area_a + area_b - inter)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (n, m) of xyxy boxes with inclusive pixel coordinates (+1 convention)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return _iou(a[:, None, :], b[None, :, :])


def motion_iou(video: Video, window: int = 10) -> list[np.ndarray]:
    """Per frame, the motion IoU of each ground-truth box (NaN when its track has no neighbour)."""
    T = len(video.targets)
    out = [np.full(len(tg), np.nan) for tg in video.targets]
    for tid, frames in video.tracks().items():
        dense = np.full((T, 4), np.nan)
        idx = np.fromiter(frames, dtype=np.int64)
        dense[idx] = np.stack([frames[i] for i in idx])
        total, count = np.zeros(T), np.zeros(T)
        for d in range(1, window + 1):
            iou = _iou(dense[:-d], dense[d:])  # frame t with t+d
            ok = ~np.isnan(iou)
            total[:-d][ok] += iou[ok]
            count[:-d][ok] += 1
            total[d:][ok] += iou[ok]
            count[d:][ok] += 1
        for t in idx:
            j = np.flatnonzero(video.targets[t].track_ids == tid)[0]
            out[t][j] = total[t] / count[t] if count[t] else np.nan
    return out


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC all-point interpolated AP."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _gt_table(videos: list[Video], frames: set[int] | None):
    rows_frame, rows_label, rows_box, rows_motion = [], [], [], []
    all_frames = []
    for video in videos:
        if video.targets is None:
            raise ValueError(f"video {video.name} has no annotations to evaluate against")
        indices = video.meta.get("frame_indices") or list(range(1, len(video) + 1))
        motions = motion_iou(video)
        for t, (tg, g) in enumerate(zip(video.targets, indices)):
            all_frames.append(g)
            if frames is not None and g not in frames:
                continue
            rows_frame.append(np.full(len(tg), g, dtype=np.int64))
            rows_label.append(tg.labels)
            rows_box.append(tg.boxes.astype(np.float64))
            rows_motion.append(motions[t])
    cat = lambda xs, shape: np.concatenate(xs) if xs else np.zeros(shape)  # noqa: E731
    return (cat(rows_frame, (0,)).astype(np.int64), cat(rows_label, (0,)).astype(np.int64),
            cat(rows_box, (0, 4)), cat(rows_motion, (0,)), np.array(all_frames, dtype=np.int64))


def match_detections(dets: np.ndarray, gt_frame, gt_label, gt_box, rule: str) -> np.ndarray:
    """Index of the ground-truth box each detection matches, or -1."""
    matched = np.full(len(dets), -1, dtype=np.int64)
    if not len(dets) or not len(gt_frame):
        return matched
    w = gt_box[:, 2] - gt_box[:, 0] + 1
    h = gt_box[:, 3] - gt_box[:, 1] + 1
    thr = np.full(len(gt_box), 0.5) if rule == "fixed" else np.minimum(0.5, w * h / ((w + 10) * (h + 10)))
    order = np.lexsort((np.arange(len(dets)), -dets[:, 2], dets[:, 0]))  # frame, then score desc, then file order
    gt_order = np.argsort(gt_frame, kind="stable")
    gt_frames_sorted = gt_frame[gt_order]
    det_frames = dets[order, 0].astype(np.int64)
    starts = np.flatnonzero(np.r_[True, det_frames[1:] != det_frames[:-1]])
    ends = np.r_[starts[1:], len(order)]
    for s, e in zip(starts, ends):
        f = det_frames[s]
        lo, hi = np.searchsorted(gt_frames_sorted, [f, f + 1])
        if lo == hi:
            continue
        gts = gt_order[lo:hi]
        rows = order[s:e]
        iou = box_iou(dets[rows, 3:7], gt_box[gts])
        ok = (iou >= thr[gts][None, :]) & (dets[rows, 1].astype(np.int64)[:, None] == gt_label[gts][None, :])
        candidates = np.flatnonzero(ok.any(1))
        taken = np.zeros(len(gts), dtype=bool)
        for r in candidates:
            cand = ok[r] & ~taken
            if cand.any():
                j = int(np.argmax(np.where(cand, iou[r], -1.0)))
                taken[j] = True
                matched[rows[r]] = gts[j]
    return matched


def evaluate_vid(videos: list[Video], dets: np.ndarray, rule: str = "fixed", frames=None,
                 class_names=None, num_classes: int = 30) -> dict:
    """AP50 (mean over classes with ground truth), per-class AP and the motion breakdown.

    videos: ground truth with ``meta['frame_indices']`` (global frame indices of the detection
    file; 1..N in order when absent). dets: (n, 7) rows ``frame, class, score, x1, y1, x2, y2``.
    frames: optional set of global frame indices to score (e.g. deteriorated frames only).
    """
    if rule not in ("fixed", "devkit"):
        raise ValueError(f"rule must be 'fixed' or 'devkit', got {rule!r}")
    frames = None if frames is None else set(int(f) for f in frames)
    dets = np.asarray(dets, dtype=np.float64).reshape(-1, 7)
    check_vid_detections(dets, lambda row: f"detection row {row + 1}", num_classes)
    gt_frame, gt_label, gt_box, gt_motion, known = _gt_table(videos, frames)
    unknown = ~np.isin(dets[:, 0].astype(np.int64), known)
    if unknown.any():
        r = int(np.flatnonzero(unknown)[0])
        raise ValueError(f"detection row {r + 1} is for frame index {int(dets[r, 0])}, which is not in the "
                         f"ground truth ({int(unknown.sum())} such rows)")
    if frames is not None:
        dets = dets[np.isin(dets[:, 0].astype(np.int64), list(frames))]
    matched = match_detections(dets, gt_frame, gt_label, gt_box, rule)
    group_of = np.full(len(gt_frame), "", dtype=object)
    group_of[gt_motion < 0.7] = "fast"
    group_of[(gt_motion >= 0.7) & (gt_motion <= 0.9)] = "medium"
    group_of[gt_motion > 0.9] = "slow"
    labels = dets[:, 1].astype(np.int64)
    order = np.argsort(-dets[:, 2], kind="stable")
    names = list(class_names) if class_names is not None else [str(c) for c in range(1, num_classes + 1)]

    def score(group: str | None) -> tuple[float | None, dict]:
        in_group = np.ones(len(gt_frame), bool) if group is None else group_of == group
        per_class = {}
        for c in range(1, num_classes + 1):
            npos = int(np.sum(in_group & (gt_label == c)))
            if npos == 0:
                per_class[names[c - 1]] = None
                continue
            rows = order[labels[order] == c]
            m = matched[rows]
            hit = m >= 0
            keep = ~hit | in_group[np.where(hit, m, 0)]
            tp = (hit & keep)[keep].astype(np.float64)
            fp = 1.0 - tp
            tp, fp = np.cumsum(tp), np.cumsum(fp)
            recall = tp / npos
            precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
            per_class[names[c - 1]] = voc_ap(recall, precision)
        values = [v for v in per_class.values() if v is not None]
        return (float(np.mean(values)) if values else None), per_class

    ap50, per_class = score(None)
    result = {"ap50": ap50, "per_class": per_class, "rule": rule, "num_gt": int(len(gt_frame)),
              "num_detections": int(len(dets)), "num_frames": int(len(known) if frames is None else len(frames))}
    for g in GROUPS:
        result[f"ap50_{g}"] = score(g)[0]
        result[f"num_gt_{g}"] = int(np.sum(group_of == g))
    result["num_gt_without_motion_iou"] = int(np.sum(np.isnan(gt_motion)))
    return result
