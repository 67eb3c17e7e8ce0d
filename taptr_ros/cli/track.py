"""``taptr track VIDEO``: run the online engine over a video file; overlay MP4 and tracks.

Points are given in pixels of the video's frames (``--points "x,y;x,y"``) and/or as an N x N
grid of cell centres (``--grid N``); they are added after frame 0 was pushed, at frame 0, as a
click on the first frame would be. Frame 0 shows the points themselves; every later frame
shows what the engine publishes for it (in ``committed`` mode up to stride - 1 frames late;
the tail is flushed at the end).

tracks.npz holds: ids (N,) uint32; queries (N, 2) float32 pixels at frame 0; tracks (N, T, 2)
float32 pixels (x, y); visible (N, T) bool; visibility (N, T) float32; stamps (T,) int64
(frame indices); size (2,) (height, width); fps.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from taptr_ros.model.config import PRESETS


def parse_points(text: str) -> np.ndarray:
    """ "x,y;x,y" -> (N, 2) float64 pixels.

    Raises:
        ValueError: not a ';'-separated list of 'x,y' numbers.
    """
    points = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        values = item.split(",")
        if len(values) != 2:
            raise ValueError(f"point {item!r} is not 'x,y'")
        points.append([float(v) for v in values])
    if not points:
        raise ValueError(f"no point in {text!r}: give 'x,y;x,y'")
    return np.asarray(points, np.float64)


def grid_points(n: int, width: int, height: int) -> np.ndarray:
    """(n*n, 2) centres of an n x n grid of equal cells over a width x height frame, row-major."""
    centres = lambda size: (np.arange(n) + 0.5) * (size / n) - 0.5  # noqa: E731 - pixel centres
    xs, ys = np.meshgrid(centres(width), centres(height))
    return np.stack([xs.ravel(), ys.ravel()], axis=1).clip(0, [width - 1, height - 1])


def _frame_count(path: str) -> int | None:
    import cv2

    capture = cv2.VideoCapture(path)
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        capture.release()
    return count or None


def run(args: argparse.Namespace) -> int:
    """Track, write the overlay and/or the tracks; returns the exit code."""
    from tqdm import tqdm

    from taptr_ros.data.errors import DataError
    from taptr_ros.data.video import draw_tracks, iter_frames, video_fps, write_video
    from taptr_ros.tracking.errors import TrackerError
    from taptr_ros.tracking.factory import build_tracker
    from taptr_ros.tracking.options import TrackerOptions

    if not args.out and not args.tracks:
        print("taptr track: nothing to write: give --out OUT.mp4 and/or --tracks TRACKS.npz", file=sys.stderr)
        return 2
    if not args.points and not args.grid:
        print("taptr track: no point to track: give --points 'x,y;x,y' and/or --grid N", file=sys.stderr)
        return 2
    try:
        given = parse_points(args.points) if args.points else np.zeros((0, 2))
    except ValueError as exc:
        print(f"taptr track: --points: {exc}", file=sys.stderr)
        return 2
    try:
        options = TrackerOptions(mode=args.mode, pad_queries_to=args.pad,
                                 max_points=max(1024, len(given) + args.grid ** 2))
        tracker = build_tracker(args.checkpoint, preset=args.preset, device=args.device, options=options)
        fps = video_fps(args.video) or 30.0
        total = _frame_count(args.video)
        if args.max_frames:
            total = min(total or args.max_frames, args.max_frames)
        tracks: dict[int, tuple] = {}  # frame index -> (xy, visible, visibility)
        state = {"ids": None, "queries": None, "size": None}
        bar = tqdm(total=total, unit="frame", desc="tracking", disable=args.quiet)

        def overlays():
            pending: dict[int, np.ndarray] = {}
            for t, frame in enumerate(iter_frames(args.video, max_frames=args.max_frames)):
                results = tracker.push(frame)
                pending[t] = frame
                if t == 0:
                    h, w = frame.shape[:2]
                    queries = np.concatenate([given, grid_points(args.grid, w, h) if args.grid else given[:0]])
                    ids, _ = tracker.add_points(queries)
                    state.update(ids=ids, queries=queries.astype(np.float32), size=(h, w))
                for result in results:
                    yield from _emit(result, pending, tracks, state, draw_tracks)
                bar.update(1)
                if results:
                    bar.set_postfix(points=len(state["ids"]), ms=f"{results[-1].timings.total:.0f}")
            for result in tracker.flush():
                yield from _emit(result, pending, tracks, state, draw_tracks)

        if args.out:
            write_video(args.out, overlays(), fps)
        else:
            for _ in overlays():
                pass
        bar.close()
    except (TrackerError, DataError) as exc:
        print(f"taptr track: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.tracks:
        _save(args.tracks, tracks, state, fps)
    n, t = len(state["ids"]), len(tracks)
    print(f"tracked {n} points over {t} frames" + (f"; overlay {args.out}" if args.out else "")
          + (f"; tracks {args.tracks}" if args.tracks else ""))
    return 0


def _emit(result, pending, tracks, state, draw_tracks):
    """Record one published frame (frame 0: the queries) and yield its overlay."""
    ids = state["ids"]
    k = result.frame_index
    if k == 0:
        xy, visible, prob = state["queries"], np.ones(len(ids), bool), np.ones(len(ids), np.float32)
    else:
        pos = np.searchsorted(ids, result.ids)  # ids ascend; results hold all of them
        xy = np.zeros((len(ids), 2), np.float32)
        visible, prob = np.zeros(len(ids), bool), np.zeros(len(ids), np.float32)
        xy[pos], visible[pos], prob[pos] = result.xy, result.visible, result.visibility
    tracks[k] = (xy, visible, prob)
    yield draw_tracks(pending.pop(k), ids, xy, visible)


def _save(path: str, tracks: dict, state: dict, fps: float) -> None:
    frames = sorted(tracks)
    xy = np.stack([tracks[k][0] for k in frames], axis=1)
    np.savez(path, ids=state["ids"], queries=state["queries"], tracks=xy.astype(np.float32),
             visible=np.stack([tracks[k][1] for k in frames], axis=1),
             visibility=np.stack([tracks[k][2] for k in frames], axis=1),
             stamps=np.asarray(frames, np.int64), size=np.asarray(state["size"], np.int64), fps=fps)


def register(subparsers) -> None:
    """Adds ``track`` to the ``taptr`` command line."""
    p = subparsers.add_parser("track", help="track points through a video file with the online engine",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", help="input video file (anything OpenCV/FFmpeg reads)")
    p.add_argument("--points", default="", help="pixels of the first frame: 'x,y;x,y'")
    p.add_argument("--grid", type=int, default=0, metavar="N", help="also track an N x N grid")
    p.add_argument("--checkpoint", default="default", help="checkpoint file or 'default' (models/default.pt)")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="preset for an official checkpoint (default taptrv2)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--mode", default="immediate", choices=["immediate", "committed"],
                   help="engine mode (default immediate: every frame answered at once)")
    p.add_argument("--pad", type=int, default=0, metavar="N", help="pad the queries to N with dummies")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--out", default=None, metavar="OUT.mp4", help="overlay video to write")
    p.add_argument("--tracks", default=None, metavar="TRACKS.npz", help="tracks to write")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
