"""Exponential moving average of a model's parameters (the official run ships its EMA weights)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEma:
    """EMA copy of a model: ema = decay * ema + (1 - decay) * param after each optimiser step.

    Buffers (frozen BatchNorm statistics) are copied as they are. The effective decay ramps up
    as min(decay, (1 + n) / (10 + n)) over the first updates (n = updates so far), so a short
    run's EMA is not dominated by the random initialisation.

    Args:
        model: the trained model (not modified).
        decay: long-run decay (official 0.9997; ~0.99-0.999 for runs of a few thousand steps).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the averaged parameters towards ``model``'s (decay warmed up over the first updates)."""
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        src = model.state_dict()
        params = {name for name, _ in self.module.named_parameters()}
        for name, value in self.module.state_dict().items():
            if name in params:
                value.mul_(d).add_(src[name].detach(), alpha=1 - d)
            else:
                value.copy_(src[name])

    def state_dict(self) -> dict:
        """Averaged weights, decay and update count (for resuming)."""
        return {"module": self.module.state_dict(), "decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""
        self.module.load_state_dict(state["module"])
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
