"""TAP-Vid metrics and query sampling, as defined by the TAP-Vid benchmark (Doersch et al. 2022).

Written from the paper's definitions. Per video, with coordinates in a 256 x 256 frame:

* queries: ``first`` mode queries each point once, at the first frame where it is visible
  (points never visible are dropped); ``strided`` mode queries each point at every frame
  t = 0, 5, 10, ... where it is visible, each query being a separate track.
* evaluated frames: ``first``: the frames after the query frame; ``strided``: every frame
  but the query frame. The query frame itself is never scored.
* occlusion accuracy (OA): share of evaluated (point, frame) pairs whose predicted
  occlusion equals the ground truth's.
* <delta^x: for each threshold d in (1, 2, 4, 8, 16) px, the share of evaluated pairs visible
  in the ground truth whose predicted position is at distance < d (strict) from the truth,
  whatever the predicted visibility; <delta^x_avg is their mean.
* Jaccard at d: TP / (TP + FP + FN) over evaluated pairs, where TP = visible in truth and
  prediction and within d; FN = visible in truth and (predicted occluded or not within d);
  FP = predicted visible and (occluded in truth or not within d). A pair predicted visible
  but too far counts as both FN and FP. Average Jaccard (AJ) is the mean over thresholds.

A dataset's number is the mean of its videos' numbers. Query points here are (t, x, y)
pixels with t a frame index (the benchmark's own arrays use (t, y, x)).
"""

from __future__ import annotations

import numpy as np

#: pixel thresholds of <delta^x and the Jaccard, in a 256 x 256 frame
THRESHOLDS: tuple[int, ...] = (1, 2, 4, 8, 16)
#: frame size (height, width) the benchmark scores in
EVAL_SIZE: tuple[int, int] = (256, 256)
QUERY_MODES: tuple[str, ...] = ("first", "strided")
STRIDE = 5


class EvalError(Exception):
    """Base of the eval room's errors: bad shapes, unknown query mode, failed tracker."""


