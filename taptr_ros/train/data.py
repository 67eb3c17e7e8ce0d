"""Training clips: synthetic sequences (exact ground truth) or a TAP-Vid pickle, as tensors.

Every clip gets its queries the official way: a point starts at its first visible frame and,
with probability ``restart_ratio`` (official ``ratio_restart_trajectory`` 1/4), restarts at a
random later visible frame instead, so queries that appear mid-stream are learned. Points
never visible are dropped; a clip keeps at most ``num_points`` points.

Positions are normalised by (W-1, H-1) of the frames, which are generated (or resized) at the
network input size, so they are directly the network's coordinates.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from taptr_ros.data import synthetic
from taptr_ros.data.splits import TRAIN_SEED_LIMIT
from taptr_ros.data.tapvid import TapVidVideo, load_tapvid
from taptr_ros.model.config import TaptrConfig
from taptr_ros.model.preprocess import preprocess_frames


@dataclass
class Clip:
    """One training clip.

    Attributes:
        video: (T, 3, H, W) float32 normalised network input.
        gt_xy: (T, N, 2) float32 ground truth normalised by (W-1, H-1).
        gt_occluded: (T, N) bool.
        query_xy: (N, 2) position at the start frame (= gt there).
        query_t: (N,) long start frame.
    """

    video: Tensor
    gt_xy: Tensor
    gt_occluded: Tensor
    query_xy: Tensor
    query_t: Tensor


def make_queries(occluded: np.ndarray, rng: np.random.Generator, *, restart_ratio: float = 0.25) -> np.ndarray:
    """Start frame of each point: first visible frame, or (restart) a random later visible one.

    Args:
        occluded: (N, T) bool; every point must be visible somewhere.

    Returns:
        (N,) int64 start frames, visible in each point's own track.
    """
    visible = ~occluded
    start = visible.argmax(1)
    for i in np.flatnonzero(rng.random(len(start)) < restart_ratio):
        frames = np.flatnonzero(visible[i])
        start[i] = frames[rng.integers(len(frames))]
    return start.astype(np.int64)


def clip_from_arrays(video: np.ndarray, tracks_px: np.ndarray, occluded: np.ndarray,
                     config: TaptrConfig, rng: np.random.Generator, *, num_points: int,
                     restart_ratio: float = 0.25) -> Clip:
    """Build a `Clip` from (T, H, W, 3) uint8 frames, (N, T, 2) pixel tracks and (N, T) occlusion.

    Frames are resized to config.input_hw; tracks are normalised by (W-1, H-1) of `video`.
    """
    h, w = video.shape[1:3]
    keep = np.flatnonzero((~occluded).any(1))
    if len(keep) > num_points:
        keep = rng.choice(keep, num_points, replace=False)
    tracks, occ = tracks_px[keep], occluded[keep]
    starts = make_queries(occ, rng, restart_ratio=restart_ratio)
    xy = (tracks / np.array([w - 1, h - 1], np.float32)).astype(np.float32)
    gt_xy = torch.from_numpy(np.ascontiguousarray(xy.transpose(1, 0, 2)))
    q_t = torch.from_numpy(starts)
    return Clip(video=preprocess_frames(video, config), gt_xy=gt_xy,
                gt_occluded=torch.from_numpy(np.ascontiguousarray(occ.T)),
                query_xy=gt_xy[q_t, torch.arange(len(keep))].clone(), query_t=q_t)


def synthetic_clip(config: TaptrConfig, presets: tuple[synthetic.SyntheticConfig, ...], seed: int,
                   index: int, num_points: int, restart_ratio: float) -> Clip:
    """Clip `index` of the stream: ``default_rng((seed, index))``, preset ``index % len``."""
    rng = np.random.default_rng((seed, index))
    seq = synthetic.generate_sequence(presets[index % len(presets)], rng)
    return clip_from_arrays(seq.video, seq.tracks, seq.occluded, config, rng,
                            num_points=num_points, restart_ratio=restart_ratio)


def synthetic_clips(config: TaptrConfig, *, num_frames: int, num_points: int, seed: int,
                    rank: int = 0, world_size: int = 1, start_index: int = 0,
                    presets: tuple[str, ...] = ("easy", "hard"), texture_videos: tuple[str, ...] = (),
                    restart_ratio: float = 0.25, workers: int = 0) -> Iterator[Clip]:
    """Endless synthetic clips at the network input size.

    Clip i (global index over all ranks: i = start_index + k * world_size + rank) is drawn from
    ``default_rng((seed, i))`` with preset ``presets[i % len(presets)]``; seeds stay below
    `TRAIN_SEED_LIMIT` so the held-out splits are never trained on. ``start_index`` lets a
    resumed run continue the stream where it stopped. ``workers`` > 0 generates the next
    2 x workers clips in that many processes while the caller trains (same clips, same order).
    ``texture_videos`` are given to every preset (`SyntheticConfig.texture_videos`).
    """
    if seed >= TRAIN_SEED_LIMIT:
        raise ValueError(f"training seed {seed} must be below {TRAIN_SEED_LIMIT} (held-out seeds)")
    h, w = config.input_hw
    cfgs = tuple(synthetic.preset(p, num_frames=num_frames, height=h, width=w, num_points=num_points,
                                  texture_videos=tuple(texture_videos))
                 for p in presets)
    indices = itertools.count(start_index + rank, world_size)
    if workers <= 0:
        for i in indices:
            yield synthetic_clip(config, cfgs, seed, i, num_points, restart_ratio)
        return
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers, initializer=torch.set_num_threads,
                                                   initargs=(1,)) as pool:
        pending = collections.deque()
        for i in indices:
            pending.append(pool.apply_async(synthetic_clip, (config, cfgs, seed, i, num_points, restart_ratio)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()


def pickle_clips(path: str, config: TaptrConfig, *, num_frames: int, num_points: int, seed: int,
                 rank: int = 0, world_size: int = 1, start_index: int = 0,
                 restart_ratio: float = 0.25) -> Iterator[Clip]:
    """Endless random crops in time of the videos of a TAP-Vid pickle (resized to the input)."""
    videos: list[TapVidVideo] = list(load_tapvid(path).values())
    if not videos:
        raise ValueError(f"{path} holds no videos")
    i = start_index + rank
    while True:
        rng = np.random.default_rng((seed, i))
        v = videos[int(rng.integers(len(videos)))]
        t0 = int(rng.integers(max(1, v.num_frames - num_frames + 1)))
        sl = slice(t0, t0 + num_frames)
        tracks = v.tracks_px()[:, sl] * np.array([(v.width - 1) / v.width, (v.height - 1) / v.height],
                                                 np.float32)
        yield clip_from_arrays(v.video[sl], tracks, v.occluded[:, sl], config, rng,
                               num_points=num_points, restart_ratio=restart_ratio)
        i += world_size
