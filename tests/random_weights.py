"""Deterministic non-trivial weights for test networks (the default init zeroes the heads and
sampling offsets, which would hide bugs). Shared by the model, tracking and perf tests."""

from __future__ import annotations

import math

import torch


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fill every parameter and buffer of `model` in place from a seeded generator; returns it.

    Frozen-BN running variances stay positive, scales near 1, biases small, weights with
    fan-in scaling (sampling offsets and position heads at half gain, so tracks stay inside
    the image).
    """
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
