"""``taptr demo`` end to end: the node process, the shipped video, points by service, outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from taptr_ros.data.video import read_video

TAPTR = Path(sys.executable).parent / "taptr"


def test_demo_writes_overlay_tracks_and_summary(start_process, tiny_checkpoint, tmp_path) -> None:
    out = tmp_path / "out"
    process = start_process([str(TAPTR), "demo", "--checkpoint", str(tiny_checkpoint),
                             "--max-frames", "12", "--grid", "3", "--out", str(out)], name="demo")
    assert process.popen.wait(timeout=300) == 0, process.output()
    printed = process.output()
    assert "12 published, 12 tracked" in printed and "latency" in printed

    summary = json.loads((out / "demo_summary.json").read_text())
    assert summary["frames_published"] == summary["frames_tracked"] == 12
    assert summary["frames_without_overlay"] == 0 and summary["frames_dropped"] == 0
    assert summary["points_added"] == 9 + 3 and summary["points_removed"] == 3
    assert summary["points_final"] == 9
    assert summary["node_exit_code"] == 0 and summary["device"] == "cpu"
    assert summary["fps"] > 0 and summary["latency_ms"]["p50"] > 0

    video, _ = read_video(out / "demo_overlay.mp4")
    assert video.shape == (12, 384, 512, 3)
    original, _ = read_video(Path(__file__).resolve().parents[3] / "media" / "trackon_sample.mp4",
                             max_frames=12)
    assert np.abs(video[6].astype(int) - original[6]).mean() > 0.5  # points are drawn

    tracks = np.load(out / "demo_tracks.npz")
    assert tracks["xy"].shape == (12, 12, 2) and tracks["visible"].shape == (12, 12)
    assert np.isnan(tracks["xy"][0]).all()  # points join after frame 0 was published
    assert not np.isnan(tracks["xy"][1, :9]).any()  # the grid, from frame 1 on
    removed = summary["events"]["removed"][0]
    for point_id in removed["ids"]:  # removed points vanish from the frame after removal
        column = list(tracks["ids"]).index(point_id)
        assert np.isnan(tracks["xy"][removed["frame"] + 1:, column]).all()


def test_demo_without_the_checkpoint_says_so(start_process, tmp_path) -> None:
    missing = tmp_path / "missing.pt"
    process = start_process([str(TAPTR), "demo", "--checkpoint", str(missing),
                             "--out", str(tmp_path / "out")], name="demo")
    assert process.popen.wait(timeout=120) == 1
    assert f"checkpoint {missing} does not exist" in process.output()
    assert "Traceback" not in process.output()
