"""Lucas-Kanade baseline: exact on pure translation, flags failures, far above a static guess."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from taptr_ros.data.synthetic import generate_tapvid, preset
from taptr_ros.data.textures import noise_texture
from taptr_ros.eval.lk_baseline import make_lk_tracker, track_lk
from taptr_ros.eval.runner import evaluate_dataset, static_tracker
from taptr_ros.eval.tapvid import EvalError

VELOCITY = np.array([1.5, -0.75])  # px/frame, (x, y)


def _translating_video(T: int = 8, size: int = 96) -> np.ndarray:
    """Frame t shows a noise texture moved by t * VELOCITY (sub-pixel, bilinear)."""
    texture = noise_texture(np.random.default_rng(0), size, size)
    frames = [cv2.warpAffine(texture, np.array([[1, 0, t * VELOCITY[0]], [0, 1, t * VELOCITY[1]]]),
                             (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
              for t in range(T)]
    return np.stack(frames)


def test_pure_translation_both_ways_from_the_query_frame():
    video = _translating_video()
    queries = np.array([[0, 30.0, 40.0], [4, 50.0, 45.5], [7, 60.0, 60.0]])  # (t, x, y)
    tracks, occluded = track_lk(video, queries)
    assert tracks.shape == (3, 8, 2) and occluded.shape == (3, 8)
    t = np.arange(8)
    expected = queries[:, None, 1:] + (t[None, :, None] - queries[:, None, :1]) * VELOCITY
    np.testing.assert_allclose(tracks, expected, atol=0.1)
    assert not occluded.any()
    np.testing.assert_array_equal(tracks[[0, 1, 2], [0, 4, 7]], queries[:, 1:])  # query frame kept


def test_flat_frames_and_leaving_the_frame_are_flagged():
    video = _translating_video()
    video[5:] = 128  # textureless: LK cannot follow anything there
    tracks, occluded = track_lk(video, np.array([[0, 40.0, 40.0]]))
    assert not occluded[0, :5].any() and occluded[0, 5:].all()
    video = _translating_video(T=8, size=64)
    # x = 59 moves right 1.5 px/frame: beyond the last column (63) from frame 3 on
    _, occluded = track_lk(video, np.array([[0, 59.0, 30.0]]))
    assert occluded[0, 3:].all() and not occluded[0, :2].any()


def test_bad_input_is_refused():
    video = _translating_video(T=3)
    with pytest.raises(EvalError, match="query frames"):
        track_lk(video, np.array([[3, 10.0, 10.0]]))
    with pytest.raises(EvalError, match="uint8"):
        track_lk(video.astype(np.float32), np.array([[0, 10.0, 10.0]]))
    tracks, occluded = track_lk(video, np.zeros((0, 3)))
    assert tracks.shape == (0, 3, 2) and occluded.shape == (0, 3)


def test_lk_scores_well_above_a_static_guess_on_easy_synthetic_data():
    data = generate_tapvid(preset("easy", num_points=32), num_videos=2, seed=9)
    lk = evaluate_dataset(data, make_lk_tracker(), "first").overall
    static = evaluate_dataset(data, static_tracker, "first").overall
    # measured (seed 9): LK AJ 0.555, <d_avg 0.682, OA 0.969; static AJ 0.225, <d_avg 0.326
    assert lk["average_jaccard"] > 0.45
    assert lk["average_jaccard"] > static["average_jaccard"] + 0.2
    assert lk["average_pts_within_thresh"] > 0.6
    assert lk["occlusion_accuracy"] > 0.9
    assert lk["ms_per_frame"] > 0
