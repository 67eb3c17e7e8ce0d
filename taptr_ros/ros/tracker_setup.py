"""Parameters -> the tracking room's factory -> an `OnlineTracker` (no tracking logic here).

What the factory does not take is applied here: the precision check (fp16 needs CUDA) and
torch's CPU threads (halved for the node's two-stage pipeline). The input size goes to the
factory (`load_model(input_hw=...)`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from taptr_ros.ros.parameters import NodeParameters
from taptr_ros.tracking import ModelLoadError, OnlineTracker, TrackerOptions
from taptr_ros.tracking.factory import load_model, resolve_checkpoint, resolve_device

DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class TrackerInfo:
    """What the node tells about its model (log line, diagnostics)."""

    device: str
    summary: str


def build_tracker(p: NodeParameters) -> tuple[OnlineTracker, TrackerInfo]:
    """The tracker the node's parameters describe.

    Raises:
        TrackerError: missing or mismatched checkpoint, unavailable device, bad options (the
            factory's messages, which name the fix).
    """
    path = resolve_checkpoint(p.checkpoint)  # fails fast, before any weights are read
    device = resolve_device(p.device)
    if p.precision == "fp16" and device.type != "cuda":
        raise ModelLoadError(f"precision fp16 needs a CUDA device, not {device}: use bf16 or "
                             "fp32 on the CPU")
    if p.cpu_threads:
        torch.set_num_threads(p.cpu_threads)
    elif p.pipeline:  # two stages run at once: each gets half of the cores torch would use
        torch.set_num_threads(max(1, torch.get_num_threads() // 2))
    dtype = DTYPES[p.precision]
    model = load_model(path, preset=p.preset or None, device=device, dtype=dtype, input_hw=p.input_hw,
                       window_passes=p.window_passes or None)
    options = TrackerOptions(window=p.window_size or None, stride=p.window_stride or None,
                             mode=p.mode, max_points=p.max_points, pad_queries_to=p.pad_queries_to,
                             visibility_threshold=p.visibility_threshold, bgr=p.bgr)
    tracker = OnlineTracker(model, options)
    h, w = model.config.input_hw
    k = model.config.start_velocity_frames
    start = f"next frames start along the velocity of the last {k}" if k else "next frames start at the tail"
    q = model.config.query_velocity_frames if model.config.window_passes > 1 else 0
    if q:
        start += f", a new point's far frames along its first {q}"
        gate = model.config.query_velocity_gate
        start += f" unless within {gate:g} px" if gate else ""
    summary = (f"{model.config.name} ({h}x{w} input, window {tracker.options.window}/"
               f"{tracker.options.stride}, {model.config.window_passes} decoder pass(es) a window, "
               f"{start}, {p.precision}) from {path}")
    return tracker, TrackerInfo(device=str(tracker.device), summary=summary)
