"""Sine position encodings: of feature maps (encoder) and of normalised coordinates (decoder).

Both use interleaved (sin, cos) pairs: channel pair (2k, 2k+1) of a coordinate c holds
(sin, cos)(c * 2*pi / T^(2k/D)), with D channels per coordinate and temperature T.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _frequencies(dim: int, temperature: float, device, dtype) -> Tensor:
    """(dim,) divisors T^(2*floor(k/2)/dim) for channel k."""
    k = torch.arange(dim, dtype=torch.float32, device=device)
    return (temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / dim)).to(dtype)


def _interleave(angles: Tensor) -> Tensor:
    """(..., D) angles -> (..., D) with sin on even and cos on odd channels."""
    return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1).flatten(-2)


def sine_map(h: int, w: int, channels: int, temperature: float, *, device=None,
             dtype=torch.float32) -> Tensor:
    """Sine positional map of an (h, w) feature level, without the level embedding.

    Row i has e_y = (i+1) / (h + 1e-6) * 2*pi and column j e_x = (j+1) / (w + 1e-6) * 2*pi
    (the normalised cumulative-sum convention of DETR). The first channels/2 channels encode
    y, the next channels/2 encode x.

    Returns:
        (channels, h, w) tensor.
    """
    half = channels // 2
    scale = 2 * math.pi
    y = torch.arange(1, h + 1, dtype=torch.float32, device=device)
    x = torch.arange(1, w + 1, dtype=torch.float32, device=device)
    y = y / (h + 1e-6) * scale
    x = x / (w + 1e-6) * scale
    freq = _frequencies(half, temperature, device, torch.float32)
    pos_y = _interleave(y[:, None] / freq)  # (h, half)
    pos_x = _interleave(x[:, None] / freq)  # (w, half)
    pos = torch.cat((pos_y[:, None, :].expand(h, w, half), pos_x[None, :, :].expand(h, w, half)), dim=-1)
    return pos.permute(2, 0, 1).contiguous().to(dtype)


def sine_embed(coords: Tensor, dim_per_coord: int, temperature: float) -> Tensor:
    """Sine embedding of normalised coordinates, concatenated in the given coordinate order.

    Args:
        coords: (..., K) values, usually in [0, 1] (positions) or small (deltas).
        dim_per_coord: channels per coordinate (even).
        temperature: frequency temperature (official 10).

    Returns:
        (..., K * dim_per_coord): for each coordinate in order, (sin, cos)(c * 2*pi / T^(2k/D)) pairs.
    """
    freq = _frequencies(dim_per_coord, temperature, coords.device, coords.dtype)
    angles = coords[..., None] * (2 * math.pi) / freq  # (..., K, D)
    return _interleave(angles).flatten(-2)


def sine_embed_box(box: Tensor, dim_per_coord: int, temperature: float) -> Tensor:
    """Embedding of a (x, y, w, h) reference in sigmoid space: concatenation in order y, x, w, h.

    Args:
        box: (..., 4) as (x, y, w, h) in [0, 1].

    Returns:
        (..., 4 * dim_per_coord).
    """
    return sine_embed(box[..., [1, 0, 2, 3]], dim_per_coord, temperature)


def sine_embed_delta(delta_xy: Tensor, dim_per_coord: int, temperature: float) -> Tensor:
    """Embedding of an (x, y) displacement in normalised units, in order y, x.

    Args:
        delta_xy: (..., 2) as (dx, dy).

    Returns:
        (..., 2 * dim_per_coord).
    """
    return sine_embed(delta_xy[..., [1, 0]], dim_per_coord, temperature)
