"""``taptr bag make``: write a bag from a video or a TAP-Vid pickle."""

from __future__ import annotations

import argparse
import sys

from taptr_ros.bags.topics import DEFAULT_IMAGE_TOPIC, GROUND_TRUTH_TOPIC, STORAGES
from taptr_ros.cli.bag.common import fail


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``make`` to the ``taptr bag`` actions."""
    make = commands.add_parser(
        "make",
        help="write a bag from a video file or a TAP-Vid pickle",
        description="Write a rosbag2 bag (sqlite3 or mcap) with the frames as sensor_msgs/Image or "
        "CompressedImage, stamped at the source frame rate. From a TAP-Vid pickle also the ground "
        f"truth on {GROUND_TRUTH_TOPIC} (taptr_ros/TrackedPoints) and its queries in "
        "BAG/taptr_queries.json.",
    )
    make.add_argument("source", metavar="SOURCE", help="video file (mp4, avi, ...) or TAP-Vid pickle (.pkl)")
    make.add_argument("--out", required=True, metavar="BAG", help="bag directory to create")
    make.add_argument(
        "--storage", choices=STORAGES, default="sqlite3", help="storage plugin (default: sqlite3)"
    )
    make.add_argument(
        "--compressed",
        nargs="?",
        const="jpeg",
        choices=["jpeg", "png"],
        help="write sensor_msgs/CompressedImage (jpeg unless png is given)",
    )
    make.add_argument(
        "--jpeg-quality", type=int, default=95, metavar="Q", help="jpeg quality 0..100 (default: 95)"
    )
    make.add_argument(
        "--topic",
        help=f"image topic (default: {DEFAULT_IMAGE_TOPIC}, or {DEFAULT_IMAGE_TOPIC}/compressed with "
        "--compressed, as image_transport names it)",
    )
    make.add_argument("--encoding", choices=["rgb8", "bgr8"], default="rgb8", help="raw image encoding")
    make.add_argument(
        "--pad-rows",
        type=int,
        default=0,
        metavar="BYTES",
        help="pad every row with BYTES zero bytes (step > width * 3), to test consumers",
    )
    make.add_argument(
        "--fps", type=float, help="frame rate of the stamps (default: the video's; 30 for a pickle)"
    )
    make.add_argument("--frame-id", default="camera", help="header frame_id (default: camera)")
    make.add_argument("--video", metavar="NAME", help="the pickle's video to use (default: its first)")
    make.add_argument("--max-frames", type=int, metavar="N", help="only the first N frames")
    make.add_argument("--points", metavar="'x,y;x,y'", help="queries at frame 0 for the sidecar (pixels)")
    make.add_argument(
        "--grid", type=int, metavar="N", help="an N x N grid of queries at frame 0 for the sidecar"
    )
    make.add_argument("--force", action="store_true", help="replace BAG if it exists")
    make.set_defaults(func=run_make)


def run_make(args: argparse.Namespace) -> int:
    """``taptr bag make``; returns the exit code."""
    from tqdm import tqdm

    from taptr_ros.bags.errors import BagError
    from taptr_ros.bags.make import MakeOptions, make_bag, parse_points

    options = MakeOptions(
        storage=args.storage,
        topic=args.topic or (DEFAULT_IMAGE_TOPIC + ("/compressed" if args.compressed else "")),
        compression=args.compressed,
        jpeg_quality=args.jpeg_quality,
        encoding=args.encoding,
        row_padding=args.pad_rows,
        fps=args.fps,
        frame_id=args.frame_id,
        max_frames=args.max_frames,
    )
    try:
        options.check()
        points = parse_points(args.points) if args.points else None
        with tqdm(desc="bag make", unit="frame", file=sys.stderr, leave=False) as bar:
            summary = make_bag(
                args.source,
                args.out,
                options,
                video=args.video,
                points=points,
                grid=args.grid,
                overwrite=args.force,
                progress=lambda n: bar.update(n - bar.n),
            )
    except BagError as error:
        return fail("make", error)
    print(
        f"wrote {summary.path}: {summary.num_frames} frames {summary.width}x{summary.height} at "
        f"{summary.fps:g} fps on {', '.join(f'{t} ({m})' for t, m in summary.topics.items())}"
        + (f"; {summary.num_points} points" if summary.num_points else "")
    )
    return 0
