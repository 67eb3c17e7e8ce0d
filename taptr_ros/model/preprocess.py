"""Preprocessing in one place: frames -> network input, pixels <-> normalised coordinates,
visibility decisions.

Frames: RGB uint8 (H, W, 3) are resized to the preset's input size (aspect ratio not kept,
bilinear), scaled to [0, 1] and normalised with the preset's mean/std (ImageNet). The official
code reads videos as RGB; whether the released weights expect RGB is not verified, so
``bgr=True`` documents and handles OpenCV's BGR order explicitly.

Coordinates: pixel (0, 0) is the centre of the top-left pixel; normalised = pixel / (W-1, H-1)
of the image the pixels refer to (official ``compensate_HW_ratio`` rule; the official eval maps
back with the same factors, while the official demo multiplies by (W, H): we use (W-1, H-1)). Normalised coordinates are resolution independent, so points given
in camera pixels are normalised with the camera image's size, not the network input's.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from taptr_ros.model.config import TaptrConfig


def preprocess_frame(image: np.ndarray, config: TaptrConfig, *, bgr: bool = False) -> Tensor:
    """One uint8 image -> normalised network input.

    Args:
        image: (H, W, 3) uint8, RGB (or BGR with ``bgr=True``).
        config: gives input_hw, mean and std.
        bgr: the image is in OpenCV's BGR order; channels are reversed to RGB.

    Returns:
        (3, h, w) float32 tensor (CPU), (h, w) = config.input_hw.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    if bgr:
        image = image[:, :, ::-1]
    h, w = config.input_hw
    if image.shape[:2] != (h, w):
        image = cv2.resize(np.ascontiguousarray(image), (w, h), interpolation=cv2.INTER_LINEAR)
    x = image.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(config.mean, np.float32)) / np.asarray(config.std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def preprocess_frames(frames: np.ndarray, config: TaptrConfig, *, bgr: bool = False) -> Tensor:
    """(T, H, W, 3) uint8 frames -> (T, 3, h, w) float32 network input (see `preprocess_frame`)."""
    return torch.stack([preprocess_frame(f, config, bgr=bgr) for f in frames])


def preprocess_tensor(images: Tensor, config: TaptrConfig, *, bgr: bool = False) -> Tensor:
    """Device-side variant: (B, H, W, 3) uint8 tensor -> (B, 3, h, w) float32 on the same device.

    Uses torch bilinear resizing (half-pixel centres, no antialiasing), which differs from
    OpenCV's by rounding only.
    """
    if images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected (B, H, W, 3) images, got {tuple(images.shape)}")
    x = images.permute(0, 3, 1, 2).float() / 255.0
    if bgr:
        x = x.flip(1)
    if tuple(x.shape[-2:]) != config.input_hw:
        x = F.interpolate(x, size=config.input_hw, mode="bilinear", align_corners=False)
    mean = torch.tensor(config.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(config.std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def _scale(like, width: int, height: int):
    if width < 2 or height < 2:
        raise ValueError(f"image must be at least 2x2 pixels to normalise coordinates, got {width}x{height}")
    if isinstance(like, Tensor):
        return torch.tensor([width - 1, height - 1], dtype=like.dtype, device=like.device)
    return np.array([width - 1, height - 1], dtype=np.result_type(like, np.float32))


def pixels_to_norm(xy_px, width: int, height: int):
    """(..., 2) pixel (x, y) -> normalised by (width-1, height-1). numpy or torch."""
    return xy_px / _scale(xy_px, width, height)


def norm_to_pixels(xy_norm, width: int, height: int):
    """(..., 2) normalised (x, y) -> pixels of a width x height image. numpy or torch."""
    return xy_norm * _scale(xy_norm, width, height)


def visibility_prob(vis_logits: Tensor) -> Tensor:
    """(..., 3) visibility logits -> (...) probability sigmoid(logit[1]) in [0, 1]."""
    return vis_logits[..., 1].sigmoid()


def is_visible(vis_logits: Tensor, threshold: float = 0.5) -> Tensor:
    """(..., 3) logits -> (...) bool, sigmoid(logit[1]) > threshold (official threshold 0.5)."""
    return visibility_prob(vis_logits) > threshold
