"""Score any tracker on a TAP-Vid-layout dataset: per-video and overall AJ, <delta^x_avg, OA, ms/frame.

A tracker is a callable ``tracker(video, query_points) -> (tracks, occluded, seconds)``:

* video: (T, H, W, 3) uint8 RGB;
* query_points: (N, 3) float64 (t, x, y), t a frame index, x, y pixels of that frame;
* tracks: (N, T, 2) pixels (x, y) in every frame; occluded: (N, T) bool;
* seconds: wall time the tracker spent tracking (model loading excluded), used for ms/frame.

Each query must be tracked independently of the others (the TAP-Vid protocol). Predictions
and ground truth are rescaled to 256 x 256 before scoring (:mod:`taptr_ros.eval.tapvid`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from taptr_ros.data.tapvid import TapVidVideo, resize_video
from taptr_ros.eval.tapvid import (EVAL_SIZE, EvalError, compute_tapvid_metrics, mean_metrics,
                                   sample_queries, scale_tracks)

Tracker = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, float]]

#: the three headline metrics: (key in the metrics dict, table header)
HEADLINE = (("average_jaccard", "AJ"), ("average_pts_within_thresh", "<d_avg"),
            ("occlusion_accuracy", "OA"))


@dataclasses.dataclass(frozen=True)
class VideoResult:
    """Metrics of one video (fractions in [0, 1]) and the tracker's time on it."""

    name: str
    num_frames: int
    num_queries: int
    seconds: float
    metrics: dict[str, float]

    @property
    def ms_per_frame(self) -> float:
        return 1000.0 * self.seconds / self.num_frames if self.num_frames else float("nan")


@dataclasses.dataclass(frozen=True)
class EvalReport:
    """All videos' results and their means (``overall`` also holds ``ms_per_frame``)."""

    query_mode: str
    videos: list[VideoResult]
    overall: dict[str, float]
    meta: dict[str, object] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict; NaN becomes null."""
        def clean(value: object) -> object:
            if isinstance(value, float) and math.isnan(value):
                return None
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            return value

        return clean({
            "query_mode": self.query_mode,
            "meta": dict(self.meta),
            "overall": dict(self.overall),
            "videos": [{"name": v.name, "num_frames": v.num_frames, "num_queries": v.num_queries,
                        "seconds": v.seconds, "ms_per_frame": v.ms_per_frame, **v.metrics}
                       for v in self.videos],
        })

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """Write `to_dict` as indented JSON to ``path``."""
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.to_dict(), handle, indent=2)
            handle.write("\n")

    def format_table(self) -> str:
        """Plain-text table, metrics in percent, one row per video and an 'overall' row."""
        header = f"{'video':<24} {'frames':>6} {'queries':>7} " + " ".join(
            f"{title:>7}" for _, title in HEADLINE) + f" {'ms/frame':>9}"
        lines = [header, "-" * len(header)]

        def row(name: str, frames: object, queries: object, metrics: dict[str, float], ms: float) -> str:
            values = " ".join(f"{100 * metrics.get(key, float('nan')):>7.1f}" for key, _ in HEADLINE)
            return f"{name[:24]:<24} {frames!s:>6} {queries!s:>7} {values} {ms:>9.2f}"

        for video in self.videos:
            lines.append(row(video.name, video.num_frames, video.num_queries, video.metrics,
                             video.ms_per_frame))
        lines.append("-" * len(header))
        lines.append(row("overall", sum(v.num_frames for v in self.videos),
                         sum(v.num_queries for v in self.videos), self.overall,
                         self.overall.get("ms_per_frame", float("nan"))))
        return "\n".join(lines)


def _check_prediction(name: str, tracks: np.ndarray, occluded: np.ndarray,
                      shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    tracks = np.asarray(tracks, np.float64)
    occluded = np.asarray(occluded, bool)
    if tracks.shape != (*shape, 2) or occluded.shape != shape:
        raise EvalError(f"video {name!r}: tracker returned tracks {tracks.shape} and occluded "
                        f"{occluded.shape}; expected {(*shape, 2)} and {shape}")
    return tracks, occluded


def static_tracker(video: np.ndarray, query_points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The floor a tracker must clear: every query (t, x, y) stays at its (x, y), visible in
    every frame. Returns (N, T, 2) pixel tracks, (N, T) all False, 0 s."""
    q = np.asarray(query_points, np.float64).reshape(-1, 3)
    tracks = np.repeat(q[:, None, 1:], video.shape[0], axis=1)
    return tracks, np.zeros(tracks.shape[:2], bool), 0.0


