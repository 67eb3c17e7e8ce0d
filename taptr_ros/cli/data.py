"""``taptr data synth``: write synthetic sequences with exact tracks as a TAP-Vid pickle."""

from __future__ import annotations

import argparse
import sys
import time

from taptr_ros.data.errors import DataError
from taptr_ros.data.splits import HELDOUT, SplitSpec
from taptr_ros.data.synthetic import preset_names

_DEFAULTS = {"split": "easy", "videos": 10, "frames": 24, "size": 256, "points": 64, "seed": 0}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data`` and its ``synth`` subcommand."""
    parser = subparsers.add_parser("data", help="datasets: synthetic sequences with exact ground truth")
    commands = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    synth = commands.add_parser(
        "synth", help="generate synthetic videos as a TAP-Vid pickle",
        description="Generate synthetic videos with exact tracks and occlusion as a TAP-Vid pickle "
                    "({name: {video, points, occluded}}). Video i is drawn from seed (SEED, i). "
                    f"Defaults: {_DEFAULTS}.")
    synth.add_argument("--out", required=True, help="output pickle path")
    synth.add_argument("--heldout", choices=sorted(HELDOUT),
                       help="write the project's fixed held-out split (sets every other option)")
    synth.add_argument("--split", choices=preset_names(), help="difficulty preset")
    synth.add_argument("--videos", type=int, help="number of videos")
    synth.add_argument("--frames", type=int, help="frames per video")
    synth.add_argument("--size", type=int, help="frames are SIZE x SIZE pixels")
    synth.add_argument("--points", type=int, help="tracks per video")
    synth.add_argument("--seed", type=int, help="base seed")
    synth.add_argument("--preview", metavar="MP4", help="also write the first video with its tracks drawn")
    synth.set_defaults(func=run_synth)


def _spec(args: argparse.Namespace) -> SplitSpec:
    given = {key: getattr(args, key) for key in _DEFAULTS if getattr(args, key) is not None}
    if args.heldout is not None:
        if given:
            raise ValueError(f"--heldout fixes every option; drop {', '.join('--' + k for k in given)}")
        return HELDOUT[args.heldout]
    values = {**_DEFAULTS, **given}
    for key in ("videos", "frames", "size", "points"):
        if values[key] < 1:
            raise ValueError(f"--{key} must be at least 1, got {values[key]}")
    return SplitSpec(values["split"], num_videos=values["videos"], num_frames=values["frames"],
                     size=values["size"], num_points=values["points"], seed=values["seed"])


def run_synth(args: argparse.Namespace) -> int:
    """Generate, save, optionally preview; returns the exit code."""
    from taptr_ros.data.tapvid import save_tapvid

    try:
        spec = _spec(args)
    except ValueError as error:
        print(f"taptr data synth: {error}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    videos = spec.generate()
    try:
        save_tapvid(args.out, videos)
        if args.preview:
            from taptr_ros.data.video import draw_tracks, write_video

            first = videos[0]
            tracks = first.tracks_px()
            ids = range(len(tracks))
            frames = (draw_tracks(frame, ids, tracks[:, t], ~first.occluded[:, t])
                      for t, frame in enumerate(first.video))
            write_video(args.preview, frames, fps=10.0)
    except (DataError, OSError) as error:
        print(f"taptr data synth: {error}", file=sys.stderr)
        return 1
    print(f"wrote {len(videos)} videos ({spec.preset}, {spec.num_frames} frames, {spec.size}x{spec.size}, "
          f"{spec.num_points} points, seed {spec.seed}) to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0
