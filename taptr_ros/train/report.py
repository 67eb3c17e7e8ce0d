"""Default model vs Lucas-Kanade on the held-out synthetic splits: the README table.

    python -m taptr_ros.train.report --checkpoint models/default.pt \\
        --data runs/heldout --out runs/report.json [--joint] [--max-videos N] [--size PX]

``DATA/{easy,hard}.pkl`` are the held-out splits (``taptr data synth --heldout easy`` etc.).
TAPTR runs through the online engine (`taptr_ros.eval.engine_tracker`, as the node runs it);
each query is decoded as if alone (the TAP-Vid protocol; one batched pass), or with ``--joint``
all queries of a video together, as the node tracks its points. LK tracks every query
independently; "static" keeps every point at its query position, visible (the floor a tracker
must clear). Prints a markdown table (AJ, <delta_avg, OA in %, ms/frame).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from taptr_ros.data.tapvid import load_tapvid
from taptr_ros.eval.lk_baseline import make_lk_tracker
from taptr_ros.eval.runner import evaluate_dataset, static_tracker


def main(argv: list[str] | None = None) -> int:
    """``python -m taptr_ros.train.report``: score a checkpoint beside LK and static; exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default="default")
    p.add_argument("--data", default="runs/heldout")
    p.add_argument("--splits", nargs="+", default=["easy", "hard"])
    p.add_argument("--modes", nargs="+", default=["first", "strided"])
    p.add_argument("--joint", action="store_true", help="decode a video's queries together (as the node)")
    p.add_argument("--max-videos", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--size", type=int, default=None,
                   help="run the checkpoint's weights at this square input size (px) instead of its own")
    p.add_argument("--passes", type=int, default=None,
                   help="decoder passes per window instead of the checkpoint's (TaptrConfig.window_passes)")
    p.add_argument("--skip-lk", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    from taptr_ros.eval.engine_tracker import make_engine_tracker

    torch.set_num_threads(args.threads)
    rows = []
    for split in args.splits:
        data = load_tapvid(Path(args.data) / f"{split}.pkl")
        for mode in args.modes:
            trackers = [("TAPTR" + (" (joint)" if args.joint else ""),
                         make_engine_tracker(args.checkpoint, "cpu", independent=not args.joint,
                                             backward=mode == "strided",
                                             input_hw=(args.size, args.size) if args.size else None,
                                             window_passes=args.passes))]
            if not args.skip_lk:
                trackers += [("LK", make_lk_tracker()), ("static", static_tracker)]
            for name, tracker in trackers:
                t0 = time.time()
                rep = evaluate_dataset(data, tracker, mode, max_videos=args.max_videos)
                o = rep.overall
                rows.append({"split": split, "mode": mode, "tracker": name,
                             "aj": o["average_jaccard"], "delta": o["average_pts_within_thresh"],
                             "oa": o["occlusion_accuracy"], "ms_per_frame": o["ms_per_frame"],
                             "videos": len(rep.videos), "wall_s": time.time() - t0})
                r = rows[-1]
                print(f"| {split} | {mode} | {name} | {100 * r['aj']:.1f} | {100 * r['delta']:.1f} | "
                      f"{100 * r['oa']:.1f} | {r['ms_per_frame']:.0f} |", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"checkpoint": args.checkpoint, "independent": not args.joint,
                                              "size": args.size,
                                              "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
