"""Lockstep replay: the node's engine (:class:`taptr_ros.tracking.OnlineTracker`) fed a bag's frames.

Per frame, in the node's order: the frame (decoded by the node's decoder, see
:class:`taptr_ros.bags.storage.BagImage`) is pushed with its header stamp; the result is what the
node would publish on ``~/tracks`` for that image; then the queries of that frame are added with
that frame's stamp (what a client calling ``~/add_points`` with the image's stamp gets). A point
added at frame t appears in the results from frame t + 1; for frame t its query itself stands in
(the TAP-Vid metrics never score the query frame). Nothing is dropped: every frame is processed.

With the engine committing windows again when points join them (:mod:`taptr_ros.tracking.windows`),
a query added after its frame t was pushed is part of every window t lies in, as the official
evaluation's offline model has it; only the results published for frame t itself (before the query
existed) do not see it, which matters when points are decoded together (README.md, "Evaluation").

Backward passes run the same way over the reversed frames (for TAP-Vid ``strided`` queries, whose
frames before the query are scored: over the whole video, T-1..0, as the official evaluation
reverses it; and for forward-backward consistency).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import numpy as np

from taptr_ros.bags.errors import BagError, BagGroundTruthError
from taptr_ros.bags.storage import BagImage


class Engine(Protocol):
    """What the lockstep replay needs of :class:`taptr_ros.tracking.tracker.OnlineTracker`."""

    def push(self, frame: np.ndarray, stamp: Any) -> Any:
        """Track one RGB uint8 (H, W, 3) frame; ``stamp`` increases (integer ns in the bag tools)."""

    def add_points(self, xy_px: np.ndarray, stamp: Any = None) -> Any:
        """Add (N, 2) pixels (x, y) of the frame with ``stamp`` (None = the latest); returns their ids."""


#: ``factory(num_points)`` -> a fresh engine able to hold ``num_points`` points
EngineFactory = Callable[[int], Engine]


@dataclasses.dataclass(frozen=True)
class FrameTracks:
    """One engine result as arrays: ids (N,) uint32, xy (N, 2) float64 pixels (x, y), visible (N,)
    bool, visibility (N,) float32."""

    ids: np.ndarray
    xy: np.ndarray
    visible: np.ndarray
    visibility: np.ndarray


def frame_tracks(result: Any) -> FrameTracks:
    """Read a FrameResult (ids, xy pixels, visible, visibility) into numpy arrays."""

    def array(value: Any, dtype: Any) -> np.ndarray:
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        return np.asarray(value, dtype)

    ids = array(result.ids, np.uint32).reshape(-1)
    return FrameTracks(
        ids,
        array(result.xy, np.float64).reshape(-1, 2),
        array(result.visible, bool).reshape(-1),
        array(result.visibility, np.float32).reshape(-1),
    )


def _added_ids(answer: Any, count: int) -> np.ndarray:
    """The ids out of ``add_points``' answer (``ids`` or ``(ids, stamp_used)``)."""
    ids = answer[0] if isinstance(answer, tuple) else getattr(answer, "ids", answer)
    ids = np.asarray(ids.detach().cpu().numpy() if hasattr(ids, "detach") else ids, np.int64).reshape(-1)
    if len(ids) != count:
        raise BagError(f"the engine returned {len(ids)} ids for {count} points")
    return ids


@dataclasses.dataclass
class LockstepRun:
    """Predictions for M queries over T frames.

    Attributes:
        tracks: (M, T, 2) float64 pixels (x, y); before a query's frame: its query position.
        occluded: (M, T) bool; True before a query's frame.
        visibility: (M, T) float32 probability; 0 before a query's frame, 1 at it.
        push_seconds: (T,) wall time of each ``push``.
        stamps_ns: (T,) header stamps of the frames processed, in processing order.
    """

    tracks: np.ndarray
    occluded: np.ndarray
    visibility: np.ndarray
    push_seconds: np.ndarray
    stamps_ns: np.ndarray

    @property
    def seconds(self) -> float:
        return float(self.push_seconds.sum())


def _results(answer: Any) -> list[Any]:
    """``push``/``flush`` answers as a list of results (OnlineTracker returns a list; one result
    or None are accepted too)."""
    if answer is None:
        return []
    return list(answer) if isinstance(answer, (list, tuple)) else [answer]


