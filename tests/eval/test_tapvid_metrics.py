"""TAP-Vid metrics on tiny cases computed by hand (the working is in the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from taptr_ros.eval.tapvid import (EvalError, compute_tapvid_metrics, evaluation_mask, mean_metrics,
                                   sample_queries_first, sample_queries_strided, scale_tracks)


def _metrics(query_frame, gt_xy, gt_occ, pred_xy, pred_occ, mode):
    """One track: (T, 2) positions and (T,) flags."""
    query = np.array([[query_frame, *gt_xy[query_frame]]], np.float64)
    return compute_tapvid_metrics(query, np.array([gt_occ]), np.array([gt_xy], np.float64),
                                  np.array([pred_occ]), np.array([pred_xy], np.float64), mode)


def test_first_mode_hand_case():
    # T = 4, query at frame 0: frames 1, 2, 3 are scored; frame 0 never is.
    # truth: always visible at (10, 10).
    # prediction: f0 far and occluded (ignored), f1 0.5 px off, f2 3 px off, f3 exact but occluded.
    gt = [[10, 10]] * 4
    pred = [[100, 100], [10.5, 10], [13, 10], [10, 10]]
    m = _metrics(0, gt, [False] * 4, pred, [True, False, False, True], "first")
    # OA: f1 ok (vis/vis), f2 ok (vis/vis), f3 wrong (vis/occ) -> 2/3
    assert m["occlusion_accuracy"] == pytest.approx(2 / 3)
    # <d (visible truth, prediction's flag ignored): distances 0.5, 3, 0
    #   d=1: f1, f3 -> 2/3; d=2: 2/3; d=4, 8, 16: 3/3; mean = (2/3 + 2/3 + 3) / 5 = 13/15
    assert [m[f"pts_within_{d}"] for d in (1, 2, 4, 8, 16)] == pytest.approx([2 / 3, 2 / 3, 1, 1, 1])
    assert m["average_pts_within_thresh"] == pytest.approx(13 / 15)
    # Jaccard d=1: TP = f1; FN = f2 (too far), f3 (predicted occluded); FP = f2 (visible, too far)
    #   -> 1 / (1 + 2 + 1) = 1/4; d=2 the same. d=4: TP = f1, f2; FN = f3; FP = none -> 2/3; 8, 16 too.
    #   AJ = (1/4 + 1/4 + 2/3 + 2/3 + 2/3) / 5 = 1/2
    assert [m[f"jaccard_{d}"] for d in (1, 2, 4, 8, 16)] == pytest.approx([1 / 4, 1 / 4, 2 / 3, 2 / 3, 2 / 3])
    assert m["average_jaccard"] == pytest.approx(0.5)


def test_strided_mode_scores_frames_before_the_query_too():
    # T = 4, query at frame 1. strided: frames 0, 2, 3 scored; first: frames 2, 3 only.
    # truth: f0 (0, 0) visible, f1 (1, 1) visible, f2 occluded, f3 (5, 5) visible.
    # prediction: f0 (0, 1.5) visible, f1 anything, f2 visible, f3 (5, 5) occluded.
    gt = [[0, 0], [1, 1], [9, 9], [5, 5]]
    gt_occ = [False, False, True, False]
    pred = [[0, 1.5], [50, 50], [9, 9], [5, 5]]
    pred_occ = [False, True, False, True]
    m = _metrics(1, gt, gt_occ, pred, pred_occ, "strided")
    # OA: f0 right, f2 wrong (occ/vis), f3 wrong (vis/occ) -> 1/3
    assert m["occlusion_accuracy"] == pytest.approx(1 / 3)
    # <d over visible truth f0 (1.5 px), f3 (0 px): d=1 -> 1/2, others 1 -> mean (1/2 + 4) / 5 = 0.9
    assert m["average_pts_within_thresh"] == pytest.approx(0.9)
    # Jaccard d=1: TP none; FN f0 (far), f3 (occ); FP f0 (far), f2 (truth occluded) -> 0/4 = 0
    #   d>=2: TP f0; FN f3; FP f2 -> 1/3. AJ = (0 + 4 * 1/3) / 5 = 4/15
    assert [m[f"jaccard_{d}"] for d in (1, 2, 4, 8, 16)] == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3, 1 / 3])
    assert m["average_jaccard"] == pytest.approx(4 / 15)
    # same data, first mode: f2, f3 only. OA 0/2; <d: f3 exact -> 1; Jaccard: TP 0, FN f3, FP f2 -> 0
    m = _metrics(1, gt, gt_occ, pred, pred_occ, "first")
    assert m["occlusion_accuracy"] == 0.0
    assert m["average_pts_within_thresh"] == pytest.approx(1.0)
    assert m["average_jaccard"] == 0.0


def test_thresholds_are_strict():
    # T = 2, query at 0, scored f1 only. Offsets: exactly 1 px -> not < 1 but < 2.
    m = _metrics(0, [[0, 0], [0, 0]], [False, False], [[0, 0], [1, 0]], [False, False], "first")
    assert [m[f"pts_within_{d}"] for d in (1, 2, 4, 8, 16)] == [0.0, 1.0, 1.0, 1.0, 1.0]
    # 3-4-5 triangle: exactly 5 px -> within 8 and 16 only; 2 of 5 thresholds, AJ too.
    m = _metrics(0, [[0, 0], [0, 0]], [False, False], [[0, 0], [3, 4]], [False, False], "first")
    assert [m[f"pts_within_{d}"] for d in (1, 2, 4, 8, 16)] == [0.0, 0.0, 0.0, 1.0, 1.0]
    # Jaccard: within -> TP, 1/1; not within -> FN and FP, 0/2
    assert [m[f"jaccard_{d}"] for d in (1, 2, 4, 8, 16)] == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert m["average_jaccard"] == pytest.approx(0.4)


def test_perfect_and_all_occluded_predictions():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 256, (5, 8, 2))
    occ = rng.random((5, 8)) < 0.3
    occ[:, 0] = False
    queries = np.concatenate([np.zeros((5, 1)), gt[:, 0]], axis=1)
    perfect = compute_tapvid_metrics(queries, occ, gt, occ, gt, "first")
    assert all(v == pytest.approx(1.0) for v in perfect.values())
    # everything predicted occluded at the right place: no TP -> AJ 0; <d ignores the flag -> 1;
    # OA = share of truly occluded among scored frames (1..7)
    blind = compute_tapvid_metrics(queries, occ, gt, np.ones_like(occ), gt, "first")
    assert blind["average_jaccard"] == 0.0 and blind["average_pts_within_thresh"] == 1.0
    assert blind["occlusion_accuracy"] == pytest.approx(occ[:, 1:].mean())


def test_no_visible_scored_point_gives_nan_not_a_crash():
    m = _metrics(0, [[0, 0], [0, 0]], [False, True], [[0, 0], [0, 0]], [False, True], "first")
    assert m["occlusion_accuracy"] == 1.0
    assert np.isnan(m["pts_within_1"]) and np.isnan(m["average_pts_within_thresh"])
    assert np.isnan(m["average_jaccard"])  # TP + FN + FP = 0


def test_evaluation_mask_excludes_the_query_frame():
    np.testing.assert_array_equal(evaluation_mask(np.array([1, 3]), 4, "first"),
                                  [[False, False, True, True], [False, False, False, False]])
    np.testing.assert_array_equal(evaluation_mask(np.array([1.0]), 4, "strided"), [[True, False, True, True]])
    with pytest.raises(EvalError, match="first"):
        evaluation_mask(np.array([0]), 4, "dense")


def test_query_sampling_first_and_strided():
    # 3 points, T = 11 (strided query frames 0, 5, 10).
    #   p0 visible at 2, 3, 10      -> first: t=2; strided: t=10
    #   p1 never visible            -> dropped by both
    #   p2 visible everywhere but 5 -> first: t=0; strided: t=0 and t=10
    T = 11
    occ = np.ones((3, T), bool)
    occ[0, [2, 3, 10]] = False
    occ[2] = False
    occ[2, 5] = True
    tracks = np.arange(3 * T * 2, dtype=np.float64).reshape(3, T, 2)
    q, gt, gt_occ = sample_queries_first(tracks, occ)
    np.testing.assert_array_equal(q, [[2, *tracks[0, 2]], [0, *tracks[2, 0]]])
    np.testing.assert_array_equal(gt, tracks[[0, 2]])
    np.testing.assert_array_equal(gt_occ, occ[[0, 2]])
    q, gt, _ = sample_queries_strided(tracks, occ)
    # by query frame, then by point: (t=0, p2), (t=10, p0), (t=10, p2)
    np.testing.assert_array_equal(q, [[0, *tracks[2, 0]], [10, *tracks[0, 10]], [10, *tracks[2, 10]]])
    np.testing.assert_array_equal(gt, tracks[[2, 0, 2]])


def test_scale_to_256_and_dataset_mean():
    # (x, y) = (100, 50) in a 512 (H) x 1024 (W) frame -> (25, 25) in 256 x 256
    np.testing.assert_allclose(scale_tracks(np.array([[100.0, 50.0]]), (512, 1024)), [[25.0, 25.0]])
    # mean over videos, skipping a video whose value is undefined
    assert mean_metrics([{"a": 0.2}, {"a": 0.6}, {"a": float("nan")}]) == {"a": pytest.approx(0.4)}


def test_shape_errors():
    with pytest.raises(EvalError, match="differ in shape"):
        compute_tapvid_metrics(np.zeros((1, 3)), np.zeros((1, 4), bool), np.zeros((1, 4, 2)),
                               np.zeros((1, 3), bool), np.zeros((1, 3, 2)), "first")
    with pytest.raises(EvalError, match="queries"):
        compute_tapvid_metrics(np.zeros((2, 3)), np.zeros((1, 4), bool), np.zeros((1, 4, 2)),
                               np.zeros((1, 4), bool), np.zeros((1, 4, 2)), "first")