def evaluate_video(video: TapVidVideo, tracker: Tracker, query_mode: str, *,
                   resize: tuple[int, int] | None = None) -> VideoResult:
    """Sample queries from the ground truth, run the tracker, score in 256 x 256.

    Args:
        video: frames and normalised ground truth.
        tracker: see the module docstring.
        query_mode: ``"first"`` or ``"strided"``.
        resize: optional (height, width) the frames are resized to before the tracker sees them.
    """
    frames = video.video if resize is None else resize_video(video.video, resize)
    H, W = frames.shape[1:3]
    gt_px = video.points.astype(np.float64) * np.array([W, H])
    queries, gt_tracks, gt_occluded = sample_queries(gt_px, video.occluded, query_mode)
    T = frames.shape[0]
    if not len(queries):
        nan = compute_tapvid_metrics(np.zeros((0, 3)), np.zeros((0, T), bool), np.zeros((0, T, 2)),
                                     np.zeros((0, T), bool), np.zeros((0, T, 2)), query_mode)
        return VideoResult(video.name, T, 0, 0.0, nan)
    pred_tracks, pred_occluded, seconds = tracker(frames, queries)
    pred_tracks, pred_occluded = _check_prediction(video.name, pred_tracks, pred_occluded,
                                                   gt_occluded.shape)
    metrics = compute_tapvid_metrics(
        queries, gt_occluded, scale_tracks(gt_tracks, (H, W), EVAL_SIZE),
        pred_occluded, scale_tracks(pred_tracks, (H, W), EVAL_SIZE), query_mode)
    return VideoResult(video.name, T, len(queries), float(seconds), metrics)


def evaluate_dataset(dataset: Mapping[str, TapVidVideo] | Iterable[TapVidVideo], tracker: Tracker,
                     query_mode: str, *, max_videos: int | None = None,
                     resize: tuple[int, int] | None = None,
                     progress: Callable[[VideoResult], None] | None = None,
                     meta: Mapping[str, object] | None = None) -> EvalReport:
    """Evaluate a tracker on every video of a dataset.

    Args:
        dataset: ``{name: TapVidVideo}`` (as from :func:`taptr_ros.data.tapvid.load_tapvid`)
            or an iterable of videos.
        tracker: see the module docstring.
        query_mode: ``"first"`` or ``"strided"``.
        max_videos: stop after this many videos.
        resize: optional (height, width) for the frames given to the tracker.
        progress: called with each video's result as it completes.
        meta: stored as-is in the report (e.g. tracker name, checkpoint, data path).

    Returns:
        The report; ``overall`` holds the mean over videos of each metric and ``ms_per_frame``
        = total tracker seconds / total frames.
    """
    videos = dataset.values() if isinstance(dataset, Mapping) else dataset
    results: list[VideoResult] = []
    for video in videos:
        if max_videos is not None and len(results) >= max_videos:
            break
        result = evaluate_video(video, tracker, query_mode, resize=resize)
        results.append(result)
        if progress is not None:
            progress(result)
    overall = mean_metrics([r.metrics for r in results if r.num_queries])
    frames = sum(r.num_frames for r in results)
    seconds = sum(r.seconds for r in results)
    overall["ms_per_frame"] = 1000.0 * seconds / frames if frames else float("nan")
    return EvalReport(query_mode, results, overall, dict(meta or {}))
