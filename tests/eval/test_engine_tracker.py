"""`taptr eval tapvid`'s engine tracker presents each query as the official evaluation presents it
to the offline model: every frame after a query's frame equals the offline model on the video cut
there with the queries known by then, including queries at window tail frames (7, 11); frames
before it come from the whole video reversed (windows on the official frames)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from taptr_ros.model.checkpoint import save_checkpoint
from taptr_ros.model.config import preset
from taptr_ros.model.preprocess import preprocess_frame
from taptr_ros.model.taptr import TAPTRv2, track_video

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TOL = 1e-4  # pixels (64 x 48 frames): 1e-5 normalised and below

T, H, W = 14, 48, 64


@pytest.fixture(scope="module")
def model_and_checkpoint(tmp_path_factory):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from random_weights import randomize  # tests/random_weights.py

    model = randomize(TAPTRv2(preset("tiny", input_hw=(64, 64))), 3).eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model)
    return model, path


def video_frames(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, (6, 8, 3)).astype(np.float32)
    import cv2

    frames = [cv2.resize(np.roll(base, t, axis=1), (W, H)) + rng.normal(0, 6, (H, W, 3)) for t in range(T)]
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def offline(model, video: np.ndarray, cut: int, xy_px: np.ndarray, start: np.ndarray,
            frame: int | None = None) -> np.ndarray:
    """(N, 2) pixels at `frame` (default `cut`) of the offline model on video[:cut + 1]."""
    frames = torch.stack([preprocess_frame(f, model.config) for f in video[: cut + 1]])
    xy = torch.as_tensor(xy_px / [W - 1, H - 1], dtype=torch.float32)
    with torch.no_grad():
        result = track_video(model, frames, xy, torch.as_tensor(start), content_propagation_gap=1)
    return result.xy_norm[cut if frame is None else frame].numpy() * [W - 1, H - 1]


@pytest.mark.parametrize("independent", [True, False])
def test_queries_at_tail_frames_are_scored_as_the_official_model_has_them(model_and_checkpoint, independent):
    from taptr_ros.eval.engine_tracker import make_engine_tracker

    model, checkpoint = model_and_checkpoint
    video = video_frames(5)
    queries = np.array([[0, 10.0, 12.0], [3, 30.0, 20.0], [7, 40.0, 25.0], [7, 12.0, 30.0],
                        [11, 50.0, 10.0], [12, 20.0, 40.0]])
    tracks, occluded, _ = make_engine_tracker(str(checkpoint), "cpu", independent=independent)(video, queries)
    qt = queries[:, 0].astype(int)
    # forward: frame t > q_i equals the offline model on the cut at t with the queries of frames < t
    for t in range(1, T):
        known = np.flatnonzero(qt < t)
        if independent:
            want = np.stack([offline(model, video, t, queries[[i], 1:], qt[[i]])[0] for i in known])
        else:
            want = offline(model, video, t, queries[known, 1:], qt[known])
        np.testing.assert_allclose(tracks[known, t], want, atol=TOL, err_msg=f"frame {t}")
    # backward (alone: the protocol's mode): frame t < q_i equals the offline model on the whole
    # video reversed, cut at local frame T-1-t, the query at local frame T-1-q_i
    if independent:
        reverse = video[::-1]
        for i in np.flatnonzero(qt > 0):
            for t in range(qt[i]):
                want = offline(model, reverse, T - 1 - t, queries[[i], 1:], np.array([T - 1 - qt[i]]))[0]
                np.testing.assert_allclose(tracks[i, t], want, atol=TOL, err_msg=f"query {i} frame {t}")
    assert not occluded[np.arange(len(qt)), qt].any()


@pytest.mark.parametrize("mode", ["immediate", "committed"])
def test_bag_lockstep_decodes_queries_together_as_the_official_model_does(model_and_checkpoint, mode):
    """`taptr bag eval`'s lockstep replay (points decoded together, as the node does): frame t
    equals the offline model on the cut at its publishing push p (t; committed mode: the next
    frame = 3 mod 4, or the flush after the last) with every query added before that push
    (frames < p), tail frames too."""
    from taptr_ros.bags.engine import make_engine_factory, run_lockstep
    from taptr_ros.bags.storage import BagImage
    from taptr_ros.tracking.options import TrackerOptions

    model, checkpoint = model_and_checkpoint
    video = video_frames(6)
    queries = np.array([[0, 10.0, 12.0], [0, 33.0, 21.0], [7, 40.0, 25.0], [9, 12.0, 30.0], [11, 50.0, 10.0]])
    factory, _ = make_engine_factory(str(checkpoint), "cpu", options=TrackerOptions(mode=mode))
    frames = [BagImage(k, 1000 + k, 1000 + k, "cam", video[k], b"") for k in range(T)]
    run = run_lockstep(frames, factory(len(queries)), queries, T)
    qt = queries[:, 0].astype(int)
    for t in range(1, T):
        at = t if mode == "immediate" else next((p for p in range(t, T) if p % 4 == 3), T)
        cut, known = min(at, T - 1), np.flatnonzero(qt < at)
        want = offline(model, video, cut, queries[known, 1:], qt[known], frame=t)
        begun = qt[known] < t
        np.testing.assert_allclose(run.tracks[known[begun], t], want[begun], atol=TOL, err_msg=f"frame {t}")