def run_lockstep(
    frames: Iterable[BagImage],
    engine: Engine,
    queries: np.ndarray,
    num_frames: int,
    *,
    on_frame: Callable[[BagImage, FrameTracks], None] | None = None,
    stamp: Callable[[int], Any] = int,
) -> LockstepRun:
    """Push every frame, add each query right after its frame was pushed, record the results.

    Args:
        frames: the frames in processing order; their ``index`` is ignored, frame k of the
            iteration is frame k of ``queries``.
        engine: a fresh engine (no points).
        queries: (M, 3) float64 (t, x, y), t in [0, num_frames), x, y pixels.
        num_frames: frames the iteration yields.
        on_frame: called with each frame and the engine's result for it (what the node publishes).
        stamp: converts a header stamp in ns to what the engine's ``push``/``add_points`` take.

    Raises:
        BagGroundTruthError: a query frame outside the video, or fewer frames than ``num_frames``.
    """
    queries = np.asarray(queries, np.float64).reshape(-1, 3)
    M, T = len(queries), int(num_frames)
    qt = np.rint(queries[:, 0]).astype(np.int64)
    if M and (qt.min() < 0 or qt.max() >= T):
        raise BagGroundTruthError(
            f"query frames {qt.min()}..{qt.max()} fall outside the video's {T} frames: "
            "the queries do not belong to this bag"
        )
    tracks = np.repeat(queries[:, None, 1:], T, axis=1)
    occluded = np.ones((M, T), bool)
    visibility = np.zeros((M, T), np.float32)
    push_seconds = np.zeros(T)
    stamps = np.zeros(T, np.int64)
    by_frame = {t: np.flatnonzero(qt == t) for t in np.unique(qt)}
    id_keys = np.zeros(0, np.int64)  # sorted engine ids ...
    id_rows = np.zeros(0, np.int64)  # ... and their query rows
    images: dict[int, BagImage] = {}  # frames not yet published (committed mode publishes late)
    frame_of_stamp: dict[Any, int] = {}

    def record(results: list[Any]) -> None:
        for result in results:
            k = frame_of_stamp.pop(result.stamp, None)
            if k is None:
                raise BagError(
                    f"the engine published a result for stamp {result.stamp!r}, which no pending " "frame has"
                )
            out = frame_tracks(result)
            if len(out.ids) and len(id_keys):
                pos = np.clip(np.searchsorted(id_keys, out.ids), 0, len(id_keys) - 1)
                known = id_keys[pos] == out.ids
                rows = id_rows[pos[known]]
                tracks[rows, k] = out.xy[known]
                occluded[rows, k] = ~out.visible[known]
                visibility[rows, k] = out.visibility[known]
            if on_frame is not None:
                on_frame(images.pop(k), out)
            else:
                images.pop(k)

    count = 0
    for k, image in enumerate(frames):
        if k >= T:
            break
        key = stamp(image.stamp_ns)
        images[k], frame_of_stamp[key] = image, k
        start = time.perf_counter()
        results = _results(engine.push(image.rgb, key))
        push_seconds[k] = time.perf_counter() - start
        stamps[k] = image.stamp_ns
        record(results)
        rows = by_frame.get(k)
        if rows is not None and len(rows):
            # the engine refuses points outside the frame; TAP-Vid pixels (points * (W, H)) can
            # reach W and H: clipped, as the TAP-Vid engine tracker clips them
            xy = np.clip(queries[rows, 1:], 0, [image.width - 1, image.height - 1])
            ids = _added_ids(engine.add_points(xy, key), len(rows))
            order = np.argsort(np.concatenate([id_keys, ids]), kind="stable")
            id_keys = np.concatenate([id_keys, ids])[order]
            id_rows = np.concatenate([id_rows, rows])[order]
            tracks[rows, k] = xy
            occluded[rows, k] = False
            visibility[rows, k] = 1.0
        count = k + 1
    if count < T:
        raise BagGroundTruthError(f"the bag yielded {count} frames, {T} expected")
    flush = getattr(engine, "flush", None)
    if frame_of_stamp and callable(flush):
        start = time.perf_counter()
        results = _results(flush())
        push_seconds[T - 1] += time.perf_counter() - start
        record(results)
    if frame_of_stamp:
        raise BagError(
            f"the engine never published {len(frame_of_stamp)} frame(s) (first: frame "
            f"{min(frame_of_stamp.values())})"
        )
    return LockstepRun(tracks, occluded, visibility, push_seconds, stamps)


