"""taptr_ros.bags.metrics and the lockstep core on hand-made cases with known answers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from taptr_ros.bags.engine import backward_queries, merge_backward, run_lockstep
from taptr_ros.bags.metrics import (
    forward_backward,
    position_accuracy_per_frame,
    survival,
    visibility_accuracy_per_frame,
)
from taptr_ros.bags.storage import BagImage


def test_survival_by_hand():
    # 3 points over 5 frames; point 2 starts at frame 2
    occluded = np.array([[0, 0, 0, 0, 0], [0, 0, 1, 0, 1], [1, 1, 0, 1, 1]], bool)
    s = survival(np.array([0, 0, 2]), occluded)
    assert s["visible_fraction_per_frame"] == [
        1.0,
        1.0,
        pytest.approx(2 / 3),
        pytest.approx(2 / 3),
        pytest.approx(1 / 3),
    ]
    assert s["survival_at_end"] == pytest.approx(1 / 3)
    # visible runs after the query: 4 (to the end), 1 (hidden at frame 2), 0 (hidden at frame 3)
    assert s["median_visible_run_frames"] == 1.0
    assert s["full_run_fraction"] == pytest.approx(1 / 3)


def test_forward_backward_by_hand():
    queries = np.array([[0, 10.0, 10.0], [0, 50.0, 20.0], [3, 0.0, 0.0]])
    back = np.array([[13.0, 14.0], [50.0, 20.5], [99.0, 99.0]])
    fb = forward_backward(queries, back, np.array([True, True, False]), (128, 64))  # H=128, W=64
    assert fb["num_returned"] == 2
    assert fb["median_error_px"] == pytest.approx((5.0 + 0.5) / 2)
    # x scaled by 256/64 = 4, y by 256/128 = 2: errors (12, 8) -> 14.42 and (0, 1) -> 1
    assert fb["median_error_256"] == pytest.approx((np.hypot(12, 8) + 1.0) / 2)
    assert fb["within_2_256"] == 0.5 and fb["within_16_256"] == 1.0 and fb["within_1_256"] == 0.0


def test_per_frame_curves_score_what_tapvid_scores():
    gt_occ = np.array([[0, 0, 1, 0], [0, 1, 1, 0]], bool)
    pred_occ = np.array([[0, 1, 1, 0], [0, 1, 0, 0]], bool)
    curve = visibility_accuracy_per_frame(np.array([0, 0]), gt_occ, pred_occ, "first")
    assert np.isnan(curve[0])  # the query frame is never scored
    np.testing.assert_allclose(curve[1:], [0.5, 0.5, 1.0])
    gt = np.zeros((2, 4, 2))
    pred = gt.copy()
    pred[0, 3] = [3.0, 0.0]  # within 4, 8, 16 but not 1, 2
    pos = position_accuracy_per_frame(np.array([0, 0]), gt, gt_occ, pred, "first")
    np.testing.assert_allclose(pos[1:], [1.0, np.nan, (0.6 + 1.0) / 2])  # frame 2: no point visible in truth


class _Shifter:
    """An engine whose points move +1 px in x per frame; publishes each frame once, one frame late
    (like committed mode), so run_lockstep must match results to frames by stamp."""

    def __init__(self):
        self.points: dict[int, list[float]] = {}
        self.pending: list = []
        self.next_id = 100

    def _result(self, stamp):
        ids = np.array(sorted(self.points), np.uint32)
        xy = np.array([self.points[i] for i in ids]).reshape(-1, 2)
        return SimpleNamespace(
            stamp=stamp,
            ids=ids,
            xy=xy,
            visible=np.ones(len(ids), bool),
            visibility=np.ones(len(ids), np.float32),
        )

    def push(self, frame, stamp):
        for p in self.points.values():
            p[0] += 1.0
        out, self.pending = self.pending, [self._result(stamp)]
        return out

    def flush(self):
        out, self.pending = self.pending, []
        return out

    def add_points(self, xy, stamp=None):
        ids = np.arange(self.next_id, self.next_id + len(xy))
        self.next_id += len(xy)
        for i, p in zip(ids, xy):
            self.points[int(i)] = [float(p[0]), float(p[1])]
        return ids, stamp


def _frames(n, w=20, h=10):
    return [BagImage(k, 1000 + k, 1000 + k, "cam", np.zeros((h, w, 3), np.uint8), b"") for k in range(n)]


def test_lockstep_adds_after_the_frame_and_matches_late_results_by_stamp():
    queries = np.array([[0, 2.0, 3.0], [2, 5.0, 1.0], [1, 30.0, 4.0]])  # x 30 lies outside: clipped to 19
    seen = []
    run = run_lockstep(
        _frames(5),
        _Shifter(),
        queries,
        5,
        on_frame=lambda image, out: seen.append((image.index, len(out.ids))),
    )
    assert seen == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 3)]  # frame k published late, in order
    np.testing.assert_allclose(run.tracks[0, :, 0], [2, 3, 4, 5, 6])
    np.testing.assert_allclose(run.tracks[1, 2:, 0], [5, 6, 7])
    np.testing.assert_allclose(run.tracks[2, 1:, 0], [19, 20, 21, 22])
    assert run.occluded[1, :2].all() and not run.occluded[1, 2:].any()
    assert list(run.stamps_ns) == [1000, 1001, 1002, 1003, 1004]


def test_backward_merge_mirrors_the_engine_tracker_layout():
    queries = np.array([[0, 1.0, 1.0], [3, 2.0, 2.0], [1, 3.0, 3.0]])
    rows, local, last = backward_queries(queries, 4)  # the whole video reversed: frames 3..0
    assert list(rows) == [1, 2] and last == 3
    np.testing.assert_array_equal(local[:, 0], [0, 2])
    assert backward_queries(queries, 6)[2] == 5 and backward_queries(queries, 6)[1][:, 0].tolist() == [2, 4]
    forward = SimpleNamespace(
        tracks=np.zeros((3, 5, 2)),
        occluded=np.zeros((3, 5), bool),
        visibility=np.zeros((3, 5), np.float32),
        push_seconds=np.ones(5),
        stamps_ns=np.arange(5),
    )
    # backward run over video frames 3, 2, 1, 0: local frame l holds value 100 + video frame
    video_frame = 3 - np.arange(4)
    backward = SimpleNamespace(
        tracks=np.broadcast_to((100.0 + video_frame)[None, :, None], (2, 4, 2)).copy(),
        occluded=np.ones((2, 4), bool),
        visibility=np.zeros((2, 4), np.float32),
        push_seconds=np.ones(4),
    )
    merged = merge_backward(forward, backward, rows, queries[:, 0], last)
    np.testing.assert_array_equal(merged.tracks[1, :, 0], [100, 101, 102, 0, 0])  # frames 0..2 from backward
    np.testing.assert_array_equal(merged.tracks[2, :, 0], [100, 0, 0, 0, 0])
    np.testing.assert_array_equal(merged.tracks[0, :, 0], 0)
    assert merged.occluded[1, :3].all() and not merged.occluded[1, 3:].any()
    np.testing.assert_array_equal(merged.push_seconds, [2, 2, 2, 2, 1])


def test_forward_backward_through_evaluate_bag_with_a_known_engine(tmp_path):
    """The shifting engine moves points +1 px per frame whichever way time runs, so a point queried at
    frame q comes back 2 * (T - 1 - q) px to the right of its query."""
    from taptr_ros.bags.evaluate import EvalOptions, evaluate_bag
    from taptr_ros.bags.make import MakeOptions, make_bag
    from taptr_ros.data.synthetic import generate_tapvid, preset
    from taptr_ros.data.tapvid import save_tapvid

    T = 6
    save_tapvid(
        tmp_path / "s.pkl",
        generate_tapvid(
            preset("easy", num_frames=T, num_points=4, height=48, width=64), num_videos=1, seed=1
        ),
    )
    make_bag(tmp_path / "s.pkl", tmp_path / "bag", MakeOptions())
    points = np.array([[5.0, 5.0], [20.0, 30.0]])
    result = evaluate_bag(
        tmp_path / "bag",
        tmp_path / "out",
        lambda _n: _Shifter(),
        EvalOptions(use_ground_truth=False, points=points, query_frame=1, plots=False, overlay=False),
    )
    fb = result.metrics["forward_backward"]
    assert fb["num_returned"] == 2
    assert fb["median_error_px"] == pytest.approx(2 * (T - 1 - 1))
    np.testing.assert_allclose(result.run.tracks[:, -1, 0], points[:, 0] + T - 2)
    assert result.metrics["survival"]["survival_at_end"] == 1.0
