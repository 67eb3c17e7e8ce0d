"""``taptr bag eval``: track a bag deterministically and report."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from taptr_ros.bags.topics import GROUND_TRUTH_TOPIC, STORAGES
from taptr_ros.cli.bag.common import engine_arguments, fail


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``eval`` to the ``taptr bag`` actions."""
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
    engine_arguments(ev)
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


def run_eval(args: argparse.Namespace) -> int:
    """``taptr bag eval``; returns the exit code."""
    from tqdm import tqdm

    from taptr_ros.bags.errors import BagError
    from taptr_ros.bags.evaluate import EvalOptions, evaluate_bag
    from taptr_ros.bags.make import parse_points

    try:
        points = parse_points(args.points) if args.points else None
    except BagError as error:
        return fail("eval", error, 2)
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
        from taptr_ros.bags.storage import BagReader

        with BagReader(args.bag) as reader:
            reader.image_topic(args.image_topic)
    except BagError as error:
        return fail("eval", error)
    try:
        from taptr_ros.bags.engine import make_engine_factory
        from taptr_ros.tracking.options import TrackerOptions

        engine_options = TrackerOptions(mode=args.mode, independent_points=args.independent_points)
        factory, meta = make_engine_factory(
            args.checkpoint, args.device, preset=args.preset, options=engine_options
        )
    except ImportError as error:
        return fail("eval", ImportError(f"the online engine cannot be imported ({error})"), 2)
    except Exception as error:  # noqa: BLE001 - the engine's errors (checkpoint, device) carry their fix
        return fail("eval", RuntimeError(f"cannot start TAPTR: {type(error).__name__}: {error}"))
    try:
        with tqdm(desc="bag eval", unit="frame", file=sys.stderr, leave=False) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            result = evaluate_bag(args.bag, args.out, factory, options, meta=meta, progress=progress)
    except BagError as error:
        return fail("eval", error)
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
