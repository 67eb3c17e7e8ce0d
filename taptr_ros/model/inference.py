"""Inference-time speed options that leave the weights alone: mixed precision and torch.compile.

* `precision_context(device, precision)`: ``fp32`` runs as is; ``fp16`` / ``bf16`` run the
  network under `torch.autocast` (matrix products and convolutions in half precision, the
  positions, logits and the tracker's state in fp32). Measured on the tiny network with
  random weights over a 16-frame video (tests/model/test_fast_path.py holds the fp16 bound):
  fp16 positions within 2e-3 of fp32 (normalised; about 1 px at 640 px), bf16 within 2e-2
  (mean 2.5e-3): bf16's 8-bit mantissa is too coarse for sub-pixel tracks. Casting the
  weights and the state to bf16 instead is no better (1.5e-2 max). Intended for CUDA; the
  CPU keeps fp32 (half precision is slower there without AMX).
* `compile_model(model)`: `torch.compile` of the backbone, encoder and decoder forwards, in
  place (state_dict names unchanged). Optional: the first call of each new shape compiles
  (minutes on a small CPU); measured 12-35% less decoder time on the CPU afterwards.
"""

from __future__ import annotations

import contextlib

import torch

from taptr_ros.model.taptr import TAPTRv2

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def precision_context(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """A context in which the network runs at `precision` (see the module docstring).

    Raises:
        ValueError: unknown precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {sorted(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


COMPILED_PARTS = ("backbone", "encoder", "decoder")


def compile_model(model: TAPTRv2, *, parts: tuple[str, ...] = COMPILED_PARTS, dynamic: bool = True,
                  mode: str | None = None) -> TAPTRv2:
    """Compile the forwards of `parts` of `model` in place; returns it.

    Args:
        parts: submodules to compile (names in `COMPILED_PARTS`).
        dynamic: compile for symbolic sizes (points, window frames), fewer recompilations.
        mode: `torch.compile`'s mode (e.g. "reduce-overhead" on CUDA), None = default.

    Raises:
        ValueError: an unknown part.
    """
    unknown = sorted(set(parts) - set(COMPILED_PARTS))
    if unknown:
        raise ValueError(f"cannot compile {unknown}: parts are {COMPILED_PARTS}")
    for name in parts:
        module = getattr(model, name)
        module.forward = torch.compile(module.forward, dynamic=dynamic, mode=mode)
    return model
