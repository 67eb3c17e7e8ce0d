"""``taptr demo``: the tracker node on the shipped model and video, points added by service.

Runs the real ``taptr-tracker`` node as a process, plays media/trackon_sample.mp4 into it over
rclpy, adds a grid of points through ``~/add_points`` (more mid-stream, some removed later),
and writes out/demo_overlay.mp4, out/demo_tracks.npz and out/demo_summary.json. No GPU, no
ROS install, no download (see taptr_ros.ros.tools.demo).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo", help="run the tracker node on a video, add points by service, write an overlay MP4",
        description="Start the taptr_tracker node (isolated ROS domain, localhost), play a video "
                    "into it, add points through its services, record tracks and overlay.")
    parser.add_argument("--checkpoint", default="default",
                        help="model checkpoint; 'default' = models/default.pt (default: default)")
    parser.add_argument("--video", type=Path, default=REPO / "media" / "trackon_sample.mp4",
                        help="video to play (default: media/trackon_sample.mp4)")
    parser.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:N")
    parser.add_argument("--grid", type=int, default=6, help="N: an NxN grid of points at frame 0")
    parser.add_argument("--max-frames", type=int, default=None, help="play at most this many frames")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="publish at this many frames per second (the node drops what it "
                             "cannot keep up with); 0 = lockstep, every frame tracked (default)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print its summary; returns the exit code."""
    from taptr_ros.tracking import ModelLoadError
    from taptr_ros.tracking.factory import resolve_checkpoint

    try:
        checkpoint = resolve_checkpoint(args.checkpoint)  # "default" = models/default.pt
    except ModelLoadError as exc:
        print(f"taptr demo: {exc}", file=sys.stderr)
        return 1
    if args.grid < 1:
        print(f"taptr demo: --grid must be at least 1, got {args.grid}", file=sys.stderr)
        return 2
    from taptr_ros.ros.tools.demo import DemoError, DemoOptions, run_demo

    params_file = REPO / "config" / "tracker.yaml"
    options = DemoOptions(checkpoint=checkpoint.resolve(), video=args.video, out=args.out,
                          device=args.device, grid=args.grid, max_frames=args.max_frames,
                          rate=args.rate, params_file=params_file if params_file.is_file() else None)
    try:
        summary = run_demo(options)
    except DemoError as exc:
        print(f"taptr demo: {exc}", file=sys.stderr)
        return 1
    lat = summary["latency_ms"]
    print(f"frames: {summary['frames_published']} published, {summary['frames_tracked']} tracked "
          f"at {summary['fps']} fps on {summary['device']}")
    print(f"points: {summary['points_added']} added, {summary['points_removed']} removed, "
          f"{summary['points_final']} tracked at the end ({summary['visible_final']} visible)")
    print(f"latency (image published -> tracks received): mean {lat['mean']} ms, "
          f"p95 {lat['p95']} ms; node model {summary['node_model_ms']} ms/frame")
    for name, path in summary["outputs"].items():
        print(f"wrote {path}")
    return 0 if summary["node_exit_code"] == 0 else 1
