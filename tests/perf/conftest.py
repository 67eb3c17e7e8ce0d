"""Fixtures of the performance tests: randomised networks of any preset."""

from __future__ import annotations

import math

import pytest
import torch

from taptr_ros.model.config import preset
from taptr_ros.model.taptr import TAPTRv2


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial deterministic weights (the default init zeroes heads and offsets)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            z = torch.randn(t.shape, generator=gen)
            if name.endswith("running_var"):
                t.copy_(1 + 0.1 * z.abs())
            elif name.endswith("running_mean") or name.endswith("level_embed"):
                t.copy_(0.1 * z)
            elif name.endswith("bias"):
                t.copy_(0.02 * z)
            elif t.dim() == 1:
                t.copy_(1 + 0.1 * z)
            else:
                gain = 0.5 if ("sampling_offsets" in name or "pos_heads" in name) else 1.0
                t.copy_(gain * z / math.sqrt(t[0].numel()))
    return model


@pytest.fixture(scope="session")
def make_model():
    """make_model(name, seed=0, **overrides) -> randomised network of a preset, eval mode."""
    def build(name: str, seed: int = 0, **overrides) -> TAPTRv2:
        torch.manual_seed(seed)
        return randomize(TAPTRv2(preset(name, **overrides)), seed).eval()
    return build
