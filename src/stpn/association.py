"""Track ids for per-frame instances: Hungarian assignment on a cost between the current frame's
instances and the tracks so far (``IoUTracker``: IoU of boxes, for detections; ``InstanceTracker``:
mask IoU and embeddings, for instance segmentation; ``QuasiDenseTracker``: a memory of tracks
matched by bi-softmax of trained embeddings and mask IoU)."""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from .evaluation.vid import box_iou


class IoUTracker:
    """Gives detections track ids: Hungarian matching on IoU with the previous frame's tracks
    of the same class (IoU >= ``min_iou``); unmatched detections start new tracks."""

    def __init__(self, min_iou: float = 0.3):
        self.min_iou, self.next_id = min_iou, 1
        self.boxes, self.labels, self.ids = np.zeros((0, 4)), np.zeros(0, int), np.zeros(0, int)

    def update(self, boxes: np.ndarray, labels: np.ndarray) -> np.ndarray:
        ids = np.zeros(len(boxes), dtype=int)
        if len(boxes) and len(self.boxes):
            iou = box_iou(boxes, self.boxes) * (labels[:, None] == self.labels[None, :])
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= self.min_iou:
                    ids[r] = self.ids[c]
        for i in np.flatnonzero(ids == 0):
            ids[i], self.next_id = self.next_id, self.next_id + 1
        self.boxes, self.labels, self.ids = boxes, labels, ids
        return ids


class InstanceTracker:
    """Online association of per-frame instance masks into tracks (MinVIS-style, our own code).

    Each frame, Hungarian assignment (``scipy.optimize.linear_sum_assignment``) between the
    frame's instances and the active tracks on the cost

        (1 - mask IoU with the track's last mask) + embed_weight * (1 - cosine with its last embedding)

    where a pair of cost above ``max_cost`` never matches, nor, with ``class_gate``, a pair of
    different classes (off by default: a per-frame class that flips on a bad frame would cut the
    track there; the video's category is voted over the track anyway). A matched track takes the instance's mask and embedding; a track unmatched for more
    than ``max_missed`` frames in a row ends; an unmatched instance starts a track with the next id.
    Masks are COCO RLEs (so long videos stay small); embeddings unit vectors (or None when
    ``embed_weight`` is 0).
    """

    def __init__(self, embed_weight: float = 1.0, max_cost: float = 1.9, max_missed: int = 5, class_gate: bool = False):
        if embed_weight < 0 or max_cost < 0 or max_missed < 0:
            raise ValueError("embed_weight, max_cost and max_missed must be >= 0")
        self.embed_weight, self.max_cost, self.max_missed, self.class_gate = embed_weight, max_cost, max_missed, class_gate
        self.next_id = 1
        self.tracks: dict[int, dict] = {}  # id -> {mask, embedding, label, missed}

    def cost(self, masks: list, labels, embeddings) -> np.ndarray:
        """(n instances, n active tracks) cost; inf where a match is not allowed."""
        tracks = list(self.tracks.values())
        if not len(masks) or not tracks:
            return np.zeros((len(masks), len(tracks)))
        cost = 1 - _mask_iou(masks, tracks)
        if self.embed_weight:
            e = np.asarray(embeddings, dtype=np.float64).reshape(len(masks), -1)
            f = np.stack([t["embedding"] for t in tracks]).astype(np.float64)
            cost = cost + self.embed_weight * (1 - e @ f.T)
        if self.class_gate:
            cost[_other_class(labels, tracks)] = np.inf
        cost[cost > self.max_cost] = np.inf
        return cost

    def update(self, masks: list, labels, embeddings=None, scores=None) -> np.ndarray:
        """Track ids of this frame's instances (masks: n RLEs; labels: (n,); embeddings: (n, D));
        every instance gets one (``scores`` is not read: the interface of ``QuasiDenseTracker``)."""
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(masks) != len(labels) or (self.embed_weight and (embeddings is None or len(embeddings) != len(labels))):
            raise ValueError(f"{len(masks)} masks, {len(labels)} labels and "
                             f"{'no' if embeddings is None else len(embeddings)} embeddings: one each per instance")
        active = list(self.tracks)
        ids = _assign(self.cost(masks, labels, embeddings), active)
        for i in np.flatnonzero(ids == 0):
            ids[i], self.next_id = self.next_id, self.next_id + 1
        _age(self.tracks, active, ids, self.max_missed)
        for k, tid in enumerate(ids.tolist()):
            self.tracks[tid] = {"mask": masks[k], "label": int(labels[k]), "missed": 0,
                                "embedding": None if embeddings is None else np.asarray(embeddings[k], dtype=np.float64)}
        return ids


def _mask_iou(masks: list, tracks: list[dict]) -> np.ndarray:
    """(n, m) IoU of the instances' masks with the tracks' last masks (RLEs, pycocotools)."""
    from pycocotools import mask as mask_utils
    iou = mask_utils.iou(list(masks), [t["mask"] for t in tracks], [0] * len(tracks))
    return np.asarray(iou, dtype=np.float64).reshape(len(masks), len(tracks))


def _other_class(labels, tracks: list[dict]) -> np.ndarray:
    return np.asarray(labels)[:, None] != np.array([t["label"] for t in tracks])[None, :]


