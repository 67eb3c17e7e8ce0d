"""`taptr data synth` end to end, in process."""

from __future__ import annotations

import numpy as np

from taptr_ros.cli import main
from taptr_ros.data.tapvid import load_tapvid


def _synth(tmp_path):
    path = tmp_path / "data.pkl"
    assert main(["data", "synth", "--out", str(path), "--split", "easy", "--videos", "2", "--frames", "8",
                 "--size", "96", "--points", "12", "--seed", "4"]) == 0
    return path


def test_data_synth_writes_a_reproducible_pickle(tmp_path, capsys):
    path = _synth(tmp_path)
    first = load_tapvid(path)
    assert list(first) == ["easy_0000", "easy_0001"]
    video = first["easy_0000"]
    assert video.video.shape == (8, 96, 96, 3) and video.points.shape == (12, 8, 2)
    again = load_tapvid(_synth(tmp_path))
    np.testing.assert_array_equal(again["easy_0001"].video, first["easy_0001"].video)
    assert "wrote 2 videos" in capsys.readouterr().out


def test_data_synth_heldout_refuses_overrides(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "x.pkl"), "--heldout", "easy", "--seed", "1"]) == 2
    assert "--seed" in capsys.readouterr().err


def test_data_synth_preview_writes_an_overlay_video(tmp_path):
    from taptr_ros.data.video import read_video

    preview = tmp_path / "preview.mp4"
    assert main(["data", "synth", "--out", str(tmp_path / "d.pkl"), "--videos", "1", "--frames", "5",
                 "--size", "64", "--preview", str(preview)]) == 0
    frames, fps = read_video(preview)
    assert frames.shape == (5, 64, 64, 3) and fps == 10.0
