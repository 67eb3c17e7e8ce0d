"""`taptr eval tapvid` end to end, in process, on a pickle from `taptr data synth`."""

from __future__ import annotations

import json
import sys
import types

import numpy as np

from taptr_ros.cli import main


def _synth(tmp_path, *extra):
    path = tmp_path / "data.pkl"
    args = ["data", "synth", "--out", str(path), "--split", "easy", "--videos", "2", "--frames", "8",
            "--size", "96", "--points", "12", "--seed", "4", *extra]
    assert main(args) == 0
    return path


def test_eval_lk_prints_a_table_and_writes_json(tmp_path, capsys):
    data = _synth(tmp_path)
    out = tmp_path / "result.json"
    assert main(["eval", "tapvid", str(data), "--baseline", "lk", "--query-mode", "strided",
                 "--out", str(out), "--max-videos", "1"]) == 0
    printed = capsys.readouterr().out
    assert "overall" in printed and "easy_0000" in printed and "easy_0001" not in printed
    report = json.loads(out.read_text())
    assert report["query_mode"] == "strided" and report["meta"]["tracker"] == "lk"
    assert 0.0 <= report["overall"]["average_jaccard"] <= 1.0
    assert len(report["videos"]) == 1


def test_eval_without_the_engine_exits_2_and_points_to_the_baseline(tmp_path, monkeypatch, capsys):
    data = _synth(tmp_path)
    monkeypatch.setitem(sys.modules, "taptr_ros.eval.engine_tracker", None)  # import fails
    assert main(["eval", "tapvid", str(data)]) == 2
    assert "--baseline lk" in capsys.readouterr().err


def test_eval_calls_make_engine_tracker_with_checkpoint_and_device(tmp_path, monkeypatch, capsys):
    """Pins the contract with the engine: make_engine_tracker(checkpoint, device) -> tracker."""
    data = _synth(tmp_path)
    calls = []

    def make_engine_tracker(checkpoint: str, device: str):
        calls.append((checkpoint, device))

        def tracker(video, queries):
            T = video.shape[0]
            return np.repeat(queries[:, None, 1:], T, axis=1), np.zeros((len(queries), T), bool), 0.01

        return tracker

    fake = types.ModuleType("taptr_ros.eval.engine_tracker")
    fake.make_engine_tracker = make_engine_tracker
    monkeypatch.setitem(sys.modules, "taptr_ros.eval.engine_tracker", fake)
    out = tmp_path / "r.json"
    assert main(["eval", "tapvid", str(data), "--checkpoint", "my.pth", "--device", "cpu", "--out", str(out)]) == 0
    assert calls == [("my.pth", "cpu")]
    meta = json.loads(out.read_text())["meta"]
    assert meta["tracker"] == "taptr" and meta["checkpoint"] == "my.pth"


def test_eval_missing_data_file_exits_1(tmp_path, capsys):
    assert main(["eval", "tapvid", str(tmp_path / "none.pkl"), "--baseline", "lk"]) == 1
    assert "taptr data synth" in capsys.readouterr().err


def test_eval_real_measures_taptr_against_lk_on_a_video(tmp_path, monkeypatch, capsys):
    """`taptr eval real` on a panning texture: a TAPTR that never moves is 0% of LK's motion."""
    import cv2

    def make_engine_tracker(checkpoint: str, device: str, **_options):
        def tracker(video, queries):
            T = video.shape[0]
            return np.repeat(queries[:, None, 1:], T, axis=1), np.zeros((len(queries), T), bool), 0.01
        return tracker

    fake = types.ModuleType("taptr_ros.eval.engine_tracker")
    fake.make_engine_tracker = make_engine_tracker
    monkeypatch.setitem(sys.modules, "taptr_ros.eval.engine_tracker", fake)
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (96, 160), dtype=np.uint8), (0, 0), 2.0)
    path = tmp_path / "pan.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for t in range(10):
        writer.write(cv2.cvtColor(np.ascontiguousarray(texture[16:80, 2 * t:2 * t + 96]), cv2.COLOR_GRAY2BGR))
    writer.release()
    out = tmp_path / "real.json"
    assert main(["eval", "real", str(path), "--height", "64", "--grid", "4", "--frames", "10",
                 "--still-frames", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "pan.mp4 taptr: on the" in printed and "0% of its motion followed" in printed
    taptr, lk = json.loads(out.read_text())
    assert lk["reference"] == "lk" and lk["reference_points"] >= 8 and lk["motion_followed"] == 1.0
    # the texture moves 2 px a frame for 9 frames: a tracker that stays put ends 18 px behind
    assert taptr["motion_followed"] == 0.0 and abs(taptr["off_reference_px"] - 18.0) < 1.0
    # against its own rows: the same still drift, and 16 LK points are too few to judge following
    assert main(["eval", "real", str(path), "--height", "64", "--grid", "4", "--frames", "10",
                 "--still-frames", "3", "--against", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "pan.mp4: still drift 0.00 px (shipped 0.00): pass" in printed
    assert "real-footage rule: pass" in printed


def test_eval_real_refuses_a_bad_against_file_before_tracking(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"video": "v"}]')
    assert main(["eval", "real", str(tmp_path / "never_read.mp4"), "--against", str(bad),
                 "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert "--against" in err and "is not a `taptr eval real --out` file" in err
