"""Real-footage measures: exact on trackers whose answers are known, LK on a moving texture."""

from __future__ import annotations

import numpy as np
import pytest

from taptr_ros.eval.lk_baseline import make_lk_tracker
from taptr_ros.eval.real_footage import (FootageResult, format_results, grid_queries, load_results, measure,
                                         resize_to_height, shipping_verdict)


def _drifting(step_px: float):
    """A tracker that moves every point step_px to the right per frame, all visible."""
    def track(video, queries):
        T = len(video)
        t = np.arange(T)[None, :, None]
        tracks = queries[:, None, 1:] + t * np.array([step_px, 0.0])
        return tracks, np.zeros((len(queries), T), bool), 0.0
    return track


def _moving_texture(frames: int = 12, shift: int = 1) -> np.ndarray:
    rng = np.random.default_rng(0)
    big = rng.integers(0, 255, (80, 120), dtype=np.uint8)
    import cv2
    big = cv2.GaussianBlur(big, (0, 0), 1.5)
    video = np.stack([np.roll(big, shift * t, axis=1)[8:72, 16:112] for t in range(frames)])
    return np.repeat(video[..., None], 3, axis=-1)


def test_grid_queries_are_cell_centres() -> None:
    q = grid_queries(2, (40, 60))
    np.testing.assert_allclose(q, [[0, 14.5, 9.5], [0, 44.5, 9.5], [0, 14.5, 29.5], [0, 44.5, 29.5]])


def test_measures_of_a_drifting_tracker_are_exact() -> None:
    video = _moving_texture(frames=10)
    (r,) = measure("v", video, {"drift": _drifting(1.0)}, grid=3, still_frames=5)
    # forward ends 9 px right; tracked back it drifts 9 px further right: 18 px from its start
    assert r.fb_median_px == 18.0 and r.fb_within_2px == 0.0
    assert r.survival == 1.0
    assert r.still_median_px == 4.0 and r.still_max_px == 4.0
    assert r.still_by_frame_px == (0.0, 1.0, 2.0, 3.0, 4.0)
    assert "  v drift: 0.0 1.0 2.0 3.0 4.0" in format_results([r]).splitlines()
    (z,) = measure("v", video, {"still": _drifting(0.0)}, grid=3, still_frames=5)
    assert z.fb_median_px == 0.0 and z.fb_within_2px == 1.0 and z.still_max_px == 0.0


def test_lk_returns_on_a_moving_texture_and_stays_on_a_still_one() -> None:
    (r,) = measure("tex", _moving_texture(), {"lk": make_lk_tracker()}, grid=4, still_frames=6)
    assert r.fb_median_px < 0.5 and r.fb_within_2px > 0.7
    assert r.still_max_px < 0.1
    table = format_results([r])
    assert "| tex | lk | 12 | 96x64 | 16 |" in table


def test_resize_keeps_the_aspect() -> None:
    video = np.zeros((2, 480, 640, 3), np.uint8)
    assert resize_to_height(video, 256).shape == (2, 256, 341, 3)


def test_a_lagging_tracker_is_measured_against_the_reference() -> None:
    video = _moving_texture(frames=10)   # the texture moves 1 px right a frame
    trackers = {"half": _drifting(0.5), "full": _drifting(1.0), "lk": make_lk_tracker()}
    half, full, lk = measure("v", video, trackers, grid=4, still_frames=3, reference="lk")
    assert lk.reference_points >= 12 and lk.off_reference_px == 0.0 and lk.motion_followed == 1.0
    # 9 frames of motion: half the speed ends 4.5 px behind LK's track, having followed 50%
    assert half.reference_points == lk.reference_points
    assert abs(half.off_reference_px - 4.5) < 0.3 and abs(half.motion_followed - 0.5) < 0.03
    assert full.off_reference_px < 0.3 and abs(full.motion_followed - 1.0) < 0.03
    table = format_results([half, full, lk])
    assert "v half: on the" in table and "50% of its motion followed" in table
    assert "v lk: on the" not in table
    # a drifting reference goes on drifting backwards: it brings no point back
    lost = measure("v", video[::3], {"half": _drifting(0.5), "full": _drifting(1.0)}, grid=2,
                   still_frames=2, reference="full")[0]
    assert lost.reference_points == 0 and np.isnan(lost.off_reference_px)
    assert "v half: full brings no point back within 1 px" in format_results([lost])
    (alone,) = measure("v", video, {"half": _drifting(0.5)}, grid=2, still_frames=2)
    assert alone.reference == "" and alone.reference_points == 0


def test_an_unknown_reference_is_refused() -> None:
    with pytest.raises(KeyError, match="'lk' is not among"):
        measure("v", _moving_texture(frames=3), {"half": _drifting(0.5)}, grid=2, still_frames=2,
                reference="lk")


def _row(video: str, still: float, off: float, points: int) -> FootageResult:
    return FootageResult(video=video, tracker="taptr", size_hw=(256, 455), num_frames=40, num_points=256,
                         fb_median_px=50.0, fb_within_2px=0.0, survival=0.1, still_median_px=still,
                         still_max_px=2 * still, still_by_frame_px=(0.0, still), reference="lk",
                         reference_points=points, off_reference_px=off, motion_followed=0.5)


def test_shipping_verdict_gates_on_still_drift_and_on_following_the_reference() -> None:
    shipped = [_row("apple", 1.04, 87.7, 143), _row("trackon", 0.82, float("nan"), 0)]
    ok, lines = shipping_verdict([_row("apple", 1.24, 61.4, 143), _row("trackon", 0.90, float("nan"), 0)], shipped)
    assert ok and lines[0].endswith("pass") and "61.4 px off lk on its 143 points (shipped 87.7)" in lines[0]
    ok, lines = shipping_verdict([_row("apple", 1.25, 61.4, 143)], shipped)  # drifts 0.21 px more
    assert not ok and "FAIL (still drift above the shipped model's + 0.2 px)" in lines[0]
    ok, lines = shipping_verdict([_row("apple", 1.0, 90.0, 143)], shipped)  # further from LK
    assert not ok and "not closer to lk's track" in lines[0]
    ok, _ = shipping_verdict([_row("apple", 1.0, 90.0, 19)], shipped)  # too few LK points to judge
    assert ok
    ok, lines = shipping_verdict([_row("bag", 1.0, 1.0, 50)], shipped)
    assert not ok and "not among the shipped model's rows" in lines[0]
    # a looser margin lets the drifting candidate through
    assert shipping_verdict([_row("apple", 1.25, 61.4, 143)], shipped, still_margin_px=0.3)[0]


def test_results_round_trip_through_the_json_the_cli_writes(tmp_path) -> None:
    import dataclasses
    import json

    rows = [_row("apple", 1.0, 60.0, 143)]
    path = tmp_path / "r.json"
    path.write_text(json.dumps([dataclasses.asdict(r) for r in rows]))
    assert load_results(path) == rows
    with pytest.raises(ValueError, match="not a `taptr eval real --out` file"):
        load_results(tmp_path / "missing.json")
