"""The training loop: clips -> windowed rollout with carried state -> TAPTRv2 losses -> AdamW.

One process or many (``torchrun --nproc_per_node K``, DistributedDataParallel over gloo on CPU
or nccl on CUDA; each rank draws different clips, gradients are averaged). A step accumulates
``batch`` clips per process (the network decodes one clip at a time), clips the gradient norm
(official 0.1), steps AdamW (backbone at its own, lower, rate), updates the EMA, logs to
``OUT/train.csv``, validates the EMA model every ``val_every`` steps on a fixed synthetic set
(``OUT/val.csv``, best one exported to ``OUT/best.pt``), and writes ``OUT/last.pt`` every
``checkpoint_every_s`` seconds and at the end (resume with ``resume=True``).

Learning rate: linear warm-up over ``warmup`` steps, then cosine decay to ``lr * final_lr_ratio``
over the remaining steps, or over ``cosine_s`` seconds of training when set (a GPU burst of fixed
length, whose step count is not known ahead); our choice for short runs (the official schedule
drops 10x at epochs 100 and 130 of 150).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from taptr_ros.model.checkpoint import load_checkpoint
from taptr_ros.model.config import TaptrConfig
from taptr_ros.model.inference import precision_context
from taptr_ros.model.taptr import TAPTRv2
from taptr_ros.train.data import Clip, pickle_clips, synthetic_clips
from taptr_ros.train.ema import ModelEma
from taptr_ros.train.log import CsvLog, plot_run, truncate_after
from taptr_ros.train.losses import LossWeights, tracking_loss
from taptr_ros.train.rollout import RolloutOutput, rollout
from taptr_ros.train.state import export_model, load_train_state, save_train_state, set_rng_state
from taptr_ros.train.validate import validate, validation_videos

TRAIN_FIELDS = ["step", "clips", "time_s", "lr", "total", "location", "location_apu", "visibility",
                "match", "err_px", "static_px", "grad_norm", "step_s"]
VAL_FIELDS = ["step", "time_s", "aj", "delta", "oa"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything about a run but the network (see `TaptrConfig`).

    Attributes:
        steps: optimiser steps in total (a resumed run continues up to this).
        batch: clips per process per step (gradient accumulation).
        frames: frames per clip.
        points: tracks per clip.
        lr: AdamW learning rate of everything but the backbone (official 2e-4).
        backbone_lr: AdamW rate of the ResNet (official 1e-5 for a pre-trained backbone; ours
            trains from scratch, so higher).
        weight_decay: AdamW weight decay (official 1e-4).
        clip_norm: gradient-norm clipping (official 0.1; 0 disables).
        ema_decay: EMA decay (official 0.9997; smaller for short runs).
        warmup: linear warm-up steps.
        final_lr_ratio: cosine decay ends at lr * this.
        restart_ratio: share of tracks restarted at a random visible frame (official 1/4).
        visible_only: supervise positions only where visible (TAPTRv3); see `LossWeights`.
        match_weight: weight of the feature-matching loss (ours, 0 = official; see `LossWeights`).
        occluded_weight: factor on the visibility loss of occluded entries (ours, 1 = official;
            `LossWeights.occluded`).
        isolated_share: share of clips whose points are decoded alone (spatial attention sees
            only the point itself), as `taptr eval tapvid` decodes queries; the rest are decoded
            jointly, as the node decodes its points (0 = always jointly, official). Which clips:
            `isolated_clip`.
        seed: seed of the clip stream and of the network initialisation.
        data: "synthetic" or a TAP-Vid pickle path.
        presets: synthetic difficulty presets, clip i drawn from ``presets[i % len]`` (repeat a
            name to weight it, e.g. easy, hard, easy, hard, still = 20% still clips).
        texture_videos: video files whose frames join the photographs the synthetic textures
            are cropped from (`taptr_ros.data.textures.video_frames`); () = photographs only.
        precision: "fp32", or "bf16"/"fp16" autocast of the forward pass and losses (GPU runs;
            `taptr_ros.model.inference.precision_context`); weights and optimiser stay fp32.
        time_budget_s: end this invocation after this many seconds of training (0 = no limit;
            state saved, schedule unchanged, like ``stop_after``): GPU bursts of fixed length.
        cosine_s: after the warm-up, decay over this many seconds of training (the run's
            elapsed time, resumes included) instead of over ``steps`` (0 = over steps).
        workers: processes generating synthetic clips ahead of the training step (0 = in the
            training process); the clip stream is the same whatever the count.
        init: checkpoint whose weights (and network config) a new run starts from, with a fresh
            optimiser and the warm-up (the campaign's next run starts from ``models/default.pt``);
            "" = random initialisation. Ignored when resuming.
        init_passes: with ``init``, decode every window this many times instead of the
            checkpoint's `TaptrConfig.window_passes` (0 = the checkpoint's).
        init_start_velocity: with ``init``, `TaptrConfig.start_velocity_frames` instead of the
            checkpoint's (-1 = the checkpoint's).
        init_size: with ``init``, train at this square input side in px instead of the
            checkpoint's (the weights do not depend on it; 0 = the checkpoint's).
        threads: torch CPU threads per process (0 = leave torch's default).
        log_every: steps between CSV rows.
        val_every: steps between validations (0 = never).
        val_per_preset: validation videos per synthetic preset (easy, hard).
        checkpoint_every_s: seconds between ``last.pt`` saves.
    """

    steps: int = 1000
    batch: int = 1
    frames: int = 16
    points: int = 32
    lr: float = 2e-4
    backbone_lr: float = 1e-4
    weight_decay: float = 1e-4
    clip_norm: float = 0.1
    ema_decay: float = 0.995
    warmup: int = 50
    final_lr_ratio: float = 0.1
    restart_ratio: float = 0.25
    visible_only: bool = False
    match_weight: float = 0.0
    occluded_weight: float = 1.0
    isolated_share: float = 0.0
    seed: int = 0
    data: str = "synthetic"
    presets: tuple[str, ...] = ("easy", "hard")
    texture_videos: tuple[str, ...] = ()
    init: str = ""
    init_size: int = 0
    init_passes: int = 0
    init_start_velocity: int = -1
    precision: str = "fp32"
    time_budget_s: float = 0.0
    cosine_s: float = 0.0
    workers: int = 0
    threads: int = 0
    log_every: int = 1
    val_every: int = 100
    val_per_preset: int = 2
    checkpoint_every_s: float = 300.0

    def to_dict(self) -> dict:
        """Every field, for the checkpoint's metadata."""
        return dataclasses.asdict(self)