def merge_backward(
    forward: LockstepRun, backward: LockstepRun, rows: np.ndarray, query_frames: np.ndarray, last: int
) -> LockstepRun:
    """Strided-mode predictions, as :mod:`taptr_ros.eval.engine_tracker` makes them: frames at and
    after each query from the forward run; frames before it, for the queries ``rows`` (those with
    a query frame > 0), from the backward run over video frames ``last, last - 1, ..., 0`` (local
    frame l = video frame last - l)."""
    tracks, occluded = forward.tracks.copy(), forward.occluded.copy()
    visibility = forward.visibility.copy()
    qt = np.rint(query_frames[rows]).astype(np.int64)
    for local_row, (row, q) in enumerate(zip(rows, qt)):
        frames = np.arange(q)  # video frames before the query: local last - f
        tracks[row, frames] = backward.tracks[local_row, last - frames]
        occluded[row, frames] = backward.occluded[local_row, last - frames]
        visibility[row, frames] = backward.visibility[local_row, last - frames]
    seconds = forward.push_seconds.copy()
    seconds[: last + 1] += backward.push_seconds[::-1]
    return LockstepRun(tracks, occluded, visibility, seconds, forward.stamps_ns)


def backward_queries(queries: np.ndarray, num_frames: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(rows, local queries, last): the queries with a frame > 0, their frames mapped to
    ``last - t`` for a pass over video frames ``last..0``, ``last = num_frames - 1``: the whole
    video reversed, as the official evaluation reverses it (so the windows fall on the same
    frames as there; a pass from the latest query frame would shift them)."""
    queries = np.asarray(queries, np.float64).reshape(-1, 3)
    rows = np.flatnonzero(np.rint(queries[:, 0]) > 0)
    if not len(rows):
        return rows, np.zeros((0, 3)), 0
    last = int(num_frames) - 1
    local = queries[rows].copy()
    local[:, 0] = last - np.rint(local[:, 0])
    return rows, local, last


def make_engine_factory(
    checkpoint: str, device: str, *, preset: str | None = None, options: Any = None
) -> tuple[EngineFactory, dict[str, Any]]:
    """The node's engine: the checkpoint's network, loaded once, in a fresh ``OnlineTracker`` per call.

    Args:
        checkpoint: a checkpoint path, or ``"default"`` (see :mod:`taptr_ros.tracking.factory`).
        device: torch device (``auto``, ``cpu``, ``cuda``, ...).
        preset: preset of an official checkpoint (see :func:`taptr_ros.tracking.factory.load_model`).
        options: :class:`taptr_ros.tracking.options.TrackerOptions`; None = the defaults, which are
            the node's parameter defaults (immediate mode, threshold of the config, no padding,
            points decoded together). ``independent_points=True`` is the TAP-Vid protocol of
            ``taptr eval tapvid``. ``max_points`` is raised to the number of queries.

    Returns:
        (factory, meta): ``factory(num_points)`` -> OnlineTracker; meta describes the engine for reports.

    Raises:
        taptr_ros.tracking.errors.ModelLoadError: missing or unreadable checkpoint, bad device.
    """
    import dataclasses as dc

    from taptr_ros.tracking.factory import load_model, resolve_checkpoint
    from taptr_ros.tracking.options import TrackerOptions
    from taptr_ros.tracking.tracker import OnlineTracker

    model = load_model(checkpoint, preset=preset, device=device)
    base = options or TrackerOptions()

    def factory(num_points: int) -> Engine:
        return OnlineTracker(model, dc.replace(base, max_points=max(base.max_points, int(num_points), 1)))

    resolved = base.resolved(model.config)
    meta = {
        "tracker": "taptr",
        "checkpoint": checkpoint,
        "checkpoint_path": str(resolve_checkpoint(checkpoint)),
        "device": str(next(model.parameters()).device),
        "preset": model.config.name,
        "engine_options": {k: v for k, v in dc.asdict(resolved).items() if k != "max_points"},
    }
    return factory, meta
