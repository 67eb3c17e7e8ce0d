"""TAP-Vid pickle layout: round trip, DAVIS / Kinetics / RGB-Stacking shapes, errors."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest

from taptr_ros.data.errors import TapVidFormatError
from taptr_ros.data.synthetic import generate_tapvid, preset
from taptr_ros.data.tapvid import TapVidVideo, load_tapvid, save_tapvid


def test_round_trip_keeps_every_array_and_the_order(tmp_path):
    videos = generate_tapvid(preset("hard", num_frames=6, height=48, width=80, num_points=10),
                             num_videos=3, seed=1, prefix="clip")
    path = tmp_path / "data.pkl"
    save_tapvid(path, videos)
    loaded = load_tapvid(path)
    assert list(loaded) == ["clip_0000", "clip_0001", "clip_0002"]
    for original in videos:
        again = loaded[original.name]
        np.testing.assert_array_equal(again.video, original.video)
        np.testing.assert_array_equal(again.points, original.points)
        np.testing.assert_array_equal(again.occluded, original.occluded)
    # the file is plain TAP-Vid: dicts of numpy arrays with the benchmark's dtypes
    with open(path, "rb") as handle:
        raw = pickle.load(handle)
    entry = raw["clip_0000"]
    assert set(entry) == {"video", "points", "occluded"}
    assert entry["video"].dtype == np.uint8 and entry["video"].shape == (6, 48, 80, 3)
    assert entry["points"].shape == (10, 6, 2) and entry["occluded"].dtype == bool
    assert load_tapvid(path, max_videos=2).keys() == {"clip_0000", "clip_0001"}


def test_points_are_normalised_by_width_and_height():
    video = np.zeros((2, 50, 200, 3), np.uint8)
    tracks = np.array([[[100.0, 25.0], [200.0, 0.0]]])  # (1, 2, 2) pixels (x, y)
    item = TapVidVideo.from_pixels("v", video, tracks, np.zeros((1, 2), bool))
    np.testing.assert_allclose(item.points, [[[0.5, 0.5], [1.0, 0.0]]])
    np.testing.assert_allclose(item.tracks_px(), tracks)


def test_davis_style_entry_with_float64_points_and_resize(tmp_path):
    rng = np.random.default_rng(0)
    davis = {"bear": {"video": rng.integers(0, 255, (3, 60, 108, 3), dtype=np.uint8),
                      "points": rng.random((4, 3, 2)),  # float64 as in the official pickle
                      "occluded": rng.random((4, 3)) < 0.3}}
    path = tmp_path / "tapvid_davis.pkl"
    path.write_bytes(pickle.dumps(davis))
    video = load_tapvid(path, resize=(256, 256))["bear"]
    assert video.video.shape == (3, 256, 256, 3)
    assert video.points.dtype == np.float32
    np.testing.assert_allclose(video.points, davis["bear"]["points"], rtol=1e-6)
    np.testing.assert_array_equal(video.occluded, davis["bear"]["occluded"])
    np.testing.assert_allclose(video.tracks_px(), davis["bear"]["points"] * 256, rtol=1e-5)


def test_kinetics_jpeg_frames_and_rgb_stacking_list(tmp_path):
    frame = np.zeros((32, 40, 3), np.uint8)
    frame[:, :, 0] = 200  # pure red, in RGB
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))[1].tobytes()
    entry = {"video": [jpeg, jpeg], "points": np.zeros((1, 2, 2)), "occluded": np.zeros((1, 2), bool)}
    path = tmp_path / "stacking.pkl"
    path.write_bytes(pickle.dumps([entry, entry]))
    loaded = load_tapvid(path)
    assert list(loaded) == ["0000", "0001"]
    video = loaded["0001"].video
    assert video.shape == (2, 32, 40, 3)
    assert abs(int(video[0, 16, 20, 0]) - 200) < 8 and video[0, 16, 20, 2] < 8


def test_bad_files_say_what_is_wrong(tmp_path):
    with pytest.raises(TapVidFormatError, match="taptr data synth"):
        load_tapvid(tmp_path / "missing.pkl")
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps({"v": {"video": np.zeros((2, 4, 4, 3), np.uint8), "points": np.zeros((1, 2, 2))}}))
    with pytest.raises(TapVidFormatError, match="occluded"):
        load_tapvid(path)
    path.write_bytes(pickle.dumps({"v": {"video": np.zeros((2, 4, 4, 3), np.uint8),
                                         "points": np.zeros((1, 3, 2)), "occluded": np.zeros((1, 3), bool)}}))
    with pytest.raises(TapVidFormatError, match=r"\(N, 2, 2\)"):
        load_tapvid(path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(TapVidFormatError, match="not a readable pickle"):
        load_tapvid(path)
