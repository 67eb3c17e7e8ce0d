"""``taptr bag play``: replay a bag live through a running node."""

from __future__ import annotations

import argparse
import sys

from taptr_ros.cli.bag.common import engine_arguments, fail


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``play`` to the ``taptr bag`` actions."""
    play = commands.add_parser(
        "play",
        help="replay a bag live into a running taptr_tracker and measure it",
        description="Publish the bag's images with rclpy at RATE x real time (and /clock), add the queries "
        "through ~/add_points, record ~/tracks, and report end-to-end latency percentiles, dropped "
        "frames and, with ground truth, the metrics of `taptr bag eval`.",
    )
    play.add_argument("bag", metavar="BAG", help="bag directory")
    play.add_argument("--rate", type=float, default=1.0, metavar="R", help="playback rate (default: 1.0)")
    play.add_argument(
        "--out", metavar="DIR", help="write metrics.json, report.md and the recorded tracks bag here"
    )
    play.add_argument(
        "--image-topic", metavar="T", help="image topic in the bag (default: its only image topic)"
    )
    play.add_argument(
        "--publish-topic", metavar="T", help="topic to publish the images on (default: the bag's topic)"
    )
    play.add_argument(
        "--tracker",
        default="/taptr_tracker",
        metavar="NODE",
        help="the tracker node's name: services NODE/add_points, topic NODE/tracks "
        "(default: /taptr_tracker)",
    )
    play.add_argument(
        "--gt", metavar="GT.pkl", help="TAP-Vid pickle with the ground truth (default: the bag's)"
    )
    play.add_argument("--gt-video", metavar="NAME", help="the pickle's video")
    play.add_argument("--no-gt", action="store_true", help="ignore ground truth")
    from taptr_ros.eval.tapvid import QUERY_MODES

    play.add_argument(
        "--query-mode", choices=QUERY_MODES[:1], default="first", help="TAP-Vid query mode (live: first only)"
    )
    play.add_argument(
        "--points", metavar="'x,y;x,y'", help="track these pixels from frame 0 (no ground truth)"
    )
    play.add_argument(
        "--grid", type=int, metavar="N", help="track an N x N grid from frame 0 (no ground truth)"
    )
    play.add_argument(
        "--sync",
        action="store_true",
        help="publish each frame only after the tracker answered the previous one (no drops; the "
        "numbers then equal `taptr bag eval`'s); --rate is ignored",
    )
    play.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    play.add_argument(
        "--wait",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds to wait for the tracker's services (default: 30)",
    )
    play.add_argument(
        "--start-node",
        action="store_true",
        help="start taptr-tracker as a subprocess on an isolated ROS domain for this run",
    )
    engine_arguments(play)
    play.add_argument(
        "--node-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra --ros-args argument for --start-node (repeatable), e.g. -p mode:=committed",
    )
    play.set_defaults(func=run_play)


def run_play(args: argparse.Namespace) -> int:
    """``taptr bag play``; returns the exit code."""
    from taptr_ros.bags.errors import BagError
    from taptr_ros.bags.make import parse_points

    if not args.rate > 0:
        return fail("play", ValueError("--rate must be positive"), 2)
    try:
        points = parse_points(args.points) if args.points else None
    except BagError as error:
        return fail("play", error, 2)
    from taptr_ros.ros.tools.bag_play import PlayOptions, play_bag

    options = PlayOptions(
        rate=args.rate,
        image_topic=args.image_topic,
        publish_topic=args.publish_topic,
        tracker=args.tracker,
        ground_truth=args.gt,
        gt_video=args.gt_video,
        use_ground_truth=not args.no_gt,
        points=points,
        grid=args.grid,
        clock=not args.no_clock,
        wait_s=args.wait,
        sync=args.sync,
        start_node=args.start_node,
        checkpoint=args.checkpoint,
        device=args.device,
        node_args=tuple(args.node_arg),
    )
    try:
        result = play_bag(args.bag, options, out_dir=args.out, log=lambda text: print(text, file=sys.stderr))
    except BagError as error:
        return fail("play", error)
    print(result.summary())
    return 0
