"""Factory (checkpoint / 'default' / device), the TAP-Vid engine tracker, and `taptr track`."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from tracking_helpers import make_model, random_video
from taptr_ros.cli import main
from taptr_ros.model.checkpoint import save_checkpoint
from taptr_ros.tracking.errors import ModelLoadError
from taptr_ros.tracking.factory import build_tracker, load_model
from taptr_ros.tracking.options import TrackerOptions
from taptr_ros.tracking.tracker import OnlineTracker


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, make_model(0, input_hw=(64, 64)))
    return path


def test_factory_loads_ours_and_refuses_clearly(checkpoint, tmp_path, monkeypatch):
    tracker = build_tracker(str(checkpoint), device="cpu", options=TrackerOptions(max_points=5))
    assert tracker.model.config.input_hw == (64, 64) and tracker.options.max_points == 5
    reference = make_model(0, input_hw=(64, 64))
    for a, b in zip(tracker.model.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)
    missing = tmp_path / "models" / "default.pt"
    monkeypatch.setenv("TAPTR_DEFAULT_CHECKPOINT", str(missing))
    with pytest.raises(ModelLoadError, match=re.escape(f"TAPTR_DEFAULT_CHECKPOINT={missing} does not exist")):
        load_model("default")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="cannot read"):
        load_model(tmp_path / "junk.pt")
    with pytest.raises(ModelLoadError, match="not preset 'small'"):
        load_model(checkpoint, preset="small")
    torch.save({"ema_model": {"module.foo": torch.zeros(1)}}, tmp_path / "official.pt")
    with pytest.raises(ModelLoadError, match="foo"):
        load_model(tmp_path / "official.pt", preset="tiny")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            load_model(checkpoint, device="cuda")


def test_factory_runs_the_same_weights_at_another_input_size(checkpoint):
    same = load_model(checkpoint)
    resized = load_model(checkpoint, input_hw=(96, 80))
    assert same.config.input_hw == (64, 64) and resized.config.input_hw == (96, 80)
    assert resized.config.replace(input_hw=(64, 64)) == same.config
    for (key, a), b in zip(same.state_dict().items(), resized.state_dict().values()):
        assert torch.equal(a, b), key
    assert not resized.training
    frame = random_video(2, 1, (120, 100))[0]
    (result,) = OnlineTracker(resized).push(frame, 0)
    assert (result.height, result.width) == (120, 100)
    with torch.no_grad():  # the resized network really encodes at its size: 96x80 input tokens
        assert resized.encode_frames(torch.zeros(1, 3, 96, 80)).shape[1] == resized.config.num_tokens()


def test_factory_sets_the_decoder_passes_per_window(checkpoint):
    twice = load_model(checkpoint, window_passes=2)
    assert twice.config.window_passes == 2 and load_model(checkpoint).config.window_passes == 1
    with pytest.raises(ModelLoadError, match="window_passes"):
        load_model(checkpoint, window_passes=0)


def test_shipped_model_follows_a_faster_pan_with_two_passes():
    """A photograph panned 5 px a frame (at 256 px high): one decoder pass per window loses
    the points, two passes (the shipped model's own) keep them. Measured after 24 frames:
    v11 (trained with one pass) 49 px off with 1 pass, 1.4 px with 2; v16 (trained with two,
    shipped since session 13) 34 px and 3.3 px; v16 with a start velocity (shipped since
    session 14) 98 px and 1.5 px (the first window, where every frame starts at the query,
    decides: started ahead, later windows keep up)."""
    import cv2
    import skimage.data

    from taptr_ros.eval.engine_tracker import make_engine_tracker
    from taptr_ros.tracking.factory import default_checkpoint_path

    if default_checkpoint_path() is None:
        pytest.skip("no shipped model in this checkout")
    photo = cv2.resize(skimage.data.coffee(), (768, 512), interpolation=cv2.INTER_AREA)
    frames, speed = 24, 5.0
    video = np.stack([cv2.warpAffine(photo, np.float32([[1, 0, -speed * t], [0, 1, 0]]), (341, 256))
                      for t in range(frames)])
    queries = np.array([[0, x, y] for y in (64, 128, 192) for x in (150, 220, 290)], np.float64)
    truth = queries[:, 1:] - [speed * (frames - 1), 0]
    errors = {}
    for passes in (1, 2):
        tracker = make_engine_tracker("default", "cpu", independent=False, backward=False, window_passes=passes)
        tracks, _, _ = tracker(video, queries)
        errors[passes] = float(np.median(np.linalg.norm(tracks[:, -1] - truth, axis=-1)))
    assert errors[2] < 4.0 and errors[1] > 20.0, errors


def test_engine_tracker_is_independent_per_query_and_fills_the_protocol(checkpoint):
    from taptr_ros.eval.engine_tracker import make_engine_tracker

    video = np.stack(random_video(11, 11, (30, 40)))
    queries = np.array([[0, 10.0, 12.0], [4, 30.0, 20.0], [4, 40.0, 5.0]])  # x = 40 is clipped to 39
    track = make_engine_tracker(str(checkpoint), "cpu")
    tracks, occluded, seconds = track(video, queries)
    assert tracks.shape == (3, 11, 2) and occluded.shape == (3, 11) and seconds > 0
    np.testing.assert_allclose(tracks[[0, 1, 2], [0, 4, 4]], [[10, 12], [30, 20], [39, 5]])
    assert not occluded[[0, 1, 2], [0, 4, 4]].any()
    # each query alone, through the engine as the node runs it
    model = load_model(str(checkpoint))
    for i, (t0, x, y) in enumerate(queries):
        alone, out = OnlineTracker(model), {}
        for t, frame in enumerate(video):
            out.update({r.frame_index: r for r in alone.push(frame)})
            if t == t0:
                alone.add_points([[min(x, 39.0), y]])
        for t in range(int(t0) + 1, 11):
            np.testing.assert_allclose(tracks[i, t], out[t].xy[0], atol=1e-4)
            assert occluded[i, t] == (not out[t].visible[0])
    # frames before a query come from the reversed pass; without it, the query, occluded
    assert np.abs(tracks[1, :4] - [30, 20]).max() > 1e-3
    fwd, occ, _ = make_engine_tracker(str(checkpoint), "cpu", backward=False)(video, queries)
    np.testing.assert_array_equal(fwd[:, 5:], tracks[:, 5:])
    np.testing.assert_allclose(fwd[1, :4], [[30, 20]] * 4)
    assert occ[1, :4].all() and not occ[1, 4]
    committed = make_engine_tracker(str(checkpoint), "cpu", options=TrackerOptions(mode="committed"))
    c_tracks, _, _ = committed(video, queries)
    assert np.isfinite(c_tracks).all() and np.abs(c_tracks - tracks).max() > 0  # later frames differ


def test_taptr_track_writes_overlay_and_tracks(checkpoint, tmp_path, capsys):
    from taptr_ros.data.video import read_video, write_video

    video = tmp_path / "in.mp4"
    write_video(video, random_video(12, 9, (48, 64)), 10.0)
    out, npz = tmp_path / "out.mp4", tmp_path / "tracks.npz"
    code = main(["track", str(video), "--points", "10,12; 50.5,30", "--grid", "2", "--checkpoint",
                 str(checkpoint), "--out", str(out), "--tracks", str(npz), "--quiet"])
    assert code == 0 and "tracked 6 points over 9 frames" in capsys.readouterr().out
    frames, fps = read_video(out)
    assert frames.shape == (9, 48, 64, 3) and fps == pytest.approx(10.0)
    data = np.load(npz)
    assert data["tracks"].shape == (6, 9, 2) and data["visible"].shape == (6, 9)
    assert data["ids"].tolist() == list(range(6)) and data["size"].tolist() == [48, 64]
    np.testing.assert_allclose(data["tracks"][:, 0], data["queries"])
    np.testing.assert_allclose(data["queries"][:2], [[10, 12], [50.5, 30]])
    np.testing.assert_allclose(data["queries"][2:], [[15.5, 11.5], [47.5, 11.5], [15.5, 35.5], [47.5, 35.5]])
    assert np.isfinite(data["tracks"]).all() and np.abs(data["tracks"][:, -1] - data["queries"]).max() > 1e-3
    # committed mode publishes the same frames (late), flushed at the end
    npz2 = tmp_path / "c.npz"
    assert main(["track", str(video), "--points", "10,12", "--checkpoint", str(checkpoint), "--mode",
                 "committed", "--tracks", str(npz2), "--quiet"]) == 0
    assert np.load(npz2)["tracks"].shape == (1, 9, 2)
    capsys.readouterr()
    assert main(["track", str(video), "--points", "100,12", "--checkpoint", str(checkpoint),
                 "--tracks", str(npz2), "--quiet"]) == 1
    assert "outside the 64x48 frame" in capsys.readouterr().err
    assert main(["track", str(video), "--points", "1;2", "--tracks", str(npz2)]) == 2
    assert main(["track", str(video), "--points", "1,2", "--checkpoint", str(tmp_path / "x.pt"),
                 "--tracks", str(npz2), "--quiet"]) == 1
    # the CLI catches the tracker's errors (TrackerError): a message with the fix, no traceback
    err = capsys.readouterr().err
    assert f"ModelLoadError: checkpoint {tmp_path / 'x.pt'} does not exist: pass a taptr_ros checkpoint" in err
    assert "Traceback" not in err
