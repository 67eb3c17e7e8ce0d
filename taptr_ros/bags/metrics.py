"""Numbers for bags: per-frame curves with ground truth, and ground-truth-free track quality.

With ground truth the headline metrics are the TAP-Vid ones (:mod:`taptr_ros.eval.runner`); this
module adds their curves over time. Without ground truth:

* survival: for each frame, the share of the points already started that the tracker calls
  visible; ``survival_at_end`` is that share in the last frame; a point's visible run is the
  number of frames from its query frame until its first predicted occlusion.
* forward-backward consistency: each point visible in the last frame is tracked back in time
  (a second lockstep pass over the reversed frames, added at its last predicted position); the
  error is the distance between where it comes back to in its query frame and its query.
  Reported in pixels of the image and scaled to 256 x 256 (the TAP-Vid scale), with the share
  below each TAP-Vid threshold.

Arrays: tracks (M, T, 2) pixels (x, y); occluded/visible (M, T) bool; query frames (M,) int.
"""

from __future__ import annotations

import numpy as np

from taptr_ros.eval.tapvid import EVAL_SIZE, THRESHOLDS, evaluation_mask


def visibility_accuracy_per_frame(
    query_frames: np.ndarray, gt_occluded: np.ndarray, pred_occluded: np.ndarray, query_mode: str
) -> np.ndarray:
    """(T,) share of evaluated (query, frame) pairs whose predicted occlusion is right; NaN where none."""
    scored = evaluation_mask(query_frames, gt_occluded.shape[1], query_mode)
    right = (gt_occluded == pred_occluded) & scored
    counts = scored.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, right.sum(axis=0) / np.maximum(counts, 1), np.nan)


def position_accuracy_per_frame(
    query_frames: np.ndarray,
    gt_tracks_256: np.ndarray,
    gt_occluded: np.ndarray,
    pred_tracks_256: np.ndarray,
    query_mode: str,
) -> np.ndarray:
    """(T,) <delta^x_avg per frame over evaluated pairs visible in the truth (256 x 256 scale); NaN where none."""
    scored = evaluation_mask(query_frames, gt_occluded.shape[1], query_mode) & ~gt_occluded
    distance = np.sqrt(np.sum(np.square(pred_tracks_256 - gt_tracks_256), axis=-1))
    within = np.mean([distance < d for d in THRESHOLDS], axis=0)
    counts = scored.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, (within * scored).sum(axis=0) / np.maximum(counts, 1), np.nan)


def survival(query_frames: np.ndarray, pred_occluded: np.ndarray) -> dict[str, object]:
    """Survival numbers and the per-frame curve (see the module docstring)."""
    M, T = pred_occluded.shape
    query_frames = np.asarray(query_frames, np.int64)
    started = np.arange(T)[None, :] >= query_frames[:, None]
    visible = ~pred_occluded & started
    counts = started.sum(axis=0)
    curve = np.where(counts > 0, visible.sum(axis=0) / np.maximum(counts, 1), np.nan)
    runs = np.zeros(M, np.int64)
    for i in range(M):
        after = pred_occluded[i, query_frames[i] + 1 :]
        hidden = np.flatnonzero(after)
        runs[i] = hidden[0] if len(hidden) else len(after)
    followed = T - 1 - query_frames
    return {
        "num_points": int(M),
        "survival_at_end": float(curve[-1]) if T else float("nan"),
        "mean_visible_fraction": float(np.nanmean(curve)) if T and M else float("nan"),
        "median_visible_run_frames": float(np.median(runs)) if M else float("nan"),
        "full_run_fraction": float(np.mean(runs == followed)) if M else float("nan"),
        "visible_fraction_per_frame": [None if np.isnan(v) else float(v) for v in curve],
    }


def forward_backward(
    queries: np.ndarray, back_xy: np.ndarray, returned: np.ndarray, size_hw: tuple[int, int]
) -> dict[str, object]:
    """Forward-backward consistency numbers.

    Args:
        queries: (M, 3) (t, x, y) pixels.
        back_xy: (M, 2) pixels where the backward pass put each point in its query frame.
        returned: (M,) bool, the points that were tracked back (visible at the end and visible
            in their query frame in the backward pass).
        size_hw: (height, width) of the frames, for the 256 x 256 scaling.
    """
    scale = np.array([EVAL_SIZE[1] / size_hw[1], EVAL_SIZE[0] / size_hw[0]])
    error_px = np.sqrt(np.sum(np.square(back_xy - queries[:, 1:]), axis=-1))
    error_256 = np.sqrt(np.sum(np.square((back_xy - queries[:, 1:]) * scale), axis=-1))
    kept_px, kept_256 = error_px[returned], error_256[returned]
    out: dict[str, object] = {
        "num_points": int(len(queries)),
        "num_returned": int(returned.sum()),
        "median_error_px": float(np.median(kept_px)) if len(kept_px) else float("nan"),
        "mean_error_px": float(np.mean(kept_px)) if len(kept_px) else float("nan"),
        "median_error_256": float(np.median(kept_256)) if len(kept_256) else float("nan"),
    }
    for d in THRESHOLDS:
        out[f"within_{d}_256"] = float(np.mean(kept_256 < d)) if len(kept_256) else float("nan")
    return out
