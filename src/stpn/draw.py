"""Boxes, track ids and masks drawn on frames, for every task (torchvision's ``draw_*`` utilities)."""
from __future__ import annotations

import numpy as np
import torch
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

COLORS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
          (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


def color_of(track_id: int) -> tuple[int, int, int]:
    return COLORS[int(track_id) % len(COLORS)]


def _tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(frame, dtype=np.uint8, copy=True)).permute(2, 0, 1)


def _array(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).contiguous().numpy()


def draw_detections(frame: np.ndarray, boxes, labels, scores, track_ids, names) -> np.ndarray:
    """(H, W, 3) uint8 frame with inclusive x1,y1,x2,y2 boxes, each labelled "class score #id" in
    its track's colour."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes):
        return np.array(frame, copy=True)
    text = [f"{names[int(c) - 1] if 0 < int(c) <= len(names) else int(c)} {float(s):.2f} #{int(i)}"
            for c, s, i in zip(labels, scores, track_ids)]
    colors = [color_of(i) for i in track_ids]
    out = draw_bounding_boxes(_tensor(frame), torch.from_numpy(boxes), text, colors=colors, width=2,
                              label_colors=(0, 0, 0), label_background_colors=colors, fill_labels=True)
    return _array(out)


def draw_box(frame: np.ndarray, box, score: float | None = None, color=(255, 64, 64)) -> np.ndarray:
    """(H, W, 3) uint8 frame with one x,y,w,h box (a tracker's), and its score above it when given."""
    x, y, w, h = (float(v) for v in box)
    out = draw_bounding_boxes(_tensor(frame), torch.tensor([[x, y, x + w, y + h]]),
                              None if score is None else [f"{score:.2f}"], colors=[tuple(color)], width=2,
                              label_colors=tuple(color))
    return _array(out)


def draw_masks(frame: np.ndarray, masks, track_ids, alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8 frame with boolean (n, H, W) instance masks in their tracks' colours."""
    masks = torch.as_tensor(np.asarray(masks, dtype=bool)).reshape(-1, *frame.shape[:2])
    if not len(masks):
        return np.array(frame, copy=True)
    out = draw_segmentation_masks(_tensor(frame), masks, alpha=alpha, colors=[color_of(i) for i in track_ids])
    return _array(out)
