"""``taptr pretrain``: backbone + encoder on image pairs (see `taptr_ros.train.pretrain`)."""

from __future__ import annotations

import argparse
import json
import sys

from taptr_ros.model.config import PRESETS, preset


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pretrain", help="pre-train backbone + encoder on image pairs with exact correspondence",
        description="Feature-matching pre-training of the backbone and encoder on pairs of views "
                    "of one photograph (random homography, photometric changes, occluders). "
                    "Writes OUT/pretrain.csv, OUT/val.csv and OUT/model.pt (EMA weights, the "
                    "decoder unchanged): continue with taptr train --init OUT/model.pt.")
    p.add_argument("--out", required=True, help="run directory (e.g. runs/pairs)")
    p.add_argument("--init", default="", help="checkpoint to start from (e.g. models/default.pt)")
    p.add_argument("--preset", default="small", choices=sorted(PRESETS),
                   help="network preset without --init (default small)")
    p.add_argument("--size", type=int, default=None, help="square input side in px (default: the checkpoint's or preset's)")
    p.add_argument("--steps", type=int, default=1000, help="optimiser steps (default 1000)")
    p.add_argument("--batch", type=int, default=8, help="pairs a step (default 8)")
    p.add_argument("--points", type=int, default=256, help="points a pair (default 256)")
    p.add_argument("--lr", type=float, default=1e-4, help="AdamW rate (default 1e-4)")
    p.add_argument("--warmup", type=int, default=50, help="warm-up steps (default 50)")
    p.add_argument("--ema-decay", type=float, default=0.99, help="EMA decay of the export (0 = raw weights)")
    p.add_argument("--seed", type=int, default=0, help="pair stream seed (< 1000000)")
    p.add_argument("--texture-videos", default="", help="comma-separated videos whose frames join the photographs")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"), help="autocast (GPU)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--time-budget", type=float, default=0.0, metavar="S", help="stop after S seconds (0 = no limit)")
    p.add_argument("--cosine-seconds", type=float, default=0.0, metavar="S",
                   help="decay the rate over S seconds instead of over --steps")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--workers", type=int, default=0, help="processes making pairs ahead of the step (default 0)")
    p.add_argument("--val-every", type=int, default=100, help="steps between validations (default 100)")
    p.add_argument("--val-pairs", type=int, default=32, help="fixed validation pairs (default 32)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from taptr_ros.train.pretrain import PretrainConfig, pretrain

    net = preset(args.preset, **({"input_hw": (args.size, args.size)} if args.size else {}))
    try:
        cfg = PretrainConfig(steps=args.steps, batch=args.batch, points=args.points, lr=args.lr,
                             warmup=args.warmup, ema_decay=args.ema_decay, seed=args.seed,
                             texture_videos=tuple(v for v in args.texture_videos.split(",") if v),
                             init=args.init, init_size=args.size or 0, precision=args.precision,
                             time_budget_s=args.time_budget, cosine_s=args.cosine_seconds,
                             threads=args.threads, workers=args.workers, val_every=args.val_every,
                             val_pairs=args.val_pairs)
    except ValueError as error:  # a bad option: one line, no traceback
        print(f"taptr pretrain: {error}", file=sys.stderr)
        return 2
    print(json.dumps(pretrain(net, cfg, args.out, device=args.device)), flush=True)
    return 0
