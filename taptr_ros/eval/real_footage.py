"""Tracking quality on real footage without labels: forward-backward error, survival, still drift.

For a video (its first ``frames`` frames, resized to ``height`` pixels high, aspect kept):

* a ``grid`` x ``grid`` lattice of query points at frame 0 (cell centres of the frame);
* **forward**: each tracker follows them to the last frame; **survival** = share of points it
  calls visible in the last frame;
* **backward**: from where the forward pass left each point in the last frame, the tracker
  follows it over the reversed video back to frame 0; the **forward-backward error** of a
  point = distance (pixels of the resized video) between where it comes back and where it
  started. A perfect tracker returns every point exactly; a point lost on the way does not;
* **still**: frame 0 repeated ``still_frames`` times; **drift** of a point = its largest
  distance from the query over those frames (a tracker should not move anything); the median
  drift of every still frame is kept too (``still_by_frame_px``: TAPTR's grows at each window
  boundary, every 4 frames, which is how the drift was traced to the window hand-off);
* **against a reference** (``reference=``, the CLI's is LK): on the points the reference brings
  back within 1 px (its forward track is then taken as the truth), how far each tracker ends
  from the reference's last position, and which share of the reference's displacement it
  followed (median over those points of |own displacement| / |reference displacement|, points
  the reference moves at least 1 px). A tracker that lags behind a moving camera follows less
  than 100%; this is how the default model's failure on apple.mp4 was traced to motion it does
  not follow past about frame 16 (session 11).

Both trackers get the same queries: TAPTR through the online engine tracking all points
jointly, as the node does, and pyramidal Lucas-Kanade (`lk_baseline`). Any callable with the
`taptr_ros.eval.runner.Tracker` signature works.

`shipping_verdict` is the real-footage half of the rule that decides whether a trained
checkpoint replaces the shipped model (models/README.md, session 13): measured against the
shipped model's rows (`load_results` of an earlier ``--out`` file), it must end closer to the
reference's track on every video where the reference brings enough points back, and its
still drift may not grow by more than a margin on any video. The forward-backward error is
not a gate: a tracker that never moves has an FB error of 0.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping

import cv2
import numpy as np

from taptr_ros.eval.runner import Tracker


@dataclasses.dataclass(frozen=True)
class FootageResult:
    """One tracker on one video. Distances in pixels of the resized video."""

    video: str
    tracker: str
    size_hw: tuple[int, int]
    num_frames: int
    num_points: int
    fb_median_px: float      # median forward-backward error over all points
    fb_within_2px: float     # share of points that come back within 2 px
    survival: float          # share called visible in the last frame (forward pass)
    still_median_px: float   # median over points of the largest drift on the still video
    still_max_px: float      # largest drift of any point on the still video
    still_by_frame_px: tuple[float, ...] = ()  # median over points of the drift at each still frame
    reference: str = ""                    # label of the reference tracker ("" = none)
    reference_points: int = 0              # points the reference brings back within 1 px
    off_reference_px: float = float("nan")  # median distance to the reference's track, last frame
    motion_followed: float = float("nan")  # median share of the reference's displacement followed


def grid_queries(grid: int, size_hw: tuple[int, int]) -> np.ndarray:
    """(grid*grid, 3) float64 (t=0, x, y): cell centres of a grid x grid lattice, pixels."""
    h, w = size_hw
    xs = (np.arange(grid) + 0.5) * w / grid - 0.5
    ys = (np.arange(grid) + 0.5) * h / grid - 0.5
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([np.zeros(gx.size), gx.ravel(), gy.ravel()], axis=1)


def resize_to_height(video: np.ndarray, height: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, height, round(W * height / H), 3), area interpolation."""
    t, h, w = video.shape[:3]
    width = max(2, int(round(w * height / h)))
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in video])


def measure(name: str, video: np.ndarray, trackers: Mapping[str, Tracker], *, grid: int = 8,
            still_frames: int = 20, reference: str | None = None) -> list[FootageResult]:
    """Every tracker of `trackers` on `video` (T, H, W, 3) uint8, already resized.

    `reference`: label of one of `trackers` whose forward track, on the points it brings back
    within 1 px, is the pseudo truth of ``off_reference_px`` and ``motion_followed``.
    """
    T, H, W = video.shape[:3]
    queries = grid_queries(grid, (H, W))
    still = np.repeat(video[:1], still_frames, axis=0)
    runs = {label: _run(track, video, still, queries) for label, track in trackers.items()}
    if reference is not None and reference not in runs:
        raise KeyError(f"reference tracker {reference!r} is not among {sorted(runs)}")
    results = []
    for label, (fwd, fwd_occ, fb, still_drift) in runs.items():
        drift = still_drift.max(axis=1)
        versus = {}
        if reference is not None:
            ref_fwd, _, ref_fb, _ = runs[reference]
            kept = ref_fb < 1.0
            off = np.linalg.norm(fwd[kept, -1] - ref_fwd[kept, -1], axis=-1)
            ref_move = np.linalg.norm(ref_fwd[kept, -1] - queries[kept, 1:], axis=-1)
            own_move = np.linalg.norm(fwd[kept, -1] - queries[kept, 1:], axis=-1)
            moved = ref_move >= 1.0
            versus = dict(reference=reference, reference_points=int(kept.sum()),
                          off_reference_px=float(np.median(off)) if kept.any() else float("nan"),
                          motion_followed=(float(np.median(own_move[moved] / ref_move[moved]))
                                           if moved.any() else float("nan")))
        results.append(FootageResult(
            video=name, tracker=label, size_hw=(H, W), num_frames=T, num_points=len(queries),
            fb_median_px=float(np.median(fb)), fb_within_2px=float(np.mean(fb < 2.0)),
            survival=float(np.mean(~fwd_occ[:, -1])), still_median_px=float(np.median(drift)),
            still_max_px=float(drift.max()),
            still_by_frame_px=tuple(float(v) for v in np.median(still_drift, axis=0)), **versus))
    return results