def lr_factor(step: int, cfg: TrainConfig, elapsed_s: float = 0.0) -> float:
    """Multiplier of the base rates at `step` (0-based) after `elapsed_s` seconds of training:
    warm-up, then cosine to final_lr_ratio (over steps, or over ``cfg.cosine_s`` seconds)."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    if cfg.cosine_s > 0:
        progress = min(1.0, max(0.0, elapsed_s) / cfg.cosine_s)
    else:
        progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def network_from_checkpoint(path: str, size: int = 0, passes: int = 0,
                            start_velocity: int = -1) -> tuple[TaptrConfig, dict]:
    """Network config and weights a run starts from (``--init``): checkpoint `path`'s, at a
    square `size` x `size` input when `size` > 0, with `passes` decoder passes per window
    when `passes` > 0 and `start_velocity` as `TaptrConfig.start_velocity_frames` when >= 0
    (the weights depend on none of them)."""
    init = load_checkpoint(path)
    net = init.config.replace(input_hw=(size, size)) if size else init.config
    net = net.replace(window_passes=passes) if passes else net
    net = net.replace(start_velocity_frames=start_velocity) if start_velocity >= 0 else net
    return net, init.model.state_dict()


def make_optimizer(model: TAPTRv2, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with two groups: backbone ResNet (``backbone_lr``) and the rest (``lr``)."""
    backbone, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (backbone if name.startswith("backbone.resnet.") else rest).append(p)
    groups = [{"params": rest, "lr": cfg.lr, "base_lr": cfg.lr},
              {"params": backbone, "lr": cfg.backbone_lr, "base_lr": cfg.backbone_lr}]
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


class RolloutModule(nn.Module):
    """``forward`` = `rollout`, so DistributedDataParallel sees the whole clip as one call."""

    def __init__(self, model: TAPTRv2) -> None:
        super().__init__()
        self.model = model

    def forward(self, video, query_xy, query_t, isolated: bool = False) -> RolloutOutput:
        return rollout(self.model, video, query_xy, query_t, isolated=isolated)


