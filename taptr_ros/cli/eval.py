"""``taptr eval tapvid|real``: TAP-Vid metrics of TAPTR or the Lucas-Kanade baseline on a TAP-Vid
pickle; on real footage without labels, forward-backward error, survival and still drift of TAPTR
beside Lucas-Kanade (`taptr_ros.eval.real_footage`)."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from taptr_ros.eval.tapvid import QUERY_MODES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``eval`` and its ``tapvid`` subcommand."""
    parser = subparsers.add_parser("eval", help="evaluation: TAP-Vid metrics")
    commands = parser.add_subparsers(dest="eval_command", required=True, metavar="BENCHMARK")
    tapvid = commands.add_parser(
        "tapvid", help="score a tracker on a TAP-Vid-layout pickle",
        description="Score TAPTR (default) or a baseline on a TAP-Vid pickle: AJ, <delta^x_avg, OA per "
                    "video and overall, coordinates scaled to 256x256. Prints a table, optionally "
                    "writes JSON.")
    tapvid.add_argument("data", metavar="DATA.pkl", help="TAP-Vid pickle (ours, DAVIS, Kinetics, RGB-Stacking)")
    tapvid.add_argument("--checkpoint", default="default",
                        help="TAPTR checkpoint path, or 'default' for the shipped model (default: default)")
    tapvid.add_argument("--device", default="auto", help="torch device for TAPTR: auto, cpu, cuda, cuda:1, ...")
    tapvid.add_argument("--baseline", choices=["lk"], help="score a classical baseline instead of TAPTR")
    tapvid.add_argument("--query-mode", choices=QUERY_MODES, default="first",
                        help="query sampling (default: first)")
    tapvid.add_argument("--max-videos", type=int, metavar="N", help="only the first N videos")
    tapvid.add_argument("--resize", type=int, metavar="S",
                        help="resize frames to SxS before tracking (the benchmark uses 256)")
    tapvid.add_argument("--out", metavar="RESULT.json", help="write the report as JSON")
    tapvid.set_defaults(func=run_tapvid)

    real = commands.add_parser(
        "real", help="real footage without labels: forward-backward error, survival, still drift vs LK",
        description="For each video (or rosbag2 bag directory): an NxN grid at frame 0 tracked forward "
                    "and back by TAPTR (the node's way, all points jointly) and by Lucas-Kanade; the "
                    "median distance where points come back, the share visible at the end, and the "
                    "drift on the first frame repeated (a still camera); on the points LK brings back "
                    "within 1 px, how far TAPTR ends from LK's track and which share of its motion it "
                    "followed.")
    real.add_argument("videos", nargs="+", metavar="VIDEO", help="video files or bag directories")
    real.add_argument("--checkpoint", default="default", help="TAPTR checkpoint (default: default)")
    real.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1, ...")
    real.add_argument("--frames", type=int, default=40, help="first N frames of each video (default 40)")
    real.add_argument("--height", type=int, default=256, help="resize to this height, aspect kept (default 256)")
    real.add_argument("--grid", type=int, default=8, help="N: an NxN grid of queries (default 8)")
    real.add_argument("--still-frames", type=int, default=20, help="length of the still video (default 20)")
    real.add_argument("--passes", type=int, default=None, metavar="K",
                      help="decoder passes per window instead of the checkpoint's (1 = official)")
    real.add_argument("--out", metavar="RESULT.json", help="also write the rows as JSON")
    real.add_argument("--against", metavar="SHIPPED.json",
                      help="an earlier --out of the shipped model (same videos, grid and frames): "
                           "also print the real-footage half of the shipping rule (models/README.md)")
    real.set_defaults(func=run_real)


def _tracker(args: argparse.Namespace) -> tuple[object, dict[str, object]]:
    """The tracker callable and its description; raises ImportError if the engine is missing."""
    if args.baseline == "lk":
        from taptr_ros.eval.lk_baseline import LKConfig, make_lk_tracker

        config = LKConfig()
        return make_lk_tracker(config), {"tracker": "lk", "lk_config": dataclasses.asdict(config)}
    from taptr_ros.eval.engine_tracker import make_engine_tracker

    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    meta = {"tracker": "taptr", "checkpoint": args.checkpoint, "device": device}
    return make_engine_tracker(args.checkpoint, device), meta


