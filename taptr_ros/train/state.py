"""Resumable training state, and export of a trained model as a deployable checkpoint.

A training state file (``runs/NAME/last.pt``) holds everything a run needs to continue exactly:
model and EMA weights, optimiser state, step, clips consumed, torch/numpy RNG states, the
network config and the training config. Files are written atomically (temporary file, then
``os.replace``), so a run killed mid-save keeps its previous state.

`export_model` writes the EMA (or raw) weights in the `taptr_ros.model.checkpoint` format,
optionally stored as float16 to halve the file; `load_checkpoint` restores float32 (tensors
are copied into the float32 network).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from taptr_ros.model.checkpoint import save_checkpoint
from taptr_ros.model.taptr import TAPTRv2

TRAIN_FORMAT = "taptr_ros/train/1"


class TrainStateError(RuntimeError):
    """A training state that cannot be resumed; the message says why."""


def _atomic_save(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def rng_state() -> dict:
    """The torch, numpy and Python global RNG states (for resuming)."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_train_state(path: str | os.PathLike, *, model: nn.Module, ema, optimizer: torch.optim.Optimizer,
                     step: int, clips: int, train_config: dict, extra: dict | None = None) -> None:
    """Write a resumable state (see the module docstring)."""
    _atomic_save({"format": TRAIN_FORMAT, "config": model.config.to_dict(), "train_config": train_config,
                   "model": model.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                   "optimizer": optimizer.state_dict(), "step": step, "clips": clips,
                   "rng": rng_state(), "extra": dict(extra or {})}, Path(path))


def load_train_state(path: str | os.PathLike) -> dict:
    """Read a state written by `save_train_state`.

    Raises:
        TrainStateError: missing, unreadable or not a training state.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise TrainStateError(f"cannot read training state {os.fspath(path)!r}: {exc}; "
                              "start without --resume or point it at runs/NAME/last.pt") from exc
    if not isinstance(state, dict) or state.get("format") != TRAIN_FORMAT:
        raise TrainStateError(f"{os.fspath(path)!r} is not a training state ({TRAIN_FORMAT}); "
                              "model checkpoints (models/*.pt) cannot be resumed")
    return state


def export_model(path: str | os.PathLike, model: TAPTRv2, *, half: bool = False,
                 metadata: dict | None = None) -> int:
    """Write `model` as a deployable checkpoint; returns the file size in bytes.

    Args:
        half: store floating-point tensors as float16 (loading restores float32).
        metadata: stored in the file (training details).
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    meta = dict(metadata or {})
    meta["stored_dtype"] = "float16" if half else "float32"
    if half:
        model = _half_copy(model)
    save_checkpoint(path, model, metadata=meta)
    return os.path.getsize(path)


class _HalfView(nn.Module):
    """Carries a config and a float16 state_dict through `save_checkpoint`."""

    def __init__(self, config, state: dict) -> None:
        super().__init__()
        self.config = config
        self._state = state

    def state_dict(self, *args, **kwargs):  # noqa: D102 - same contract as nn.Module
        return self._state


def _half_copy(model: TAPTRv2) -> nn.Module:
    state = {k: v.detach().half() if v.is_floating_point() else v.detach()
             for k, v in model.state_dict().items()}
    return _HalfView(model.config, state)
