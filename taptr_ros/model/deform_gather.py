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

Training on CPU: `embedding_bag`'s own backward for the table (a dense scatter-add after a
sort) was 29% of a whole training step (`taptr bench train --profile`). `weighted_row_sum`
keeps the forward and computes the same gradients as the transposed problem instead: the
table's gradient is one `embedding_bag` over the output gradient with the rows sorted into
bags, the weights' gradient a chunked gather-and-dot; about 3.5x faster on CPU (see
`benchmarks/README.md`). CUDA keeps `embedding_bag`'s own backward.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor


def bilinear_taps(locations: Tensor, shapes, num_tokens: int, *, frames: Tensor | None = None,
                  num_frames: int | None = None) -> tuple[Tensor, Tensor]:
    """Table rows and weights of the 4 bilinear corners of every sample.

    Args:
        locations: (B, Q, M, nL, P, 2) normalised (x, y).
        shapes: per level (h_l, w_l); sum of h_l * w_l == num_tokens (L).
        num_tokens: L.
        frames: (B,) long, the table frame each batch entry reads (None = frame b for b).
        num_frames: F, frames in the table (None = B).

    Returns:
        rows: (B, Q, M, nL, P, 4) int32 rows of the (F * L * M, D) view of a contiguous
            (F, L, M, D) map: row = (frames[b] * L + token) * M + m; corners (x0,y0), (x1,y0),
            (x0,y1), (x1,y1). A corner outside its level points at a valid row with weight 0.
        weights: (B, Q, M, nL, P, 4) bilinear weights, dtype of `locations`.
    """
    b, q, m, nl, p, _ = locations.shape
    if len(shapes) != nl:
        raise ValueError(f"{len(shapes)} level shapes for locations with {nl} levels")
    dev, dt, i32 = locations.device, locations.dtype, torch.int32
    k = m * nl * p
    # per (head, level, point) constants, so every op below broadcasts over (B*Q) only
    level = torch.arange(nl, device=dev).view(1, nl, 1).expand(m, nl, p).reshape(k)
    sizes = torch.tensor([[w, h] for h, w in shapes], device=dev)[level]  # (K, 2) = (w, h)
    starts = torch.tensor([0] + [h * w for h, w in shapes][:-1], device=dev).cumsum(0)[level]
    head = torch.arange(m, device=dev).view(m, 1, 1).expand(m, nl, p).reshape(k)
    size_f = sizes.to(dt)
    # pixel coordinates; beyond one pixel outside every corner has weight 0 (clamping there
    # changes no value and no gradient: grid_sample's is 0 there too)
    xy = (locations.reshape(b * q, k, 2) * size_f - 0.5).clamp(min=-1.0).minimum(size_f)
    xy0 = xy.floor()
    frac = xy - xy0
    near = (1 - frac) * ((xy0 >= 0) & (xy0 < size_f))  # weight of corner 0 along x and y
    far = frac * (xy0 + 1 < size_f)  # weight of corner 1
    wx = torch.stack((near[..., 0], far[..., 0]), -1)
    wy = torch.stack((near[..., 1], far[..., 1]), -1)
    weights = (wy[..., :, None] * wx[..., None, :]).reshape(b, q, m, nl, p, 4)  # (0,0) (1,0) (0,1) (1,1)
    # row of corner (x0, y0); the others are +M, +w*M, +(w+1)*M. Rows of zero-weight corners
    # may fall in a neighbouring row, level or batch: clamped into the table, weight 0.
    xy0i = xy0.to(i32)
    w_i = sizes[:, 0].to(i32)
    token = starts.to(i32) + xy0i[..., 1] * w_i + xy0i[..., 0]  # (B*Q, K)
    frame = torch.arange(b, device=dev) if frames is None else frames.to(dev)
    lead = (frame.to(i32).view(b, 1, 1) * (num_tokens * m) + head.to(i32)).view(b, 1, k)
    base = token.view(b, q, k) * m + lead
    corner = torch.stack((torch.zeros_like(w_i), torch.ones_like(w_i), w_i, w_i + 1), -1) * m
    rows = (base[..., None] + corner).clamp_(0, (num_frames or b) * num_tokens * m - 1)
    return rows.view(b, q, m, nl, p, 4), weights


_WEIGHT_GRAD_CHUNK = 1024  # bags per gather in the weights' gradient: the chunk stays in cache
_fast_cpu_backward = True


@contextlib.contextmanager
def cpu_backward(fast: bool) -> Iterator[None]:
    """Forwards run within the block record `_WeightedRowSum`'s CPU backward (fast=True, the
    default) or `embedding_bag`'s own (fast=False; `taptr bench train --gather-backward`)."""
    global _fast_cpu_backward
    previous, _fast_cpu_backward = _fast_cpu_backward, fast
    try:
        yield
    finally:
        _fast_cpu_backward = previous