def _check_tracks(tracks: np.ndarray, occluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tracks = np.asarray(tracks, np.float64)
    occluded = np.asarray(occluded, bool)
    if tracks.ndim != 3 or tracks.shape[2] != 2 or occluded.shape != tracks.shape[:2]:
        raise EvalError(f"expected tracks (N, T, 2) and occluded (N, T), "
                        f"got {tracks.shape} and {occluded.shape}")
    return tracks, occluded


def sample_queries_first(tracks: np.ndarray,
                         occluded: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One query per point, at its first visible frame.

    Args:
        tracks: (N, T, 2) ground-truth positions (x, y), any pixel unit.
        occluded: (N, T) bool.

    Returns:
        query_points (M, 3) float64 (t, x, y); gt_tracks (M, T, 2); gt_occluded (M, T),
        where M counts the points visible at least once, in their original order.
    """
    tracks, occluded = _check_tracks(tracks, occluded)
    ever_visible = (~occluded).any(axis=1)
    tracks, occluded = tracks[ever_visible], occluded[ever_visible]
    first = np.argmax(~occluded, axis=1)
    rows = np.arange(len(first))
    queries = np.concatenate([first[:, None].astype(np.float64), tracks[rows, first]], axis=1)
    return queries, tracks, occluded


def sample_queries_strided(tracks: np.ndarray, occluded: np.ndarray,
                           stride: int = STRIDE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One query per point and per frame t = 0, stride, 2 * stride, ... where it is visible.

    Args/Returns: as :func:`sample_queries_first`; queries are ordered by query frame, then
    by point.
    """
    tracks, occluded = _check_tracks(tracks, occluded)
    queries, gt_tracks, gt_occluded = [], [], []
    for t in range(0, tracks.shape[1], stride):
        visible = np.flatnonzero(~occluded[:, t])
        frame = np.full((len(visible), 1), float(t))
        queries.append(np.concatenate([frame, tracks[visible, t]], axis=1))
        gt_tracks.append(tracks[visible])
        gt_occluded.append(occluded[visible])
    if not queries:
        return np.zeros((0, 3)), tracks[:0], occluded[:0]
    return np.concatenate(queries), np.concatenate(gt_tracks), np.concatenate(gt_occluded)


def sample_queries(tracks: np.ndarray, occluded: np.ndarray,
                   query_mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dispatch to :func:`sample_queries_first` or :func:`sample_queries_strided`."""
    if query_mode == "first":
        return sample_queries_first(tracks, occluded)
    if query_mode == "strided":
        return sample_queries_strided(tracks, occluded)
    raise EvalError(f"unknown query mode {query_mode!r}; use one of {QUERY_MODES}")


def evaluation_mask(query_frames: np.ndarray, num_frames: int, query_mode: str) -> np.ndarray:
    """(M, T) bool: which frames of each query are scored.

    ``first``: frames strictly after the query frame; ``strided``: all frames except it.
    """
    if query_mode not in QUERY_MODES:
        raise EvalError(f"unknown query mode {query_mode!r}; use one of {QUERY_MODES}")
    frames = np.arange(num_frames)[None, :]
    query = np.rint(np.asarray(query_frames, np.float64)).astype(np.int64)[:, None]
    return frames > query if query_mode == "first" else frames != query


def compute_tapvid_metrics(query_points: np.ndarray, gt_occluded: np.ndarray, gt_tracks: np.ndarray,
                           pred_occluded: np.ndarray, pred_tracks: np.ndarray,
                           query_mode: str) -> dict[str, float]:
    """TAP-Vid metrics of one video.

    Args:
        query_points: (M, 3) (t, x, y); only t (frame index) is used.
        gt_occluded: (M, T) bool.
        gt_tracks: (M, T, 2) pixels (x, y) in a 256 x 256 frame (see :func:`scale_tracks`).
        pred_occluded: (M, T) bool.
        pred_tracks: (M, T, 2) pixels (x, y), same frame as gt_tracks.
        query_mode: ``"first"`` or ``"strided"``.

    Returns:
        ``occlusion_accuracy``, ``pts_within_{d}`` and ``jaccard_{d}`` for d in THRESHOLDS,
        ``average_pts_within_thresh`` (<delta^x_avg) and ``average_jaccard`` (AJ), all in
        [0, 1]; NaN where a denominator is zero (e.g. no visible evaluated point).
    """
    gt_tracks, gt_occluded = _check_tracks(gt_tracks, gt_occluded)
    pred_tracks, pred_occluded = _check_tracks(pred_tracks, pred_occluded)
    if pred_tracks.shape != gt_tracks.shape:
        raise EvalError(f"prediction {pred_tracks.shape} and ground truth {gt_tracks.shape} differ in shape")
    query_points = np.asarray(query_points, np.float64).reshape(-1, 3)
    if len(query_points) != len(gt_tracks):
        raise EvalError(f"{len(query_points)} queries for {len(gt_tracks)} tracks")
    scored = evaluation_mask(query_points[:, 0], gt_tracks.shape[1], query_mode)
    gt_visible, pred_visible = ~gt_occluded, ~pred_occluded

    def ratio(numerator: np.ndarray, denominator: np.ndarray) -> float:
        count = int(denominator.sum())
        return float(numerator.sum()) / count if count else float("nan")

    metrics = {"occlusion_accuracy": ratio((gt_visible == pred_visible) & scored, scored)}
    squared_distance = np.sum(np.square(pred_tracks - gt_tracks), axis=-1)
    within_all, jaccard_all = [], []
    for d in THRESHOLDS:
        within = squared_distance < d * d
        metrics[f"pts_within_{d}"] = ratio(within & gt_visible & scored, gt_visible & scored)
        true_pos = gt_visible & pred_visible & within & scored
        false_neg = gt_visible & ~(pred_visible & within) & scored
        false_pos = pred_visible & ~(gt_visible & within) & scored
        # TP, FN, FP summed: a visible-but-far pair is both FN and FP and counts twice
        denominator = int(true_pos.sum() + false_neg.sum() + false_pos.sum())
        metrics[f"jaccard_{d}"] = float(true_pos.sum()) / denominator if denominator else float("nan")
        within_all.append(metrics[f"pts_within_{d}"])
        jaccard_all.append(metrics[f"jaccard_{d}"])
    metrics["average_pts_within_thresh"] = float(np.mean(within_all))
    metrics["average_jaccard"] = float(np.mean(jaccard_all))
    return metrics


def scale_tracks(tracks_px: np.ndarray, frame_hw: tuple[int, int],
                 to_hw: tuple[int, int] = EVAL_SIZE) -> np.ndarray:
    """Rescale (..., 2) pixel coordinates (x, y) from a frame of frame_hw to one of to_hw.

    Plain ratio scaling (x * to_W / W), as the benchmark scales normalised points by 256.
    """
    ratio = np.array([to_hw[1] / frame_hw[1], to_hw[0] / frame_hw[0]])
    return np.asarray(tracks_px, np.float64) * ratio


def mean_metrics(per_video: list[dict[str, float]]) -> dict[str, float]:
    """Dataset metrics: per key, the mean over videos of the defined (non-NaN) values."""
    if not per_video:
        return {}
    out = {}
    for key in per_video[0]:
        values = np.array([m[key] for m in per_video], np.float64)
        values = values[~np.isnan(values)]
        out[key] = float(values.mean()) if len(values) else float("nan")
    return out
