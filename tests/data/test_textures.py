"""Texture sources: frames of real videos join the photographs only when asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from taptr_ros.data.textures import photo_texture, video_frames

VIDEO = Path(__file__).resolve().parents[2] / "media" / "trackon_sample.mp4"


def test_video_frames_are_spread_rgb_and_downscaled():
    frames = video_frames(str(VIDEO), count=4)
    assert len(frames) == 4
    for frame in frames:
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
        assert max(frame.shape[:2]) <= 640
        assert not frame.flags.writeable
    # spread over the video: the first and the last frame differ
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1.0


def test_video_frames_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.mp4"):
        video_frames(str(tmp_path / "nothing.mp4"))


def test_photo_texture_uses_video_frames_only_when_given():
    def crops(videos):
        rng = np.random.default_rng(5)
        return [photo_texture(rng, 48, 64, videos) for _ in range(40)]

    without = crops(())
    with_videos = crops((str(VIDEO),))
    assert all(c.shape == (48, 64, 3) and c.dtype == np.uint8 for c in without + with_videos)
    # the draws differ once videos are in the pool; without them they are reproducible
    assert any(not np.array_equal(a, b) for a, b in zip(without, with_videos))
    again = crops(())
    assert all(np.array_equal(a, b) for a, b in zip(without, again))
