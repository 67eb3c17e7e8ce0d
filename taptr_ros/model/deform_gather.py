"""Fast multi-scale deformable sampling: bilinear taps gathered with one `embedding_bag`.

The fast path of `taptr_ros.model.deform_attn` (whose `grid_sample` functions stay the slow,
obvious reference; tests assert both agree to 1e-5). Conventions are the same (see that
module): a flattened multi-scale map (B, L, M, D), levels in order, each row-major; locations
normalised (x, y) with (0, 0) the top-left corner of the map, pixel coordinate
loc * w_l - 0.5, bilinear, zero outside the map.

Why: `grid_sample` on a (B*M, D, h, w) map reads every channel at a different address and
materialises every (sample, channel) before the attention weights are applied. Here each of
the 4 bilinear corners of a sample is a row of D contiguous channels of the (B*L*M, D) table,
and the attention weights fold into the corner weights, so all heads and all levels go
through one `embedding_bag` call (a weighted sum of rows, optimised on CPU and CUDA) without
materialising the samples; it differentiates with respect to the table and the weights (hence
the locations), as `grid_sample` does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def bilinear_taps(locations: Tensor, shapes, num_tokens: int) -> tuple[Tensor, Tensor]:
    """Table rows and weights of the 4 bilinear corners of every sample.

    Args:
        locations: (B, Q, M, nL, P, 2) normalised (x, y).
        shapes: per level (h_l, w_l); sum of h_l * w_l == num_tokens (L).
        num_tokens: L.

    Returns:
        rows: (B, Q, M, nL, P, 4) int32 rows of the (B * L * M, D) view of a contiguous
            (B, L, M, D) map: row = (b * L + token) * M + m; corners (x0,y0), (x1,y0), (x0,y1),
            (x1,y1). A corner outside its level points at a valid row with weight 0.
        weights: (B, Q, M, nL, P, 4) bilinear weights, dtype of `locations`.
    """
    b, q, m, nl, p, _ = locations.shape
    if len(shapes) != nl:
        raise ValueError(f"{len(shapes)} level shapes for locations with {nl} levels")
    dev, dt = locations.device, locations.dtype
    hw = torch.tensor([[h, w] for h, w in shapes], device=dev)  # (nL, 2) long
    starts = torch.tensor([0] + [h * w for h, w in shapes][:-1], device=dev).cumsum(0)
    h_l = hw[:, 0].view(nl, 1)
    w_l = hw[:, 1].view(nl, 1)
    x = locations[..., 0] * w_l.to(dt) - 0.5  # (B, Q, M, nL, P)
    y = locations[..., 1] * h_l.to(dt) - 0.5
    x0f, y0f = x.floor(), y.floor()
    fx, fy = x - x0f, y - y0f
    x0, y0 = x0f.long(), y0f.long()
    # corner order (dx, dy): (0,0), (1,0), (0,1), (1,1)
    xs = torch.stack((x0, x0 + 1, x0, x0 + 1), -1)
    ys = torch.stack((y0, y0, y0 + 1, y0 + 1), -1)
    wx = torch.stack((1 - fx, fx, 1 - fx, fx), -1)
    wy = torch.stack((1 - fy, 1 - fy, fy, fy), -1)
    w_l4, h_l4 = w_l[..., None], h_l[..., None]  # (nL, 1, 1) against (.., nL, P, 4)
    inside = (xs >= 0) & (xs < w_l4) & (ys >= 0) & (ys < h_l4)
    token = starts.view(nl, 1, 1) + ys.clamp(min=0) * w_l4 + xs.clamp(min=0)
    token = torch.where(inside, token, torch.zeros((), dtype=token.dtype, device=dev))
    batch = torch.arange(b, device=dev).view(b, 1, 1, 1, 1, 1) * num_tokens
    head = torch.arange(m, device=dev).view(1, 1, m, 1, 1, 1)
    rows = ((batch + token) * m + head).to(torch.int32)
    weights = wx * wy * inside.to(dt)
    return rows, weights


def _table(values: Tensor) -> Tensor:
    """(B, L, M, D) -> (B * L * M, D) contiguous view (a copy only if not contiguous)."""
    return values.reshape(-1, values.shape[-1])


def ms_deform_attn_gather(values: Tensor, shapes, locations: Tensor, weights: Tensor) -> Tensor:
    """Multi-scale deformable attention core; same as `deform_attn.ms_deform_attn_reference`.

    Args:
        values: (B, L, M, D).
        shapes: per level (h_l, w_l).
        locations: (B, Q, M, nL, P, 2) normalised (x, y).
        weights: (B, Q, M, nL, P) attention weights.

    Returns:
        (B, Q, M * D), heads concatenated.
    """
    b, length, m, d = values.shape
    q = locations.shape[1]
    rows, bil = bilinear_taps(locations, shapes, length)
    tap_w = (bil * weights[..., None]).to(values.dtype)
    out = F.embedding_bag(rows.view(b * q * m, -1), _table(values),
                          per_sample_weights=tap_w.view(b * q * m, -1), mode="sum")
    return out.view(b, q, m * d)


def key_aware_attn_gather(keys: Tensor, values: Tensor, shapes, locations: Tensor,
                          query: Tensor) -> tuple[Tensor, Tensor]:
    """Key-aware deformable attention core (TAPTRv2 decoder cross-attention).

    logits = query_h . key sampled at each location / sqrt(D); weights = softmax over the
    nL * P samples of each head; out = sum of weights * value sampled at the same locations.
    Same as the `deform_attn.sample_keys_values` reference followed by those three lines.

    Args:
        keys, values: (B, L, M, D) projected memory.
        shapes: per level (h_l, w_l).
        locations: (B, Q, M, nL, P, 2) normalised (x, y).
        query: (B, Q, M, D) projected query per head.

    Returns:
        out: (B, Q, M * D) heads concatenated (before the output projection).
        logits: (B, Q, M, nL, P) pre-softmax logits.
    """
    b, length, m, d = keys.shape
    _, q, _, nl, p, _ = locations.shape
    rows, bil = bilinear_taps(locations, shapes, length)
    bil = bil.to(keys.dtype)
    k_s = F.embedding_bag(rows.view(-1, 4), _table(keys), per_sample_weights=bil.view(-1, 4),
                          mode="sum")  # (B*Q*M*nL*P, D)
    logits = torch.bmm(k_s.view(b * q * m, nl * p, d), query.reshape(b * q * m, d, 1))
    logits = logits.view(b, q, m, nl, p) / math.sqrt(d)
    attn = logits.flatten(3).softmax(-1).view(b, q, m, nl, p, 1)
    tap_w = (bil * attn).view(b * q * m, -1)
    out = F.embedding_bag(rows.view(b * q * m, -1), _table(values), per_sample_weights=tap_w,
                          mode="sum")
    return out.view(b, q, m * d), logits