def distributed_context() -> tuple[int, int]:
    """(rank, world_size); initialises the process group under torchrun (gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("TAPTR_DIST_BACKEND") != "gloo" else "gloo"
        dist.init_process_group(backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def clip_stream(cfg: TrainConfig, net: TaptrConfig, rank: int, world: int, start_index: int):
    """This rank's endless `Clip` stream from clip ``start_index`` on (synthetic or a pickle)."""
    kw = dict(num_frames=cfg.frames, num_points=cfg.points, seed=cfg.seed, rank=rank, world_size=world,
              start_index=start_index, restart_ratio=cfg.restart_ratio)
    if cfg.data == "synthetic":
        return synthetic_clips(net, presets=tuple(cfg.presets),
                               texture_videos=tuple(cfg.texture_videos), workers=cfg.workers, **kw)
    return pickle_clips(cfg.data, net, **kw)


def isolated_clip(index: int, share: float) -> bool:
    """Whether clip `index` (global over ranks) is decoded with its points alone: a
    golden-ratio sequence, so any run of clips holds `share` of them within one clip, and a
    resumed run picks the same clips."""
    return share > 0 and (index * 0.6180339887498949) % 1.0 < share


def _to(clip: Clip, device: torch.device) -> Clip:
    return Clip(*(getattr(clip, f.name).to(device) for f in dataclasses.fields(Clip)))


