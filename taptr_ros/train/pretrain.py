"""Pre-training of backbone + encoder on image pairs with exact correspondence (issue 15, item 2).

The cheap stage before (or between) tracking runs: batches of `taptr_ros.data.pairs` pairs,
both views encoded in one batched pass (no decoder, no windows), and the feature-matching cross
entropy of the tracking runs (`losses.feature_match_loss`): a point's feature on the finest
memory level of the first view against every cell of the second, with bilinear targets at its
true position; points that left the second view or fell under its occluder are not scored.
Only the backbone and encoder are optimised; the decoder's weights are carried through
unchanged, so the result is a whole checkpoint that `taptr train --init` continues.

Writes ``OUT/pretrain.csv`` (per logged step: loss, gradient norm, rate, seconds),
``OUT/val.csv`` (per validation: loss and match accuracy of the EMA model on fixed pairs) and
``OUT/model.pt`` (EMA weights, float16, after every validation and at the end). No resume: a
run is minutes long; its model.pt is the next run's ``--init``.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from taptr_ros.data.pairs import ImagePair, PairConfig, make_pair
from taptr_ros.data.splits import TRAIN_SEED_LIMIT
from taptr_ros.model.config import TaptrConfig
from taptr_ros.model.inference import precision_context
from taptr_ros.model.preprocess import preprocess_frames
from taptr_ros.model.taptr import TAPTRv2
from taptr_ros.train.ema import ModelEma
from taptr_ros.train.log import CsvLog
from taptr_ros.train.loop import lr_factor, network_from_checkpoint
from taptr_ros.train.losses import bilinear_cell_targets, feature_match_loss
from taptr_ros.train.state import export_model

LOG_FIELDS = ["step", "pairs", "time_s", "lr", "loss", "grad_norm", "step_s"]
VAL_FIELDS = ["step", "time_s", "loss", "accuracy"]
VAL_SEED = 1_000_100  # validation pairs: never drawn by a training seed (< 1 000 000)


@dataclass(frozen=True)
class PretrainConfig:
    """Everything about a pre-training run but the network.

    Attributes:
        steps: optimiser steps (the cosine's length unless ``cosine_s``).
        batch: pairs a step (both views of all of them in one encoder pass).
        points: points drawn in each pair's first view.
        lr: AdamW rate of backbone and encoder.
        weight_decay: AdamW weight decay.
        clip_norm: gradient-norm clipping (0 = off).
        ema_decay: EMA decay of the exported weights (0 = export the raw weights).
        warmup: linear warm-up steps; then cosine to ``lr * final_lr_ratio``.
        final_lr_ratio: end of the cosine.
        cosine_s: decay over this many seconds instead of over ``steps`` (0 = over steps).
        temperature: of the cosine similarities (the tracking runs' match temperature).
        seed: pair i of the stream is drawn from ``default_rng((seed, i))``.
        texture_videos: video files whose frames join the photographs.
        init: checkpoint to start from ("" = the preset's random initialisation).
        init_size: with ``init``, pre-train at this square input side (0 = the checkpoint's).
        precision: "fp32", or "bf16"/"fp16" autocast (GPU).
        time_budget_s: stop after this many seconds of training (0 = no limit).
        threads: torch CPU threads (0 = leave torch's default).
        workers: processes making pairs ahead of the step (0 = in the training process); the
            pairs are the same whatever the count.
        log_every: steps between CSV rows.
        val_every: steps between validations (0 = only at the end).
        val_pairs: fixed validation pairs (seeds ``(VAL_SEED, i)``).
    """

    steps: int = 1000
    batch: int = 8
    points: int = 256
    lr: float = 1e-4
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    ema_decay: float = 0.99
    warmup: int = 50
    final_lr_ratio: float = 0.1
    cosine_s: float = 0.0
    temperature: float = 0.07
    seed: int = 0
    texture_videos: tuple[str, ...] = ()
    init: str = ""
    init_size: int = 0
    precision: str = "fp32"
    time_budget_s: float = 0.0
    threads: int = 0
    workers: int = 0
    log_every: int = 10
    val_every: int = 100
    val_pairs: int = 32

    def __post_init__(self) -> None:
        if not 0 <= self.seed < TRAIN_SEED_LIMIT:  # the validation pairs and held-out splits lie above
            raise ValueError(f"pair stream seed {self.seed} must be in [0, {TRAIN_SEED_LIMIT})")


@dataclass(frozen=True)
class PairBatch:
    """B pairs as network inputs.

    Attributes:
        images: (2B, 3, H, W) normalised; rows 2b and 2b + 1 are pair b's first and second view.
        xy: (B, 2, N, 2) positions normalised by (W-1, H-1): [:, 0] first view, [:, 1] second.
        visible: (B, N) bool, scored in the second view.
    """

    images: Tensor
    xy: Tensor
    visible: Tensor

    def to(self, device: torch.device) -> PairBatch:
        return PairBatch(self.images.to(device), self.xy.to(device), self.visible.to(device))


def pair_batch(pairs: list[ImagePair], net: TaptrConfig) -> PairBatch:
    """Stack pairs (views of the network's input size) into a `PairBatch`."""
    h, w = net.input_hw
    if pairs[0].first.shape[:2] != (h, w):
        raise ValueError(f"pairs are {pairs[0].first.shape[:2]}, the network takes {(h, w)}")
    views = np.stack([v for p in pairs for v in (p.first, p.second)])
    scale = np.array([w - 1, h - 1], np.float32)
    xy = np.stack([np.stack([p.xy_first, p.xy_second]) / scale for p in pairs]).astype(np.float32)
    return PairBatch(images=preprocess_frames(views, net), xy=torch.from_numpy(xy),
                     visible=torch.from_numpy(np.stack([p.visible for p in pairs])))


def _pair(size: int, points: int, videos: tuple[str, ...], seed: int, index: int) -> ImagePair:
    """Pair ``index`` of stream ``seed``: ``default_rng((seed, index))``."""
    return make_pair(np.random.default_rng((seed, index)), PairConfig(size=size), points, videos=videos)


def make_pairs(cfg: PretrainConfig, net: TaptrConfig, seed: int, start: int, count: int) -> list[ImagePair]:
    """Pairs ``start .. start + count`` of stream ``seed`` at the network's input size."""
    return [_pair(net.input_hw[0], cfg.points, cfg.texture_videos, seed, i) for i in range(start, start + count)]


def pair_stream(cfg: PretrainConfig, net: TaptrConfig) -> Iterator[ImagePair]:
    """Endless pairs 0, 1, 2, ... of stream ``cfg.seed``; with ``cfg.workers`` > 0 the next
    4 x workers are made in that many spawned processes while the caller trains."""
    args = (net.input_hw[0], cfg.points, cfg.texture_videos, cfg.seed)
    if cfg.workers <= 0:
        for i in range(1 << 62):
            yield _pair(*args, i)
        return
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(cfg.workers) as pool:
        pending: collections.deque = collections.deque()
        for i in range(1 << 62):
            pending.append(pool.apply_async(_pair, (*args, i)))
            if len(pending) >= 4 * cfg.workers:
                yield pending.popleft().get()


def _fine_maps(model: TAPTRv2, images: Tensor) -> Tensor:
    """(2B, 3, H, W) -> (2B, C, h, w) finest encoder memory level."""
    return model.level_maps(model.encode_frames(images))[0]


def pair_loss(fine: Tensor, batch: PairBatch, temperature: float) -> Tensor:
    """Mean over pairs of the feature-matching cross entropy from the first view to the second."""
    losses = []
    for b in range(batch.xy.shape[0]):
        n = batch.xy.shape[2]
        mask = torch.stack([torch.zeros_like(batch.visible[b]), batch.visible[b]])  # (2, N)
        query_t = torch.zeros(n, dtype=torch.long, device=fine.device)
        losses.append(feature_match_loss(fine[2 * b:2 * b + 2].float(), batch.xy[b], mask, query_t, temperature))
    return torch.stack(losses).mean()


@torch.no_grad()
def match_accuracy(model: TAPTRv2, batch: PairBatch, temperature: float) -> tuple[float, float]:
    """(loss, accuracy) of `model` on `batch`: accuracy = share of the visible points whose most
    similar cell of the second view is within one cell of their true position's nearest cell."""
    was_training = model.training
    model.eval()
    fine = _fine_maps(model, batch.images).float()
    loss = float(pair_loss(fine, batch, temperature))
    _, c, h, w = fine.shape
    feats = torch.nn.functional.normalize(fine, dim=1)
    hits, total = 0, 0
    for b in range(batch.xy.shape[0]):
        q = batch.xy[b, 0]
        grid = (2 * q - 1).view(1, -1, 1, 2)
        query = torch.nn.functional.grid_sample(feats[2 * b:2 * b + 1], grid, align_corners=True)[0, :, :, 0].T
        best = (torch.nn.functional.normalize(query, dim=-1) @ feats[2 * b + 1].flatten(1)).argmax(-1)
        true = bilinear_cell_targets(batch.xy[b, 1], h, w).argmax(-1)
        near = ((best // w - true // w).abs() <= 1) & ((best % w - true % w).abs() <= 1)
        hits += int((near & batch.visible[b]).sum())
        total += int(batch.visible[b].sum())
    model.train(was_training)
    return loss, hits / max(total, 1)


def pretrain(net: TaptrConfig, cfg: PretrainConfig, out_dir: str | Path, *,
             device: str | torch.device = "cpu") -> dict:
    """Run a pre-training; returns a summary (steps, pairs, last loss, last validation)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(device)
    init_weights = None
    if cfg.init:
        net, init_weights = network_from_checkpoint(cfg.init, cfg.init_size)
    torch.manual_seed(cfg.seed)
    model = TAPTRv2(net)
    if init_weights is not None:
        model.load_state_dict(init_weights)
    model.to(device).train()
    trained = [p for name, p in model.named_parameters()
               if name.startswith(("backbone.", "encoder.")) and p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = ModelEma(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    val_batch = pair_batch(make_pairs(cfg, net, VAL_SEED, 0, cfg.val_pairs), net).to(device)
    log, val_log = CsvLog(out / "pretrain.csv", LOG_FIELDS), CsvLog(out / "val.csv", VAL_FIELDS)
    autocast = precision_context(device, cfg.precision)
    t_start, step, loss = time.time(), 0, float("nan")

    def validate_and_export() -> dict:
        scored = ema.module if ema is not None else model
        val_loss, accuracy = match_accuracy(scored, val_batch, cfg.temperature)
        row = {"step": step, "time_s": time.time() - t_start, "loss": val_loss, "accuracy": accuracy}
        val_log.write(row)
        export_model(out / "model.pt", scored, half=True,
                     metadata={"step": step, "pretrain": dataclasses.asdict(cfg), "val": row})
        return row

    first_val = last_val = validate_and_export()  # the starting point, on the same pairs
    stream = pair_stream(cfg, net)
    while step < cfg.steps:
        t0 = time.time()
        factor = lr_factor(step, cfg, t0 - t_start)
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * factor
        batch = pair_batch([next(stream) for _ in range(cfg.batch)], net).to(device)
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            fine = _fine_maps(model, batch.images)
        objective = pair_loss(fine, batch, cfg.temperature)
        objective.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(trained, cfg.clip_norm) if cfg.clip_norm > 0 \
            else torch.tensor(float("nan"))
        optimizer.step()
        if ema is not None:
            ema.update(model)
        step += 1
        loss = objective.item()
        if step % cfg.log_every == 0 or step == 1:
            log.write({"step": step, "pairs": step * cfg.batch, "time_s": time.time() - t_start,
                       "lr": cfg.lr * factor, "loss": loss, "grad_norm": float(grad_norm),
                       "step_s": time.time() - t0})
        if cfg.val_every and step % cfg.val_every == 0:
            last_val = validate_and_export()
        if cfg.time_budget_s and time.time() - t_start > cfg.time_budget_s:
            break
    stream.close()
    if last_val["step"] != step:
        last_val = validate_and_export()
    return {"step": step, "pairs": step * cfg.batch, "loss": loss, "val_loss": last_val["loss"],
            "val_accuracy": last_val["accuracy"], "start_val_accuracy": first_val["accuracy"]}
