"""Track ids by IoU association, and boxes drawn on frames."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy.optimize import linear_sum_assignment

from ..evaluation.vid import box_iou

COLORS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
          (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


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


def draw(frame: np.ndarray, boxes, labels, scores, track_ids, names) -> np.ndarray:
    img = Image.fromarray(frame)
    pen = ImageDraw.Draw(img)
    for box, label, score, tid in zip(boxes, labels, scores, track_ids):
        color = COLORS[int(tid) % len(COLORS)]
        x1, y1, x2, y2 = (float(v) for v in box)
        pen.rectangle([x1, y1, x2, y2], outline=color, width=2)
        text = f"{names[int(label) - 1] if 0 < label <= len(names) else label} {score:.2f} #{tid}"
        tx, ty = x1, max(0.0, y1 - 11)
        pen.rectangle([tx, ty, tx + 6 * len(text) + 2, ty + 11], fill=color)
        pen.text((tx + 1, ty), text, fill=(0, 0, 0))
    return np.asarray(img)
