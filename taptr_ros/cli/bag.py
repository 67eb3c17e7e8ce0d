"""``taptr bag make|eval|play``: rosbag2 bags in, tracking reports out (no ROS install needed).

Every bag problem is a :class:`taptr_ros.eval.bag_errors.BagError` whose message names the fix;
it is printed on one line and the command exits with 1 (2 for bad usage).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from taptr_ros.eval.bag_types import DEFAULT_IMAGE_TOPIC, GROUND_TRUTH_TOPIC, STORAGES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bag`` and its ``make``, ``eval`` and ``play`` subcommands."""
    parser = subparsers.add_parser("bag", help="rosbag2 tools: make a bag, evaluate on it, replay it live")
    commands = parser.add_subparsers(dest="bag_command", required=True, metavar="ACTION")
    _register_make(commands)
    _register_eval(commands)
    _register_play(commands)


def _register_make(commands: argparse._SubParsersAction) -> None:
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


def _register_eval(commands: argparse._SubParsersAction) -> None:
    from taptr_ros.eval.tapvid import QUERY_MODES

    ev = commands.add_parser(
        "eval",
        help="lockstep evaluation of the tracker on a bag",
        description="Replay a bag through the node's engine frame by frame (deterministic, nothing dropped) and "
        "write into DIR: tracks/ (result bag, /taptr_tracker/tracks), metrics.json (TAP-Vid metrics "
        "with ground truth, else survival and forward-backward consistency; fps), report.md, "
        "PNG plots and overlay.mp4. The input bag is only read.",
    )
    ev.add_argument("bag", metavar="BAG", help="bag directory (sqlite3 or mcap)")
    ev.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    ev.add_argument("--image-topic", metavar="T", help="image topic (default: the bag's only image topic)")
    ev.add_argument(
        "--gt",
        metavar="GT.pkl",
        help=f"TAP-Vid pickle with the ground truth (default: the bag's {GROUND_TRUTH_TOPIC}, if any)",
    )
    ev.add_argument("--gt-video", metavar="NAME", help="the pickle's video (default: its first)")
    ev.add_argument(
        "--gt-topic", default=GROUND_TRUTH_TOPIC, help=f"ground-truth topic (default: {GROUND_TRUTH_TOPIC})"
    )
    ev.add_argument(
        "--no-gt", action="store_true", help="ignore ground truth: survival and forward-backward only"
    )
    ev.add_argument(
        "--query-mode", choices=QUERY_MODES, default="first", help="TAP-Vid query mode (default: first)"
    )
    ev.add_argument(
        "--queries", metavar="JSON", help="queries sidecar (default: BAG/taptr_queries.json if present)"
    )
    ev.add_argument(
        "--points", metavar="'x,y;x,y'", help="track these pixels from --query-frame (no ground truth)"
    )
    ev.add_argument(
        "--grid", type=int, metavar="N", help="track an N x N grid from --query-frame (no ground truth)"
    )
    ev.add_argument(
        "--query-frame", type=int, default=0, metavar="T", help="frame of --points/--grid (default: 0)"
    )
    ev.add_argument(
        "--fb",
        dest="forward_backward",
        action="store_true",
        default=None,
        help="also measure forward-backward consistency with ground truth",
    )
    ev.add_argument(
        "--no-fb",
        dest="forward_backward",
        action="store_false",
        help="skip forward-backward consistency without ground truth",
    )
    _engine_arguments(ev)
    ev.add_argument("--preset", help="network preset of an official checkpoint (taptrv2)")
    ev.add_argument(
        "--mode",
        choices=["immediate", "committed"],
        default="immediate",
        help="engine mode, as the node's 'mode' parameter (default: immediate)",
    )
    ev.add_argument(
        "--independent-points",
        action="store_true",
        help="decode every query alone (the TAP-Vid protocol of `taptr eval tapvid`); default: "
        "points decoded together, as the node does",
    )
    ev.add_argument(
        "--storage", choices=STORAGES, default="sqlite3", help="result bag storage (default: sqlite3)"
    )
    ev.add_argument("--no-overlay", action="store_true", help="do not write overlay.mp4")
    ev.add_argument("--no-plots", action="store_true", help="do not write the PNG plots")
    ev.set_defaults(func=run_eval)


def _engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        default="default",
        help="TAPTR checkpoint path, or 'default' for the shipped model (default: default)",
    )
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1, ...")


def _register_play(commands: argparse._SubParsersAction) -> None:
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
    _engine_arguments(play)
    play.add_argument(
        "--node-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra --ros-args argument for --start-node (repeatable), e.g. -p mode:=committed",
    )
    play.set_defaults(func=run_play)


def _fail(command: str, error: Exception, code: int = 1) -> int:
    print(f"taptr bag {command}: {error}", file=sys.stderr)
    return code


