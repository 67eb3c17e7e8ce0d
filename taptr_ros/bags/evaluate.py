"""``taptr bag eval``: a bag in, a report out, deterministic (lockstep, see :mod:`taptr_ros.bags.engine`).

Writes into the output folder (each file to a temporary name, renamed when complete; the input
bag is only read):

* ``tracks/``: a rosbag2 bag with the engine's output as taptr_ros/TrackedPoints on
  ``/taptr_tracker/tracks`` (header = the image's header), what the node publishes on ``~/tracks``;
* ``metrics.json``: with ground truth, ``tapvid`` = the report of ``taptr eval tapvid`` (same code:
  :func:`taptr_ros.eval.runner.evaluate_dataset`) plus per-frame curves; without, ``survival`` and
  ``forward_backward`` (:mod:`taptr_ros.bags.metrics`); always ``timing`` (fps, ms percentiles);
* ``report.md``; plots ``jaccard.png`` and ``visibility_accuracy.png`` (ground truth) or
  ``survival.png`` and ``fb_error.png`` (none); ``overlay.mp4`` (tracks drawn on the frames).

Queries: with ground truth, sampled from it by the TAP-Vid query mode (and checked against the
bag's sidecar if it has one); without, in this order: ``points`` given, ``grid``, the sidecar's
``points``/``first`` queries, an 8 x 8 grid on frame 0.

The engine is whatever ``engine_factory`` builds; :func:`taptr_ros.bags.engine.make_engine_factory`
builds the node's (points decoded together). With ``TrackerOptions(independent_points=True)`` (the
TAP-Vid protocol, ``taptr bag eval --independent-points``) a bag made from a TAP-Vid pickle scores
exactly what ``taptr eval tapvid`` scores on the pickle (a test, first and strided modes).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from taptr_ros.bags.engine import (
    EngineFactory,
    LockstepRun,
    backward_queries,
    merge_backward,
    run_lockstep,
)
from taptr_ros.bags.errors import BagError, BagGroundTruthError
from taptr_ros.bags.eval_files import FrameSource, ResultWriter
from taptr_ros.bags.sidecar import QUERIES_FILE, read_queries
from taptr_ros.bags.storage import BagReader
from taptr_ros.bags.topics import GROUND_TRUTH_TOPIC
from taptr_ros.bags.truth import GroundTruth, truth_from_bag, truth_from_pickle

DEFAULT_GRID = 8


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    """Options of :func:`evaluate_bag`.

    Attributes:
        image_topic: the image topic; None = the bag's only Image/CompressedImage topic.
        ground_truth: a TAP-Vid pickle; None = the bag's ``gt_topic`` if it has one.
        use_ground_truth: False ignores any ground truth (GT-free metrics only).
        gt_topic: the bag's ground-truth topic.
        gt_video: the pickle's video name (default: its first).
        query_mode: TAP-Vid query mode with ground truth: ``first`` or ``strided``.
        queries_file: a queries sidecar; None = the bag's own ``taptr_queries.json`` if present.
        points: (N, 2) pixels (x, y) to track from ``query_frame`` (no ground truth).
        query_frame: frame index of ``points`` and of ``grid``.
        grid: an N x N grid of points (no ground truth).
        forward_backward: run the backward pass for FB consistency; None = only without ground truth.
        overlay: write overlay.mp4.
        plots: write the PNG plots.
        storage: storage of the result bag (``sqlite3`` or ``mcap``).
    """

    image_topic: str | None = None
    ground_truth: str | None = None
    use_ground_truth: bool = True
    gt_topic: str = GROUND_TRUTH_TOPIC
    gt_video: str | None = None
    query_mode: str = "first"
    queries_file: str | None = None
    points: np.ndarray | None = None
    query_frame: int = 0
    grid: int | None = None
    forward_backward: bool | None = None
    overlay: bool = True
    plots: bool = True
    storage: str = "sqlite3"


@dataclasses.dataclass(frozen=True)
class BagEvalResult:
    """What :func:`evaluate_bag` computed and where it wrote it."""

    metrics: dict[str, Any]
    out_dir: Path
    files: list[str]
    run: LockstepRun
    queries: np.ndarray


def choose_queries(
    options: EvalOptions, sidecar: Any, size_wh: tuple[int, int], T: int
) -> tuple[np.ndarray, str]:
    """Queries (M, 3) and where they came from, when there is no ground truth."""
    from taptr_ros.bags.make import grid_points

    if not 0 <= options.query_frame < T:
        raise BagGroundTruthError(f"--query-frame {options.query_frame} is outside the bag's {T} frames")
    frame = float(options.query_frame)
    if options.points is not None:
        xy, source = np.asarray(options.points, np.float64).reshape(-1, 2), "given points"
    elif options.grid is not None:
        xy, source = grid_points(*size_wh, options.grid), f"{options.grid}x{options.grid} grid"
    elif sidecar is not None and ("points" in sidecar.queries or "first" in sidecar.queries):
        key = "points" if "points" in sidecar.queries else "first"
        return sidecar.queries[key], f"sidecar {key!r} queries"
    else:
        xy, source = grid_points(*size_wh, DEFAULT_GRID), f"{DEFAULT_GRID}x{DEFAULT_GRID} grid (default)"
    if source != "given points" or frame:
        source += f" at frame {options.query_frame}"
    return np.concatenate([np.full((len(xy), 1), frame), xy], axis=1), source


def _check_sidecar(sidecar: Any, queries: np.ndarray, mode: str, stamps: np.ndarray, topic: str) -> None:
    """Raise BagGroundTruthError when the sidecar's queries for ``mode`` differ from the truth's."""
    if sidecar is None or mode not in sidecar.queries or sidecar.image_topic != topic:
        return
    theirs = sidecar.queries[mode]
    if (
        theirs.shape != queries.shape
        or not np.allclose(theirs, queries, atol=1e-3)
        or not np.array_equal(sidecar.stamps_ns, stamps)
    ):
        raise BagGroundTruthError(
            f"the bag's {QUERIES_FILE} lists other {mode!r} queries or stamps than its ground "
            "truth gives: the sidecar belongs to another bag; remake the bag with "
            "`taptr bag make`, or pass --queries"
        )


def evaluate_bag(
    bag: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    engine_factory: EngineFactory,
    options: EvalOptions = EvalOptions(),
    *,
    meta: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    stamp: Callable[[int], Any] = int,
) -> BagEvalResult:
    """Replay a bag through the engine in lockstep and write the outputs (see the module docstring).

    Args:
        bag: the input bag directory (never modified).
        out_dir: the output folder (created; files in it are replaced).
        engine_factory: ``engine_factory(num_points)`` returns a fresh engine, as the node builds it
            (one per pass), able to hold ``num_points`` points.
        options: see :class:`EvalOptions`.
        meta: stored in metrics.json (tracker, checkpoint, device, ...).
        progress: called with (frames done, frames total) over all passes.
        stamp: converts header stamps (ns) for the engine.

    Raises:
        BagError: any problem with the bag, the ground truth, the queries or the outputs.
    """
    from taptr_ros.eval.runner import evaluate_dataset
    from taptr_ros.eval.tapvid import QUERY_MODES, sample_queries

    if options.query_mode not in QUERY_MODES:
        raise BagError(f"--query-mode {options.query_mode!r}: use one of {', '.join(QUERY_MODES)}")
    bag, out_dir = Path(bag), Path(out_dir)
    meta = dict(meta or {})
    with BagReader(bag) as reader:
        topic = reader.image_topic(options.image_topic)
        stamps, _logs = reader.image_stamps(topic)
        first = next(reader.iter_images(topic))
        T, size_hw = len(stamps), first.rgb.shape[:2]
        size_wh = (size_hw[1], size_hw[0])
        truth: GroundTruth | None = None
        if options.use_ground_truth and options.ground_truth:
            truth = truth_from_pickle(options.ground_truth, T, size_wh, video=options.gt_video)
        elif options.use_ground_truth and options.gt_topic in reader.topics:
            truth = truth_from_bag(reader, options.gt_topic, stamps, size_wh)
    sidecar_path = Path(options.queries_file) if options.queries_file else bag / QUERIES_FILE
    sidecar = read_queries(sidecar_path) if (options.queries_file or sidecar_path.is_file()) else None
    if truth is not None and (options.points is not None or options.grid is not None):
        raise BagError(
            "--points/--grid choose queries for bags without ground truth; this one has ground truth "
            f"({truth.source}): drop them, or pass --no-gt"
        )
    strided = truth is not None and options.query_mode == "strided"
    fb = (truth is None) if options.forward_backward is None else options.forward_backward
    passes = 1 + int(strided) + int(fb)
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], passes * T)

    fps = (T - 1) / ((stamps[-1] - stamps[0]) / 1e9) if T > 1 and stamps[-1] > stamps[0] else 30.0
    out_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".scratch-") as scratch:
        frames = FrameSource(bag, topic, T, size_hw, passes > 1, Path(scratch), tick)
        outputs = ResultWriter(out_dir, size_hw, fps, storage=options.storage, overlay=options.overlay)
        ok = False
        try:

            def track(queries: np.ndarray) -> LockstepRun:
                forward = run_lockstep(
                    frames.forward(),
                    engine_factory(len(queries)),
                    queries,
                    T,
                    on_frame=outputs.frame,
                    stamp=stamp,
                )
                runs["forward"] = forward
                rows, local, last = backward_queries(queries, T)
                if strided and len(rows):
                    backward = run_lockstep(
                        frames.backward(last), engine_factory(len(rows)), local, last + 1, stamp=stamp
                    )
                    return merge_backward(forward, backward, rows, queries[:, 0], last)
                return forward

            if truth is not None:
                video = truth.as_tapvid(bag.name, T, *size_hw)
                gt_queries = sample_queries(
                    video.points.astype(np.float64) * np.array([size_wh]), video.occluded, options.query_mode
                )[0]
                _check_sidecar(sidecar, gt_queries, options.query_mode, stamps, topic)

                def tapvid_tracker(
                    _frames: np.ndarray, queries: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, float]:
                    run = track(queries)
                    runs["run"], runs["queries"] = run, queries
                    return run.tracks, run.occluded, run.seconds

                report = evaluate_dataset([video], tapvid_tracker, options.query_mode, meta=meta)
                runs.setdefault("queries", np.zeros((0, 3)))
                runs.setdefault("run", None)
            else:
                queries, source = choose_queries(options, sidecar, size_wh, T)
                runs["run"], runs["queries"], runs["source"] = track(queries), queries, source
                report = None
            if fb and runs["run"] is not None:
                runs["fb"] = _backward_consistency(
                    frames, engine_factory, runs["forward"], runs["queries"], T, stamp
                )
            ok = True
        finally:
            files = outputs.close(ok)
    if runs["run"] is None:  # ground truth without any visible point: nothing was tracked
        raise BagGroundTruthError(
            f"{truth.source if truth else bag}: no point of the ground truth is ever visible; "
            "there is nothing to evaluate"
        )
    return _finish(bag, out_dir, topic, T, size_hw, truth, report, runs, options, meta, files)


def _backward_consistency(
    frames: FrameSource,
    engine_factory: EngineFactory,
    forward: LockstepRun,
    queries: np.ndarray,
    T: int,
    stamp: Callable[[int], Any],
) -> dict[str, Any]:
    """Track the points visible at the end back to their query frames; see bag_metrics.forward_backward."""
    from taptr_ros.bags.metrics import forward_backward

    alive = ~forward.occluded[:, -1] & (np.rint(queries[:, 0]) < T - 1)
    rows = np.flatnonzero(alive)
    back_xy = np.zeros((len(queries), 2))
    returned = np.zeros(len(queries), bool)
    if len(rows):  # back from the last frame to the earliest query frame of the points alive
        back_queries = np.concatenate([np.zeros((len(rows), 1)), forward.tracks[rows, -1]], axis=1)
        cols = (T - 1 - np.rint(queries[rows, 0])).astype(np.int64)
        backward = run_lockstep(
            frames.backward(), engine_factory(len(rows)), back_queries, int(cols.max()) + 1, stamp=stamp
        )
        back_xy[rows] = backward.tracks[np.arange(len(rows)), cols]
        returned[rows] = ~backward.occluded[np.arange(len(rows)), cols]
    result = forward_backward(queries, back_xy, returned, frames.size_hw)
    result["errors_px"] = np.where(
        returned, np.sqrt(np.sum(np.square(back_xy - queries[:, 1:]), axis=-1)), np.nan
    )
    return result


def _finish(
    bag: Path,
    out_dir: Path,
    topic: str,
    T: int,
    size_hw: tuple[int, int],
    truth: GroundTruth | None,
    report: Any,
    runs: dict[str, Any],
    options: EvalOptions,
    meta: dict[str, Any],
    files: list[str],
) -> BagEvalResult:
    """metrics.json, plots, report.md (see :func:`taptr_ros.bags.report.write_eval_outputs`)."""
    from taptr_ros.bags.report import write_eval_outputs

    data, files = write_eval_outputs(
        bag,
        out_dir,
        topic,
        T,
        size_hw,
        truth,
        report,
        runs,
        query_mode=options.query_mode,
        plots=options.plots,
        meta=meta,
        files=files,
    )
    return BagEvalResult(data, out_dir, files, runs["run"], runs["queries"])
