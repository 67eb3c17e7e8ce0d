"""Video files (mp4v round trip, lazy iteration, errors) and the track overlay."""

from __future__ import annotations

import types

import numpy as np
import pytest

from taptr_ros.data.errors import VideoError
from taptr_ros.data.video import draw_tracks, id_color, iter_frames, read_video, video_fps, write_video


def _smooth_frames(count: int = 6, height: int = 64, width: int = 96) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    frames = []
    for t in range(count):
        r = 128 + 100 * np.sin((xs + 3 * t) / 9.0)
        g = 128 + 100 * np.cos(ys / 7.0)
        b = np.full_like(r, 40.0 + 20 * t)
        frames.append(np.stack([r, g, b], axis=-1).astype(np.uint8))
    return np.stack(frames)


def test_mp4_round_trip_keeps_size_fps_and_colours(tmp_path):
    frames = _smooth_frames()
    path = tmp_path / "clip.mp4"
    assert write_video(path, iter(frames), fps=12.0) == len(frames)
    decoded, fps = read_video(path)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert fps == pytest.approx(12.0)
    assert video_fps(path) == pytest.approx(12.0)
    # lossy codec, but channel order must survive: blue ramps with t, red does not
    assert np.abs(decoded.astype(int) - frames).mean() < 8
    assert decoded[-1, :, :, 2].mean() > decoded[0, :, :, 2].mean() + 50


def test_iter_frames_is_lazy_and_stops_at_max_frames(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, _smooth_frames(), fps=5.0)
    frames = iter_frames(path, max_frames=2)
    assert isinstance(frames, types.GeneratorType)
    first = next(frames)
    assert first.shape == (64, 96, 3)
    assert len(list(frames)) == 1


def test_video_errors(tmp_path):
    with pytest.raises(VideoError, match="no such video"):
        read_video(tmp_path / "missing.mp4")
    with pytest.raises(VideoError, match="uint8"):
        write_video(tmp_path / "x.mp4", [np.zeros((8, 8, 3), np.float32)], fps=5.0)
    with pytest.raises(VideoError, match="expected 8x8"):
        write_video(tmp_path / "y.mp4", [np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8, 3), np.uint8)], fps=5.0)
    (tmp_path / "junk.mp4").write_bytes(b"junk")
    with pytest.raises(VideoError):
        read_video(tmp_path / "junk.mp4")


def test_draw_tracks_fills_visible_rings_invisible_and_skips_outside():
    frame = np.full((100, 120, 3), 7, np.uint8)
    ids = np.array([3, 10, 11])
    xy = np.array([[20.0, 30.0], [70.0, 60.0], [500.0, -40.0]])
    out = draw_tracks(frame, ids, xy, np.array([True, False, True]), radius=5, labels=False)
    assert (frame == 7).all()  # input untouched
    assert tuple(out[30, 20]) == id_color(3)           # visible: filled centre
    assert tuple(out[60, 70]) == (7, 7, 7)             # invisible: hollow centre ...
    assert np.abs(out[60, 75].astype(int) - id_color(10)).max() < 40  # ... coloured ring (anti-aliased)
    changed = (out != 7).any(axis=-1)
    assert not changed[:, 90:].any() and not changed[:10].any()  # nothing drawn for the outside point


def test_id_color_depends_only_on_the_id_and_tells_ids_apart():
    """Valid bright uint8 RGB; the same colour whatever was asked before (and in another order);
    100 ids, 100 distinct colours; neighbouring ids (points added together) far apart."""
    ids = list(range(100)) + [2**32 - 1]  # ids are uint32
    colors = [id_color(i) for i in ids]
    assert [id_color(i) for i in reversed(ids)] == colors[::-1]
    for color in colors:
        assert len(color) == 3 and all(type(c) is int and 0 <= c <= 255 for c in color), color
        assert max(color) >= 250  # bright: full value
    assert len(set(colors[:100])) == 100
    rgb = np.array(colors[:100], np.int64)
    assert np.abs(np.diff(rgb, axis=0)).max(axis=1).min() >= 100  # some channel differs by >= 100


def test_draw_tracks_labels_and_length_check():
    frame = np.zeros((80, 80, 3), np.uint8)
    with_label = draw_tracks(frame, [42], [[20.0, 40.0]], [True], radius=3, labels=True)
    without = draw_tracks(frame, [42], [[20.0, 40.0]], [True], radius=3, labels=False)
    assert (with_label[:, 25:] != 0).any() and not (without[:, 25:] != 0).any()
    with pytest.raises(ValueError, match="disagree"):
        draw_tracks(frame, [1, 2], [[1.0, 1.0]], [True])
