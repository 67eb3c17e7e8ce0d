"""The online engine as a TAP-Vid tracker (see `taptr_ros.eval.runner` for the contract).

``make_engine_tracker(checkpoint, device)(video, query_points) -> (tracks, occluded, seconds)``
runs `taptr_ros.tracking.OnlineTracker` over the video exactly as the node runs it (frames
pushed one by one, each query added right after its frame was pushed, at that frame's stamp),
with one difference the TAP-Vid protocol asks for: by default ``independent_points=True``, so
every query is decoded alone (no spatial attention between queries: a ``strided`` query cannot
learn from another query of the same track at its ground-truth position). The frames are still
encoded once per pass, shared by all queries; the decoder runs once per query and window.

Queries are presented as the official evaluation presents them to the offline model: query i
starts at its frame q_i (its feature sampled there) and is part of every window that frame
lies in, including the window that ends at q_i (the engine commits that window again with the
query, `taptr_ros.tracking.windows`); the result of frame t equals the offline model's on the
video cut at t. Frames: the query frame itself holds the query (visible). After it: the
forward pass, as published (immediate mode: the result of frame t is the one computed at t;
committed mode: as published, the tail flushed). Before it (only TAP-Vid ``strided`` scores
these): with ``backward=True`` a second pass over the whole video reversed, frames T-1..0, as
the official evaluation reverses it (so the windows fall on the same frames), each query
started at local frame T-1-q_i the same way; with ``backward=False`` the query position,
occluded. What still differs from the official evaluation loop is listed in README.md
("Evaluation").

Query pixels are those of the video frames (our convention: 0 = centre of the first
column/row); queries are clipped into [0, W-1] x [0, H-1] since the engine refuses points
outside the frame.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable

import numpy as np

from taptr_ros.eval.tapvid import EvalError
from taptr_ros.tracking.factory import load_model
from taptr_ros.tracking.options import TrackerOptions
from taptr_ros.tracking.tracker import OnlineTracker

Tracker = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, float]]


def make_engine_tracker(checkpoint: str, device: str, *, preset: str | None = None,
                        options: TrackerOptions | None = None, backward: bool = True,
                        independent: bool = True, input_hw: tuple[int, int] | None = None,
                        window_passes: int | None = None) -> Tracker:
    """A TAP-Vid tracker callable around the online engine; the network is loaded once.

    Args:
        checkpoint: checkpoint path or ``"default"`` (see `taptr_ros.tracking.factory`).
        device: "cpu", "cuda", ... or "auto".
        preset: preset for an official checkpoint (see `load_model`).
        options: engine options (mode, padding, ...); ``max_points`` is raised to the number
            of queries.
        independent: decode each query alone (the TAP-Vid protocol, default). False tracks all
            queries of a video jointly, as the node tracks its points (then a ``strided`` query
            can see, through spatial attention, another query of the same track at its ground
            truth position).
        backward: also track before each query frame over the reversed video (needed for
            ``strided`` queries; ``first`` never scores those frames and can skip the cost).
        input_hw: (height, width) network input instead of the checkpoint's (same weights).
        window_passes: decoder passes per window instead of the checkpoint's (same weights).

    Raises:
        ModelLoadError: missing or unreadable checkpoint, bad device.
    """
    model = load_model(checkpoint, preset=preset, device=device, input_hw=input_hw,
                       window_passes=window_passes)
    base = dataclasses.replace(options or TrackerOptions(), independent_points=independent)

    def track(video: np.ndarray, query_points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        video = np.asarray(video)
        if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
            raise EvalError(f"video must be (T, H, W, 3) uint8, got {video.shape} {video.dtype}")
        queries = np.asarray(query_points, np.float64).reshape(-1, 3)
        T, H, W = video.shape[:3]
        qt = np.rint(queries[:, 0]).astype(np.int64)
        if len(qt) and (qt.min() < 0 or qt.max() >= T):
            raise EvalError(f"query frames {qt.min()}..{qt.max()} fall outside the video's {T} frames")
        xy = np.clip(queries[:, 1:], 0, [W - 1, H - 1])
        tracks = np.repeat(xy[:, None, :], T, axis=1)
        occluded = np.ones((len(xy), T), bool)
        occluded[np.arange(len(xy)), qt] = False
        start = time.perf_counter()
        if len(xy):
            opts = dataclasses.replace(base, max_points=max(base.max_points, len(xy)))
            _run(OnlineTracker(model, opts), video, qt, xy, tracks, occluded, list(range(T)))
            back = np.flatnonzero(qt > 0)
            if backward and back.size:
                last = T - 1  # the whole video reversed, as officially: local frame l is video frame T-1-l
                frames = list(range(last, -1, -1))
                _run(OnlineTracker(model, opts), video, last - qt[back], xy[back], tracks, occluded,
                     frames, rows=back)
        return tracks, occluded, time.perf_counter() - start

    return track


def _run(tracker: OnlineTracker, video: np.ndarray, query_t: np.ndarray, xy: np.ndarray,
         tracks: np.ndarray, occluded: np.ndarray, frames: list[int], *,
         rows: np.ndarray | None = None) -> None:
    """Push video[frames[l]] for l = 0, 1, ...; add query i after local frame query_t[i]; write
    each published result for local frames after the query into tracks/occluded rows."""
    rows = np.arange(len(xy)) if rows is None else rows
    by_frame = {int(t): np.flatnonzero(query_t == t) for t in np.unique(query_t)}
    row_of: dict[int, int] = {}

    def record(results: Iterable) -> None:
        for result in results:
            frame = frames[result.frame_index]
            for point_id, pos, visible in zip(result.ids.tolist(), result.xy, result.visible):
                i = row_of[point_id]
                if result.frame_index > query_t[i]:
                    tracks[rows[i], frame] = pos
                    occluded[rows[i], frame] = not visible

    for local, frame in enumerate(frames):
        record(tracker.push(video[frame]))
        new = by_frame.get(local)
        if new is not None:
            ids, _ = tracker.add_points(xy[new])
            row_of.update(zip(ids.tolist(), new.tolist()))
    record(tracker.flush())
