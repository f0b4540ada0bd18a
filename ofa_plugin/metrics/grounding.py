"""Visual grounding metrics: box IoU and Acc@0.5 as the official refcoco evaluation counts it (§5.4).

Boxes are (x0, y0, x1, y1) in pixels, computed in float64. Conventions:
- no "+1 pixel" widths: a box's width is x1 - x0, as in the official code;
- a box with x1 <= x0 or y1 <= y0 (zero-area or inverted, which a model can generate) has area 0, so
  its IoU with anything is 0 and it is never a hit; the official code gets the same hit decision
  because such a box never gives an intersection of positive width and height;
- touching boxes have an empty intersection: IoU 0, no hit;
- IoU is 0 when the union is empty (two zero-area boxes), never NaN; non-finite coordinates are
  rejected with a ValueError.
A hit needs IoU >= threshold and an intersection of positive width and height. Like the official
code, the hit test divides by union + 1e-6 (`OFFICIAL_IOU_EPS`), so an IoU of exactly 0.5 is a miss.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

OFFICIAL_IOU_EPS = 1e-6


def _as_boxes(boxes: ArrayLike, name: str) -> np.ndarray:
    """float64 array of shape (..., 4); raises ValueError for another shape or non-finite values."""
    array = np.asarray(boxes, dtype=np.float64)
    if array.ndim == 0 or array.shape[-1] != 4:
        raise ValueError(f"{name} must hold boxes (x0, y0, x1, y1) in the last dimension, got shape {array.shape}")
    bad = ~np.isfinite(array).all(axis=-1)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f" at index {index}" if index else ""
        raise ValueError(f"{name}: non-finite box {array[index].tolist()}{where}")
    return array


def _intersection_and_union(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clamped intersection width, height and union area of broadcast boxes."""
    inter_w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0.0, None)
    inter_h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0.0, None)
    area_a = np.clip(a[..., 2] - a[..., 0], 0.0, None) * np.clip(a[..., 3] - a[..., 1], 0.0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0.0, None) * np.clip(b[..., 3] - b[..., 1], 0.0, None)
    return inter_w, inter_h, area_a + area_b - inter_w * inter_h


def _iou(inter_w: np.ndarray, inter_h: np.ndarray, union: np.ndarray, eps: float) -> np.ndarray:
    inter = inter_w * inter_h
    denominator = union + eps
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, inter / safe, 0.0)


def box_iou(a: ArrayLike, b: ArrayLike, eps: float = 0.0) -> np.float64 | np.ndarray:
    """Intersection over union of xyxy boxes, broadcast over leading dimensions (a scalar for two boxes).

    `eps` is added to the union (the official hit test uses 1e-6); the result is in [0, 1].
    """
    a, b = _as_boxes(a, "box a"), _as_boxes(b, "box b")
    return _iou(*_intersection_and_union(a, b), eps)[()]


def grounding_hit(pred: ArrayLike, gt: ArrayLike, threshold: float = 0.5) -> np.bool_ | np.ndarray:
    """Official refcoco hit: IoU (union + 1e-6) >= threshold and an intersection with positive
    width and height. Broadcasts like `box_iou`."""
    pred, gt = _as_boxes(pred, "predicted box"), _as_boxes(gt, "ground-truth box")
    inter_w, inter_h, union = _intersection_and_union(pred, gt)
    iou = _iou(inter_w, inter_h, union, OFFICIAL_IOU_EPS)
    return ((iou >= threshold) & (inter_w > 0) & (inter_h > 0))[()]


def acc_at_threshold(preds: ArrayLike, gts: ArrayLike, threshold: float = 0.5) -> float:
    """Fraction of rows of `preds` (N, 4) that hit the box in the same row of `gts` (Acc@0.5 by default)."""
    preds, gts = _as_boxes(preds, "predicted boxes"), _as_boxes(gts, "ground-truth boxes")
    if preds.ndim != 2 or preds.shape != gts.shape or len(preds) == 0:
        raise ValueError(f"need two non-empty (N, 4) box arrays of equal shape, got {preds.shape} and {gts.shape}")
    return float(np.mean(grounding_hit(preds, gts, threshold)))
