"""evaluate_dataset: oracle and offset trackers give the numbers the definitions predict."""

from __future__ import annotations

import json

import numpy as np
import pytest

from taptr_ros.data.synthetic import generate_tapvid, preset
from taptr_ros.eval.runner import evaluate_dataset
from taptr_ros.eval.tapvid import EvalError, sample_queries


def _dataset(size: int = 128, videos: int = 2):
    return generate_tapvid(preset("hard", num_frames=10, height=size, width=size, num_points=16),
                           num_videos=videos, seed=2)


def _oracle(dataset, query_mode: str, offset_px: float = 0.0, seconds: float = 0.1):
    """Returns the ground truth of the queries it is asked (looked up by the frames object),
    shifted right by offset_px pixels of the video."""
    by_frames = {id(v.video): v for v in dataset}

    def tracker(video, queries):
        truth = by_frames[id(video)]
        expected_queries, tracks, occluded = sample_queries(truth.tracks_px().astype(np.float64),
                                                            truth.occluded, query_mode)
        np.testing.assert_allclose(queries, expected_queries)  # (t, x, y) pixels of this video
        return tracks + [offset_px, 0.0], occluded, seconds

    return tracker


@pytest.mark.parametrize("mode", ["first", "strided"])
def test_oracle_scores_one(mode):
    data = _dataset()
    report = evaluate_dataset(data, _oracle(data, mode), mode)
    for key in ("average_jaccard", "average_pts_within_thresh", "occlusion_accuracy"):
        assert report.overall[key] == pytest.approx(1.0)
    assert [v.name for v in report.videos] == ["synth_0000", "synth_0001"]
    assert report.videos[0].num_queries > 0


def test_coordinates_are_scored_in_256_pixels():
    # a 128-px video: 0.75 px off there is 1.5 px off at 256 -> not < 1, but < 2, 4, 8, 16
    # <d_avg = 4/5; Jaccard: d=1 nothing is TP (0), d>=2 all visible are TP and no FP (1) -> AJ 4/5
    data = _dataset(size=128)
    report = evaluate_dataset(data, _oracle(data, "first", offset_px=0.75), "first")
    assert report.overall["pts_within_1"] == 0.0 and report.overall["pts_within_2"] == 1.0
    assert report.overall["average_pts_within_thresh"] == pytest.approx(0.8)
    assert report.overall["average_jaccard"] == pytest.approx(0.8)
    assert report.overall["occlusion_accuracy"] == pytest.approx(1.0)


def test_ms_per_frame_max_videos_json_and_table(tmp_path):
    data = _dataset(videos=3)
    report = evaluate_dataset(data, _oracle(data, "first", seconds=0.05), "first", max_videos=2,
                              meta={"tracker": "oracle"})
    assert len(report.videos) == 2
    assert report.videos[0].ms_per_frame == pytest.approx(5.0)  # 50 ms over 10 frames
    assert report.overall["ms_per_frame"] == pytest.approx(5.0)
    path = tmp_path / "result.json"
    report.write_json(path)
    saved = json.loads(path.read_text())
    assert saved["query_mode"] == "first" and saved["meta"] == {"tracker": "oracle"}
    assert saved["overall"]["average_jaccard"] == pytest.approx(1.0)
    assert saved["videos"][1]["name"] == "synth_0001" and "jaccard_16" in saved["videos"][1]
    table = report.format_table()
    assert "overall" in table and "synth_0001" in table and "100.0" in table


def test_resize_hands_the_tracker_resized_frames_and_matching_queries():
    data = _dataset(size=128, videos=1)
    seen = {}

    def tracker(video, queries):
        seen["shape"] = video.shape
        seen["max_xy"] = queries[:, 1:].max()
        T = video.shape[0]
        return np.repeat(queries[:, None, 1:], T, axis=1), np.zeros((len(queries), T), bool), 0.0

    evaluate_dataset(data, tracker, "first", resize=(256, 256))
    assert seen["shape"] == (10, 256, 256, 3) and seen["max_xy"] > 127  # queries in 256-px frames


def test_a_tracker_returning_the_wrong_shape_is_named():
    data = _dataset(videos=1)

    def broken(video, queries):
        return np.zeros((len(queries), 3, 2)), np.zeros((len(queries), 3), bool), 0.0

    with pytest.raises(EvalError, match="synth_0000"):
        evaluate_dataset(data, broken, "first")