def _run(track: Tracker, video: np.ndarray, still: np.ndarray, queries: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One tracker's passes: forward tracks (N, T, 2) px and occlusion (N, T) bool, the
    forward-backward error (N,) px and the still video's drift (N, T_still) px."""
    H, W = video.shape[1:3]
    fwd, fwd_occ, _ = track(video, queries)
    back_queries = np.concatenate([np.zeros((len(queries), 1)), fwd[:, -1].astype(np.float64)], axis=1)
    back_queries[:, 1] = np.clip(back_queries[:, 1], 0, W - 1)
    back_queries[:, 2] = np.clip(back_queries[:, 2], 0, H - 1)
    bwd, _, _ = track(np.ascontiguousarray(video[::-1]), back_queries)
    fb = np.linalg.norm(bwd[:, -1] - queries[:, 1:], axis=-1)
    still_tracks, _, _ = track(still, queries)
    still_drift = np.linalg.norm(still_tracks - queries[:, None, 1:], axis=-1)
    return fwd, fwd_occ, fb, still_drift


def format_results(results: list[FootageResult]) -> str:
    """A markdown table, one row per (video, tracker)."""
    lines = ["| video | tracker | frames | size | points | FB median px | FB < 2 px | survival | "
             "still drift median / max px |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.video} | {r.tracker} | {r.num_frames} | {r.size_hw[1]}x{r.size_hw[0]} | "
                     f"{r.num_points} | {r.fb_median_px:.2f} | {100 * r.fb_within_2px:.0f}% | "
                     f"{100 * r.survival:.0f}% | {r.still_median_px:.2f} / {r.still_max_px:.2f} |")
    lines.append("")
    for r in results:
        if r.reference and r.reference != r.tracker and not r.reference_points:
            lines.append(f"{r.video} {r.tracker}: {r.reference} brings no point back within 1 px")
        elif r.reference and r.reference != r.tracker:
            lines.append(f"{r.video} {r.tracker}: on the {r.reference_points} points {r.reference} brings "
                         f"back within 1 px, {r.off_reference_px:.2f} px off its track at the last frame, "
                         f"{100 * r.motion_followed:.0f}% of its motion followed")
    lines.append("")
    lines.append("still drift by frame (median over points, px):")
    for r in results:
        lines.append(f"  {r.video} {r.tracker}: " + " ".join(f"{v:.1f}" for v in r.still_by_frame_px))
    return "\n".join(lines)


def load_results(path: str | os.PathLike[str]) -> list[FootageResult]:
    """The rows of a ``taptr eval real --out`` file.

    Raises:
        ValueError: not such a file (unreadable, not JSON, or rows without these fields).
    """
    try:
        with open(path) as f:
            rows = json.load(f)
        return [FootageResult(**{**row, "size_hw": tuple(row["size_hw"]),
                                 "still_by_frame_px": tuple(row.get("still_by_frame_px", ()))})
                for row in rows]
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{path} is not a `taptr eval real --out` file: {type(error).__name__}: {error}") from None


STILL_MARGIN_PX = 0.2  # the shipping rule's allowance on the still drift (models/README.md)
MIN_REFERENCE_POINTS = 20  # reference points a video needs before following it is judged


def shipping_verdict(candidate: list[FootageResult], shipped: list[FootageResult], *,
                     tracker: str = "taptr", still_margin_px: float = STILL_MARGIN_PX,
                     min_reference_points: int = MIN_REFERENCE_POINTS) -> tuple[bool, list[str]]:
    """Whether `candidate` may replace `shipped` on real footage, and one line per video.

    Per video of `candidate` (rows of `tracker`): its still drift median may exceed the shipped
    model's by at most `still_margin_px`; where the reference brings back at least
    `min_reference_points` points, its distance to the reference's track at the last frame
    (``off_reference_px``) must be below the shipped model's. A video the shipped rows lack
    fails (nothing to compare with). Compare rows of the same grid and frames only.

    Returns:
        (passed, lines): passed only if every video passes; lines end in "pass" or "FAIL (why)".
    """
    before = {r.video: r for r in shipped if r.tracker == tracker}
    passed, lines = True, []
    for new in (r for r in candidate if r.tracker == tracker):
        old = before.get(new.video)
        if old is None:
            passed = False
            lines.append(f"{new.video}: FAIL (not among the shipped model's rows)")
            continue
        why = []
        still = f"still drift {new.still_median_px:.2f} px (shipped {old.still_median_px:.2f})"
        if new.still_median_px > old.still_median_px + still_margin_px + 1e-9:
            why.append(f"still drift above the shipped model's + {still_margin_px:g} px")
        versus = ""
        if new.reference_points >= min_reference_points:
            versus = (f", {new.off_reference_px:.1f} px off {new.reference} on its {new.reference_points} "
                      f"points (shipped {old.off_reference_px:.1f})")
            if not new.off_reference_px < old.off_reference_px:
                why.append(f"not closer to {new.reference}'s track")
        passed = passed and not why
        lines.append(f"{new.video}: {still}{versus}: " + (f"FAIL ({'; '.join(why)})" if why else "pass"))
    return passed, lines