def run_make(args: argparse.Namespace) -> int:
    """``taptr bag make``; returns the exit code."""
    from tqdm import tqdm

    from taptr_ros.eval.bag_errors import BagError
    from taptr_ros.eval.bag_make import MakeOptions, make_bag, parse_points

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
        return _fail("make", error)
    print(
        f"wrote {summary.path}: {summary.num_frames} frames {summary.width}x{summary.height} at "
        f"{summary.fps:g} fps on {', '.join(f'{t} ({m})' for t, m in summary.topics.items())}"
        + (f"; {summary.num_points} points" if summary.num_points else "")
    )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """``taptr bag eval``; returns the exit code."""
    from tqdm import tqdm

    from taptr_ros.eval.bag_errors import BagError
    from taptr_ros.eval.bag_eval import EvalOptions, evaluate_bag
    from taptr_ros.eval.bag_make import parse_points

    try:
        points = parse_points(args.points) if args.points else None
    except BagError as error:
        return _fail("eval", error, 2)
    options = EvalOptions(
        image_topic=args.image_topic,
        ground_truth=args.gt,
        use_ground_truth=not args.no_gt,
        gt_topic=args.gt_topic,
        gt_video=args.gt_video,
        query_mode=args.query_mode,
        queries_file=args.queries,
        points=points,
        query_frame=args.query_frame,
        grid=args.grid,
        forward_backward=args.forward_backward,
        overlay=not args.no_overlay,
        plots=not args.no_plots,
        storage=args.storage,
    )
    try:  # the bag's problems first: they are cheaper to find than a model is to load
        from taptr_ros.eval.bag_io import BagReader

        with BagReader(args.bag) as reader:
            reader.image_topic(args.image_topic)
    except BagError as error:
        return _fail("eval", error)
    try:
        from taptr_ros.eval.bag_engine import make_engine_factory
        from taptr_ros.tracking.options import TrackerOptions

        engine_options = TrackerOptions(mode=args.mode, independent_points=args.independent_points)
        factory, meta = make_engine_factory(
            args.checkpoint, args.device, preset=args.preset, options=engine_options
        )
    except ImportError as error:
        return _fail("eval", ImportError(f"the online engine cannot be imported ({error})"), 2)
    except Exception as error:  # noqa: BLE001 - the engine's errors (checkpoint, device) carry their fix
        return _fail("eval", RuntimeError(f"cannot start TAPTR: {type(error).__name__}: {error}"))
    try:
        with tqdm(desc="bag eval", unit="frame", file=sys.stderr, leave=False) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            result = evaluate_bag(args.bag, args.out, factory, options, meta=meta, progress=progress)
    except BagError as error:
        return _fail("eval", error)
    _print_summary(result.metrics, result.out_dir, result.files)
    return 0


def _print_summary(metrics: dict[str, Any], out_dir: Any, files: list[str]) -> None:
    timing = metrics.get("timing") or {}
    line = f"{metrics['bag']}: {metrics['num_frames']} frames, {metrics['num_queries']} queries"
    if timing.get("fps") is not None:
        line += f", {timing['fps']:.1f} fps (p50 {timing['ms_p50']:.1f} ms, p99 {timing['ms_p99']:.1f} ms)"
    print(line)
    tapvid = metrics.get("tapvid")
    if tapvid:
        o = tapvid["overall"]

        def pct(key: str) -> str:
            return "n/a" if o.get(key) is None else f"{100 * o[key]:.1f}"

        print(
            f"TAP-Vid ({tapvid['query_mode']}): AJ {pct('average_jaccard')}  <d_avg "
            f"{pct('average_pts_within_thresh')}  OA {pct('occlusion_accuracy')}"
        )
    if metrics.get("survival"):
        s = metrics["survival"]
        end = s["survival_at_end"]
        print(f"survival at end: {'n/a' if end is None else f'{100 * end:.1f} %'}")
    if metrics.get("forward_backward"):
        fb = metrics["forward_backward"]
        med = fb["median_error_px"]
        print(
            f"forward-backward: {fb['num_returned']}/{fb['num_points']} returned, median error "
            f"{'n/a' if med is None else f'{med:.2f} px'}"
        )
    print(f"wrote {out_dir}: {', '.join(files)}")


def run_play(args: argparse.Namespace) -> int:
    """``taptr bag play``; returns the exit code."""
    from taptr_ros.eval.bag_errors import BagError
    from taptr_ros.eval.bag_make import parse_points

    if not args.rate > 0:
        return _fail("play", ValueError("--rate must be positive"), 2)
    try:
        points = parse_points(args.points) if args.points else None
    except BagError as error:
        return _fail("play", error, 2)
    from taptr_ros.ros.bag_play import PlayOptions, play_bag

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
        return _fail("play", error)
    print(result.summary())
    return 0
