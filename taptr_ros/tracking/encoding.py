"""A frame's encoding, apart from the engine's state: the half of a push that a second thread
can run while the previous frame is still being decoded.

`encode_frame` resizes and normalises one camera frame, runs backbone + encoder and, when the
engine caches them, every decoder layer's cross-attention keys and values. None of it depends
on the stream (points, windows, earlier frames), so frame t + 1 can be encoded while frame t
is decoded: on a CPU with two cores the two halves of consecutive frames then run at once
(`OnlineTracker.encode` / ``OnlineTracker.push(encoded)``; the node's ``pipeline`` parameter).
The results are those of a plain ``push(frame)``, bit for bit (tested).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from taptr_ros.model.preprocess import preprocess_frame
from taptr_ros.model.taptr import TAPTRv2
from taptr_ros.tracking.errors import FrameError


@dataclass(frozen=True)
class EncodedFrame:
    """One frame's encoder output, ready for `OnlineTracker.push`.

    Attributes:
        memory: (L, C) encoder memory on the model's device and dtype.
        keys, values: (nD, L, C) cross-attention keys and values of every decoder layer, or
            None when the engine does not cache them.
        hw: (height, width) of the camera frame in pixels (results are in its pixels).
        preprocess_ms, encode_ms: time spent resizing/normalising and encoding (wall clock;
            device time on CUDA, which is synchronised).
        model: the network that encoded it (a tracker refuses frames of another network).
    """

    memory: Tensor
    keys: Tensor | None
    values: Tensor | None
    hw: tuple[int, int]
    preprocess_ms: float
    encode_ms: float
    model: TAPTRv2


def check_frame(frame: object) -> tuple[int, int]:
    """(height, width) of a valid camera frame.

    Raises:
        FrameError: not an (H, W, 3) uint8 numpy array with H, W >= 2.
    """
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 \
            or frame.dtype != np.uint8 or min(frame.shape[:2]) < 2:
        desc = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise FrameError(f"a frame must be an (H, W, 3) uint8 numpy array with H, W >= 2, got {desc}")
    return int(frame.shape[0]), int(frame.shape[1])


def _sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


@torch.inference_mode()
def encode_frame(model: TAPTRv2, frame: np.ndarray, *, bgr: bool, with_keys_values: bool) -> EncodedFrame:
    """Encode one camera frame (any size) with `model` on its device and dtype.

    Args:
        frame: (H, W, 3) uint8, RGB (BGR with ``bgr``).
        with_keys_values: also project the decoder's keys and values (the engine's
            ``cache_projections``).

    Raises:
        FrameError: a malformed frame (nothing is encoded).
    """
    hw = check_frame(frame)
    param = next(model.parameters())
    t0 = time.perf_counter()
    image = preprocess_frame(frame, model.config, bgr=bgr).to(param.device, param.dtype, non_blocking=True)
    t1 = _sync(param.device)
    memory = model.encode_frames(image[None])
    keys = values = None
    if with_keys_values:
        keys, values = model.project_memory(memory)
        keys, values = keys[:, 0], values[:, 0]
    t2 = _sync(param.device)
    return EncodedFrame(memory[0], keys, values, hw, 1e3 * (t1 - t0), 1e3 * (t2 - t1), model)