class _WeightedRowSum(torch.autograd.Function):
    """out[n] = sum_k weights[n, k] * table[rows[n, k]], with a cheap CPU backward."""

    @staticmethod
    def forward(ctx, rows: Tensor, table: Tensor, weights: Tensor) -> Tensor:
        ctx.save_for_backward(rows, table, weights)
        return F.embedding_bag(rows, table, per_sample_weights=weights, mode="sum")

    @staticmethod
    def backward(ctx, grad: Tensor):
        rows, table, weights = ctx.saved_tensors
        n, k = rows.shape
        d = table.shape[1]
        grad = grad.contiguous()
        flat = rows.reshape(-1)
        grad_table = grad_weights = None
        if ctx.needs_input_grad[1]:
            # d table[v] = sum over (n, k) with rows[n, k] == v of weights[n, k] * grad[n]:
            # a weighted bag sum of grad rows, one bag per table row (rows sorted into bags)
            sorted_rows, order = torch.sort(flat)
            counts = torch.bincount(sorted_rows, minlength=table.shape[0])
            offsets = torch.zeros_like(counts)
            offsets[1:] = counts.cumsum(0)[:-1]
            grad_table = F.embedding_bag(order // k, grad, offsets,
                                         per_sample_weights=weights.reshape(-1)[order],
                                         mode="sum")
        if ctx.needs_input_grad[2]:
            # d weights[n, k] = table[rows[n, k]] . grad[n], gathered a chunk of bags at a time
            grad_weights = torch.empty_like(weights)
            for start in range(0, n, _WEIGHT_GRAD_CHUNK):
                stop = min(n, start + _WEIGHT_GRAD_CHUNK)
                taps = table.index_select(0, flat[start * k:stop * k]).view(stop - start, k, d)
                torch.bmm(taps, grad[start:stop, :, None], out=grad_weights[start:stop, :, None])
        return None, grad_table, grad_weights


def weighted_row_sum(rows: Tensor, table: Tensor, weights: Tensor) -> Tensor:
    """Weighted sums of table rows: `F.embedding_bag(rows, table, per_sample_weights=weights,
    mode="sum")`, with the cheaper backward of `_WeightedRowSum` when it trains on CPU.

    Args:
        rows: (N, K) int32 or int64 rows of `table`.
        table: (V, D).
        weights: (N, K), cast to the dtype of `table`.

    Returns:
        (N, D): out[n] = sum_k weights[n, k] * table[rows[n, k]].
    """
    weights = weights.to(table.dtype)  # under autocast the table may be bf16/fp16, the weights fp32
    needs_grad = torch.is_grad_enabled() and (table.requires_grad or weights.requires_grad)
    if needs_grad and _fast_cpu_backward and table.device.type == "cpu":
        return _WeightedRowSum.apply(rows, table, weights.contiguous())
    if needs_grad and table.dtype == torch.bfloat16 and table.device.type != "cpu":
        # CUDA has no bf16 backward for per-sample weights: this sum trains in float32
        out = F.embedding_bag(rows, table.float(), per_sample_weights=weights.float(), mode="sum")
        return out.to(table.dtype)
    return F.embedding_bag(rows, table, per_sample_weights=weights, mode="sum")


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
    out = weighted_row_sum(rows.view(b * q * m, -1), _table(values), tap_w.view(b * q * m, -1))
    return out.view(b, q, m * d)


def key_aware_attn_gather(keys: Tensor, values: Tensor, shapes, locations: Tensor,
                          query: Tensor, *, frames: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Key-aware deformable attention core (TAPTRv2 decoder cross-attention).

    logits = query_h . key sampled at each location / sqrt(D); weights = softmax over the
    nL * P samples of each head; out = sum of weights * value sampled at the same locations.
    Same as the `deform_attn.sample_keys_values` reference followed by those three lines.

    Args:
        keys, values: (F, L, M, D) projected memory of F frames (F = B without `frames`).
        shapes: per level (h_l, w_l).
        locations: (B, Q, M, nL, P, 2) normalised (x, y).
        query: (B, Q, M, D) projected query per head.
        frames: (B,) long, the frame of `keys`/`values` batch entry b reads (e.g. ring-buffer
            slots, so a window's keys and values need not be copied out); None = frame b.

    Returns:
        out: (B, Q, M * D) heads concatenated (before the output projection).
        logits: (B, Q, M, nL, P) pre-softmax logits.
    """
    num_frames, length, m, d = keys.shape
    b, q, _, nl, p, _ = locations.shape
    if frames is None and num_frames != b:
        raise ValueError(f"{num_frames} frames of keys for a batch of {b}: pass frames=")
    rows, bil = bilinear_taps(locations, shapes, length, frames=frames, num_frames=num_frames)
    bil = bil.to(keys.dtype)
    k_s = weighted_row_sum(rows.view(-1, 4), _table(keys), bil.view(-1, 4))  # (B*Q*M*nL*P, D)
    logits = torch.bmm(k_s.view(b * q * m, nl * p, d), query.reshape(b * q * m, d, 1))
    logits = logits.view(b, q, m, nl, p) / math.sqrt(d)
    attn = logits.flatten(3).softmax(-1).view(b, q, m, nl, p, 1)
    tap_w = (bil * attn).view(b * q * m, -1)
    out = weighted_row_sum(rows.view(b * q * m, -1), _table(values), tap_w)
    return out.view(b, q, m * d), logits