def train(net_config: TaptrConfig, cfg: TrainConfig, out_dir: str | os.PathLike, *,
          device: str | torch.device = "cpu", resume: bool = False, progress: bool = True,
          stop_after: int | None = None) -> dict:
    """Train (or continue) a run in `out_dir`; returns a summary (step, losses, best val AJ,
    digest of the final weights).

    ``stop_after`` ends this invocation after that many steps (state saved, schedule unchanged),
    so a run can be split into several resumed pieces.

    With ``resume`` and ``OUT/last.pt`` present, the network config, weights, EMA, optimiser,
    step, clip index and RNG states come from it (``net_config`` is then ignored, and `cfg`
    must describe the same run; only ``steps`` may grow).
    """
    rank, world = distributed_context()
    out = Path(out_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    state = load_train_state(out / "last.pt") if resume and (out / "last.pt").exists() else None
    init_weights = None
    if state is not None:
        net_config = TaptrConfig.from_dict(state["config"])
    elif cfg.init:
        net_config, init_weights = network_from_checkpoint(cfg.init, cfg.init_size, cfg.init_passes,
                                                            cfg.init_start_velocity)
    torch.manual_seed(cfg.seed)
    model = TAPTRv2(net_config).to(device).train()
    if init_weights is not None:
        model.load_state_dict(init_weights)
    ema = ModelEma(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    optimizer = make_optimizer(model, cfg)
    step, clips, best_aj = 0, 0, -1.0
    if state is not None:
        model.load_state_dict(state["model"])
        if ema is not None and state["ema"] is not None:
            ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        step, clips = int(state["step"]), int(state["clips"])
        best_aj = float(state["extra"].get("best_aj", -1.0))
        set_rng_state(state["rng"])
    if ema is not None:
        ema.module.to(device)
    wrapped: nn.Module = RolloutModule(model)
    if world > 1:
        wrapped = nn.parallel.DistributedDataParallel(
            wrapped, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)  # middle layers' visibility heads get no loss
    weights = LossWeights(visible_only=cfg.visible_only, match=cfg.match_weight,
                          occluded=cfg.occluded_weight)
    # each step consumes batch clips on every rank; clip indices are global over ranks
    stream = clip_stream(cfg, net_config, rank, world, clips)
    is_main = rank == 0
    if is_main and state is not None:
        for name in ("train.csv", "val.csv"):
            truncate_after(out / name, step)
    train_log = CsvLog(out / "train.csv", TRAIN_FIELDS) if is_main else None
    val_log = CsvLog(out / "val.csv", VAL_FIELDS) if is_main else None
    val_set = validation_videos(size=net_config.input_hw[0], per_preset=cfg.val_per_preset) \
        if is_main and cfg.val_every else []
    t_start, t_ckpt = time.time(), time.time()
    elapsed0 = float(state["extra"].get("time_s", 0.0)) if state is not None else 0.0
    last_terms: dict[str, float] = {}
    bar = tqdm(total=cfg.steps, initial=step, disable=not (progress and is_main), desc="train")

    def save(final: bool = False) -> None:
        if not is_main:
            return
        save_train_state(out / "last.pt", model=model, ema=ema, optimizer=optimizer, step=step,
                         clips=clips, train_config=cfg.to_dict(),
                         extra={"best_aj": best_aj, "time_s": elapsed0 + time.time() - t_start})
        plot_run(out)

    validated_at = -1

    def validate_and_export(best: float) -> float:
        """Validate the EMA model at `step`, export it (step file; best.pt if best); new best."""
        nonlocal validated_at
        validated_at = step
        scored = ema.module if ema is not None else model
        metrics = validate(scored, val_set)
        val_log.write({"step": step, "time_s": elapsed0 + time.time() - t_start, **metrics})
        meta = {"step": step, "val": metrics, "train_config": cfg.to_dict()}
        if metrics["aj"] > best:
            best = metrics["aj"]
            export_model(out / "best.pt", scored, metadata=meta)
        export_model(out / f"step{step:06d}.pt", scored, half=True, metadata=meta)
        return best

    end = cfg.steps if stop_after is None else min(cfg.steps, step + stop_after)
    autocast = precision_context(device, cfg.precision)
    while step < end:
        t0 = time.time()
        factor = lr_factor(step, cfg, elapsed0 + t0 - t_start)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        for micro in range(cfg.batch):
            clip = _to(next(stream), device)
            ctx = wrapped.no_sync() if world > 1 and micro < cfg.batch - 1 else nullcontext()
            with ctx:
                with autocast:
                    alone = isolated_clip(clips + micro * world + rank, cfg.isolated_share)
                    res = wrapped(clip.video, clip.query_xy, clip.query_t, alone)
                    terms = tracking_loss(res, clip.gt_xy, clip.gt_occluded, weights)
                (terms.total / cfg.batch).backward()
            for k, v in terms.as_floats().items():
                sums[k] = sums.get(k, 0.0) + v / cfg.batch
            err_px, static_px = _err_px(res, clip, net_config)
            sums["err_px"] = sums.get("err_px", 0.0) + err_px / cfg.batch
            sums["static_px"] = sums.get("static_px", 0.0) + static_px / cfg.batch
        clips += cfg.batch * world
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm) \
            if cfg.clip_norm > 0 else torch.tensor(float("nan"))
        optimizer.step()
        if ema is not None:
            ema.update(model)
        step += 1
        last_terms = sums
        if is_main:
            bar.update(1)
            bar.set_postfix(loss=f"{sums['total']:.3f}", err_px=f"{sums['err_px']:.2f}")
            if step % cfg.log_every == 0:
                train_log.write({"step": step, "clips": clips, "time_s": elapsed0 + time.time() - t_start,
                                 "lr": cfg.lr * factor, **sums, "grad_norm": float(grad_norm),
                                 "step_s": time.time() - t0})
            if cfg.val_every and (step % cfg.val_every == 0 or step == end):
                best_aj = validate_and_export(best_aj)
        if time.time() - t_ckpt > cfg.checkpoint_every_s:
            save()
            t_ckpt = time.time()
        if cfg.time_budget_s and time.time() - t_start > cfg.time_budget_s:
            break
    if is_main and cfg.val_every and step > 0 and validated_at != step:  # the time budget ended it
        best_aj = validate_and_export(best_aj)
    save(final=True)
    bar.close()
    return {"rank": rank, "world_size": world, "step": step, "clips": clips, "best_aj": best_aj,
            "weights_sha1": weights_digest(model),
            **last_terms}


def weights_digest(model: nn.Module) -> str:
    """SHA-1 of every parameter and buffer's bytes (equal digests = identical weights)."""
    h = hashlib.sha1()
    for name, value in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _err_px(res: RolloutOutput, clip: Clip, net: TaptrConfig) -> tuple[float, float]:
    """Mean position error in network-input pixels over visible supervised frames: of the last
    layer, and of a static tracker that keeps every point at its query position (the yardstick
    the network has to beat on this clip)."""
    with torch.no_grad():
        h, w = net.input_hw
        scale = torch.tensor([w - 1, h - 1], device=clip.gt_xy.device, dtype=clip.gt_xy.dtype)
        mask = res.update & ~clip.gt_occluded
        if not bool(mask.any()):
            return float("nan"), float("nan")
        err = ((res.pos[-1] - clip.gt_xy) * scale).norm(dim=-1)
        static = ((clip.query_xy[None] - clip.gt_xy) * scale).norm(dim=-1)
        return float(err[mask].mean()), float(static[mask].mean())