def run_tapvid(args: argparse.Namespace) -> int:
    """Load data, run the tracker, print the table, write JSON; returns the exit code."""
    from tqdm import tqdm

    from taptr_ros.data.errors import DataError
    from taptr_ros.data.tapvid import load_tapvid
    from taptr_ros.eval.runner import evaluate_dataset

    if args.max_videos is not None and args.max_videos < 1:
        print("taptr eval tapvid: --max-videos must be at least 1", file=sys.stderr)
        return 2
    try:
        tracker, meta = _tracker(args)
    except ImportError as error:
        print("taptr eval tapvid: the TAPTR engine tracker cannot be imported "
              f"(taptr_ros.eval.engine_tracker: {error}); score the Lucas-Kanade baseline with "
              "--baseline lk meanwhile.", file=sys.stderr)
        return 2
    except Exception as error:  # the engine's own errors (checkpoint, device) carry their fix
        print(f"taptr eval tapvid: cannot start TAPTR: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    try:
        dataset = load_tapvid(args.data, max_videos=args.max_videos)
    except DataError as error:
        print(f"taptr eval tapvid: {error}", file=sys.stderr)
        return 1
    resize = (args.resize, args.resize) if args.resize else None
    meta.update({"data": str(args.data), "resize": resize})
    with tqdm(total=len(dataset), desc=f"eval {meta['tracker']} {args.query_mode}", unit="video",
              file=sys.stderr, leave=False) as bar:
        report = evaluate_dataset(dataset, tracker, args.query_mode, resize=resize,
                                  progress=lambda _result: bar.update(1), meta=meta)
    print(f"{meta['tracker']} on {args.data} (query mode {args.query_mode}; metrics in %)")
    print(report.format_table())
    if args.out:
        report.write_json(args.out)
        print(f"wrote {args.out}")
    return 0


def _read_footage(path: str, max_frames: int):
    """(T, H, W, 3) uint8 frames of a video file or of a bag directory's image topic."""
    import os

    import numpy as np

    if os.path.isdir(path):
        from taptr_ros.bags.storage import BagReader

        with BagReader(path) as bag:
            frames = []
            for image in bag.iter_images():
                frames.append(image.rgb)
                if len(frames) >= max_frames:
                    break
        return np.stack(frames)
    from taptr_ros.data.video import read_video

    return read_video(path, max_frames=max_frames)[0]


def run_real(args: argparse.Namespace) -> int:
    """Measure every video with TAPTR and LK; print the table; returns the exit code."""
    import json
    import os

    from taptr_ros.eval.engine_tracker import make_engine_tracker
    from taptr_ros.eval.lk_baseline import make_lk_tracker
    from taptr_ros.eval.real_footage import (MIN_REFERENCE_POINTS, STILL_MARGIN_PX, format_results,
                                             load_results, measure, resize_to_height, shipping_verdict)

    if min(args.frames, args.grid, args.height, args.still_frames) < 2:
        print("taptr eval real: --frames, --grid, --height and --still-frames must be at least 2",
              file=sys.stderr)
        return 2
    shipped = None
    if args.against:  # read first: a bad file should not cost minutes of tracking
        try:
            shipped = load_results(args.against)
        except ValueError as error:
            print(f"taptr eval real: --against: {error}", file=sys.stderr)
            return 2
    try:
        taptr = make_engine_tracker(args.checkpoint, args.device, backward=False, independent=False,
                                    window_passes=args.passes)
    except Exception as error:  # the engine's own errors (checkpoint, device) carry their fix
        print(f"taptr eval real: cannot start TAPTR: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    trackers = {"taptr": taptr, "lk": make_lk_tracker()}
    results = []
    for path in args.videos:
        try:
            video = resize_to_height(_read_footage(path, args.frames), args.height)
        except Exception as error:  # unreadable video or bag: say which and why
            print(f"taptr eval real: cannot read {path}: {error}", file=sys.stderr)
            return 1
        name = os.path.basename(os.path.normpath(path))
        results += measure(name, video, trackers, grid=args.grid, still_frames=args.still_frames,
                           reference="lk")
        print(f"measured {name}", file=sys.stderr, flush=True)
    print(f"checkpoint {args.checkpoint}; distances in pixels at {args.height} px high")
    print(format_results(results))
    if shipped is not None:
        passed, lines = shipping_verdict(results, shipped)
        print(f"\nagainst {args.against} (still drift +{STILL_MARGIN_PX:g} px at most; closer to lk where "
              f"it brings back {MIN_REFERENCE_POINTS} points or more):")
        print("\n".join(f"  {line}" for line in lines))
        print(f"real-footage rule: {'pass' if passed else 'FAIL'}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump([dataclasses.asdict(r) for r in results], f, indent=1)
        print(f"wrote {args.out}")
    return 0
