"""Track ids for per-frame instances: Hungarian assignment on a cost between the current frame's
instances and the previous frame's tracks (IoU of boxes now; embeddings join for segmentation)."""
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
