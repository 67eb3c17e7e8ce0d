"""Model tracker for the TAP-Vid runner, and the quick validation used to pick checkpoints.

`make_model_tracker` adapts a network to `taptr_ros.eval.runner`'s tracker contract with the
offline reference `track_video`: all queries of a video are tracked together in one pass (as
the official TAPTR evaluation does), not one by one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from taptr_ros.data import synthetic
from taptr_ros.data.tapvid import TapVidVideo
from taptr_ros.eval.runner import evaluate_dataset
from taptr_ros.model.preprocess import norm_to_pixels, pixels_to_norm, preprocess_frames
from taptr_ros.model.taptr import TAPTRv2, track_video

Tracker = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, float]]

#: seed of the validation stream (below TRAIN_SEED_LIMIT, never used by a training stream
#: unless a run is started with this seed)
VAL_SEED = 999_000


def make_model_tracker(model: TAPTRv2, *, content_propagation_gap: int = 1) -> Tracker:
    """``tracker(video (T,H,W,3) uint8, queries (N,3) (t,x,y) px) -> (tracks (N,T,2) px,
    occluded (N,T) bool, seconds)`` running `track_video` under ``torch.no_grad``.

    Pixels are normalised by (W-1, H-1) of the given frames; frames are resized to the input.
    """
    param = next(model.parameters())

    @torch.no_grad()
    def tracker(video: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        start = time.perf_counter()
        t, h, w = video.shape[:3]
        frames = preprocess_frames(video, model.config).to(param.device)
        q = torch.as_tensor(queries, dtype=torch.float32)
        xy = pixels_to_norm(q[:, 1:], w, h)
        res = track_video(model, frames, xy, q[:, 0].round().long(),
                          content_propagation_gap=content_propagation_gap)
        tracks = norm_to_pixels(res.xy_norm.float().cpu(), w, h).permute(1, 0, 2).numpy()
        occluded = (~res.visible).cpu().T.numpy()
        return tracks, occluded, time.perf_counter() - start

    return tracker


def validation_videos(*, size: int, num_frames: int = 24, num_points: int = 32,
                      per_preset: int = 2, seed: int = VAL_SEED) -> list[TapVidVideo]:
    """A small fixed validation set: `per_preset` easy and hard videos at size x size."""
    out = []
    for k, name in enumerate(("easy", "hard")):
        cfg = synthetic.preset(name, num_frames=num_frames, height=size, width=size, num_points=num_points)
        out += synthetic.generate_tapvid(cfg, num_videos=per_preset, seed=seed + k, prefix=f"val_{name}")
    return out


def validate(model: TAPTRv2, videos: list[TapVidVideo], *, query_mode: str = "first") -> dict[str, float]:
    """Mean TAP-Vid metrics (AJ, <delta_avg, OA, fractions) of `model` on `videos`."""
    was_training = model.training
    model.eval()
    try:
        report = evaluate_dataset(videos, make_model_tracker(model), query_mode)
    finally:
        model.train(was_training)
    return {"aj": report.overall["average_jaccard"], "delta": report.overall["average_pts_within_thresh"],
            "oa": report.overall["occlusion_accuracy"]}
