"""``taptr train``: train a TAPTRv2 preset (see `taptr_ros.train.loop`)."""

from __future__ import annotations

import argparse
import json

from taptr_ros.model.config import PRESETS, preset


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a preset on synthetic clips or a TAP-Vid pickle",
        description="Train a TAPTRv2 preset. Writes OUT/train.csv, OUT/val.csv, OUT/curves.png, "
                    "OUT/last.pt (resumable, every --checkpoint-every s) and OUT/best.pt (best EMA "
                    "model by validation AJ). Multi-process: torchrun --nproc_per_node K -m "
                    "taptr_ros.cli train ... (gloo on CPU, nccl on CUDA).")
    p.add_argument("--preset", default="small", choices=sorted(PRESETS), help="network preset (default small)")
    p.add_argument("--steps", type=int, default=1000, help="optimiser steps in total (default 1000)")
    p.add_argument("--batch", type=int, default=1, help="clips per process per step (default 1)")
    p.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument("--points", type=int, default=32, help="tracks per clip (default 32)")
    p.add_argument("--size", type=int, default=None, help="network input side in px (default: the preset's, or with --init the checkpoint's)")
    p.add_argument("--out", required=True, help="run directory (e.g. runs/small)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt if it exists")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--lr", type=float, default=2e-4, help="AdamW rate (default 2e-4, official)")
    p.add_argument("--backbone-lr", type=float, default=1e-4,
                   help="AdamW rate of the ResNet (default 1e-4: trained from scratch)")
    p.add_argument("--ema-decay", type=float, default=0.995, help="EMA decay (official 0.9997; 0 = off)")
    p.add_argument("--clip-norm", type=float, default=0.1, help="gradient clipping norm (official 0.1)")
    p.add_argument("--warmup", type=int, default=50, help="warm-up steps (default 50)")
    p.add_argument("--visible-only", action="store_true",
                   help="supervise positions only where visible (TAPTRv3) instead of the v2 rule")
    p.add_argument("--match-loss", type=float, default=0.0,
                   help="weight of the feature-matching loss on the finest memory level (ours, for "
                        "training from scratch; default 0 = the official losses only)")
    p.add_argument("--occluded-weight", type=float, default=1.0,
                   help="factor on the visibility loss of occluded entries (default 1, official)")
    p.add_argument("--passes", type=_count, default=0, metavar="K",
                   help="decoder passes per window, each from the previous one's positions (default: "
                        "the preset's 1, or with --init the checkpoint's)")
    p.add_argument("--start-velocity", type=int, default=-1, metavar="K",
                   help="a window's next frames continue the tail's velocity over its last K frames "
                        "(TaptrConfig.start_velocity_frames; 0 = the official tail copy; default: the "
                        "preset's 0, or with --init the checkpoint's)")
    p.add_argument("--isolated-share", type=_share, default=0.0, metavar="P",
                   help="share of clips whose points are decoded alone, as `taptr eval tapvid` decodes "
                        "queries (default 0: always jointly, as the node and the official training)")
    p.add_argument("--texture-videos", default="",
                   help="comma-separated video files whose frames are used as photographic textures")
    p.add_argument("--seed", type=int, default=0, help="data and init seed (< 1000000)")
    p.add_argument("--data", default="synthetic", help="'synthetic' or a TAP-Vid pickle path")
    p.add_argument("--presets", default="easy,hard",
                   help="synthetic presets, comma-separated, clip i from the (i mod n)-th; repeat one to "
                        "weight it (default easy,hard; e.g. easy,hard,easy,hard,still)")
    p.add_argument("--init", default="",
                   help="start a new run from this checkpoint's weights and network (e.g. "
                        "models/default.pt), fresh optimiser and warm-up; --preset is then taken "
                        "from it, and --size (if given) changes its input size")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                   help="autocast of forward pass and losses (bf16 on GPUs; default fp32)")
    p.add_argument("--time-budget", type=float, default=0.0, metavar="S",
                   help="stop this invocation after S seconds of training, validated and saved "
                        "(0 = no limit; the schedule still spans --steps)")
    p.add_argument("--cosine-seconds", type=float, default=0.0, metavar="S",
                   help="decay the rate over S seconds of training instead of over --steps (0 = "
                        "over steps; with --time-budget S a burst of fixed length ends decayed)")
    p.add_argument("--workers", type=int, default=0,
                   help="processes generating synthetic clips ahead of the step (default 0)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0 = default)")
    p.add_argument("--val-every", type=int, default=100, help="steps between validations (0 = never)")
    p.add_argument("--checkpoint-every", type=float, default=300.0, help="seconds between last.pt saves")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.set_defaults(func=run)


def _count(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"a count is >= 0, got {text}")
    return value


def _share(text: str) -> float:
    """argparse type: a share in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a share lies in [0, 1], got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    from taptr_ros.train.loop import TrainConfig, train

    overrides = {"input_hw": (args.size, args.size)} if args.size else {}
    if args.passes:
        overrides["window_passes"] = args.passes
    if args.start_velocity >= 0:
        overrides["start_velocity_frames"] = args.start_velocity
    net = preset(args.preset, **overrides)
    cfg = TrainConfig(steps=args.steps, batch=args.batch, frames=args.frames, points=args.points,
                      lr=args.lr, backbone_lr=args.backbone_lr, ema_decay=args.ema_decay,
                      clip_norm=args.clip_norm, warmup=args.warmup, visible_only=args.visible_only,
                      match_weight=args.match_loss, occluded_weight=args.occluded_weight,
                      isolated_share=args.isolated_share,
                      texture_videos=tuple(v for v in args.texture_videos.split(",") if v),
                      seed=args.seed, data=args.data, init=args.init, init_size=args.size or 0,
                      init_passes=args.passes, init_start_velocity=args.start_velocity,
                      precision=args.precision,
                      time_budget_s=args.time_budget, cosine_s=args.cosine_seconds, workers=args.workers,
                      presets=tuple(n for n in args.presets.split(",") if n), threads=args.threads, val_every=args.val_every,
                      checkpoint_every_s=args.checkpoint_every)
    summary = train(net, cfg, args.out, device=args.device, resume=args.resume,
                    progress=not args.no_progress)
    print(json.dumps(summary), flush=True)  # one line per rank
    return 0