def _assign(cost: np.ndarray, active: list[int]) -> np.ndarray:
    """Hungarian assignment (scipy) on ``cost`` (inf: never): the matched track id per instance, 0 unmatched."""
    ids = np.zeros(cost.shape[0], dtype=np.int64)
    if cost.size:
        finite = np.where(np.isfinite(cost), cost, 1e9)
        for r, c in zip(*linear_sum_assignment(finite)):
            if np.isfinite(cost[r, c]):
                ids[r] = active[c]
    return ids


def _age(tracks: dict, active: list[int], ids: np.ndarray, max_missed: int) -> None:
    """One more missed frame for the ``active`` tracks no instance matched; past ``max_missed`` they end."""
    matched = set(ids.tolist())
    for tid in active:
        if tid not in matched:
            tracks[tid]["missed"] += 1
            if tracks[tid]["missed"] > max_missed:
                del tracks[tid]


class QuasiDenseTracker:
    """Online association on a memory of tracks (QDTrack's tracker, our own code), for the
    quasi-dense embeddings.

    Each frame, for n instances (embeddings e, masks, labels, scores) and the m tracks in memory
    (embedding f, last mask, missed frames), the match score of a pair is

        (bi-softmax + cosine) / 2 + iou_weight * mask IoU with the track's last mask,

    where bi-softmax = (softmax over tracks + softmax over instances of e . f) / 2 (a look-alike
    that two instances both resemble is ambiguous for both) and the cosine keeps a lone pair
    from scoring 1 by the softmax alone. Hungarian assignment (``scipy``) on the scores; a pair
    below ``match_score`` never matches, nor, with ``class_gate``, two classes. A matched track's
    embedding moves to ``(1 - momentum) f + momentum e`` and takes the mask; a track stays in
    memory ``max_missed`` frames without a match (an occluded instance keeps its identity), then
    ends. An unmatched instance starts a track when its score is >= ``init_score``; otherwise it
    gets id 0 (not tracked: left out of the results).
    """

    def __init__(self, match_score: float = 0.5, init_score: float = 0.5, momentum: float = 0.8,
                 iou_weight: float = 0.5, max_missed: int = 30, class_gate: bool = False):
        if not (0 <= momentum <= 1 and iou_weight >= 0 and max_missed >= 0):
            raise ValueError("momentum must be in [0, 1], iou_weight and max_missed >= 0")
        self.match_score, self.init_score, self.momentum = match_score, init_score, momentum
        self.iou_weight, self.max_missed, self.class_gate = iou_weight, max_missed, class_gate
        self.next_id = 1
        self.tracks: dict[int, dict] = {}  # id -> {embedding, mask, label, missed}

    def scores(self, masks: list, labels, embeddings) -> np.ndarray:
        """(n instances, m tracks) match scores; -inf where a match is not allowed."""
        tracks = list(self.tracks.values())
        if not len(masks) or not tracks:
            return np.zeros((len(masks), len(tracks)))
        e = np.asarray(embeddings, dtype=np.float64).reshape(len(masks), -1)
        f = np.stack([t["embedding"] for t in tracks])
        dots = e @ f.T
        to_tracks = np.exp(dots - dots.max(1, keepdims=True))
        to_instances = np.exp(dots - dots.max(0, keepdims=True))
        bisoftmax = (to_tracks / to_tracks.sum(1, keepdims=True) + to_instances / to_instances.sum(0, keepdims=True)) / 2
        unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # noqa: E731
        score = (bisoftmax + unit(e) @ unit(f).T) / 2
        if self.iou_weight:
            score = score + self.iou_weight * _mask_iou(masks, tracks)
        if self.class_gate:
            score[_other_class(labels, tracks)] = -np.inf
        score[~(score >= self.match_score)] = -np.inf  # NaN (a broken embedding) never matches either
        return score

    def update(self, masks: list, labels, embeddings, scores=None) -> np.ndarray:
        """Track ids (0: not tracked) of this frame's instances (masks: n RLEs; labels, scores: (n,);
        embeddings: (n, D)). ``scores`` None counts every instance as confident enough to start a track."""
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if embeddings is None or len(masks) != len(labels) or len(embeddings) != len(labels):
            raise ValueError(f"{len(masks)} masks, {len(labels)} labels and "
                             f"{'no' if embeddings is None else len(embeddings)} embeddings: one each per instance")
        det_scores = np.ones(len(labels)) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
        active = list(self.tracks)
        ids = _assign(-self.scores(masks, labels, embeddings), active)
        for i in np.flatnonzero(ids == 0):
            if det_scores[i] >= self.init_score:
                ids[i], self.next_id = self.next_id, self.next_id + 1
        _age(self.tracks, active, ids, self.max_missed)
        for k, tid in enumerate(ids.tolist()):
            if tid == 0:
                continue
            e = np.asarray(embeddings[k], dtype=np.float64)
            old = self.tracks.get(tid)
            embedding = e if old is None else (1 - self.momentum) * old["embedding"] + self.momentum * e
            self.tracks[tid] = {"embedding": embedding, "mask": masks[k], "label": int(labels[k]), "missed": 0}
        return ids
