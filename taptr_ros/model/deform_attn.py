"""Multi-scale deformable attention in pure PyTorch (`grid_sample`), plain and key-aware.

Conventions (as Deformable DETR):

* A flattened multi-scale map is (B, L, ...) with L = sum_l h_l * w_l tokens, levels in order,
  each level row-major (y then x).
* Sampling locations are normalised (x, y) in [0, 1] with (0, 0) the top-left *corner* of the
  map and (1, 1) the bottom-right corner: a location maps to pixel coordinate loc * w - 0.5
  (bilinear, align_corners=False, zero padding outside the map).
* Offsets predicted by the networks are in pixels of each level: location = reference +
  offset / (w_l, h_l).
* Layouts of the linear outputs: sampling offsets index ((head * nL + level) * nP + point) * 2
  + {x, y}; attention weights (head * nL + level) * nP + point; head h uses channels
  h*D..(h+1)*D-1 of values, keys and queries (D = C / heads).

The modules run the `taptr_ros.model.deform_gather` kernels (bilinear taps through one
`embedding_bag`); the `grid_sample` functions here are their obvious references, and tests
(tests/model/test_fast_path.py) hold both to 1e-5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taptr_ros.model.deform_gather import key_aware_attn_gather, ms_deform_attn_gather


def split_levels(flat: Tensor, shapes: list[tuple[int, int]] | tuple) -> list[Tensor]:
    """(B, L, ...) -> per level (B, h_l * w_l, ...)."""
    return list(flat.split([h * w for h, w in shapes], dim=1))


def sample_levels(values: Tensor, shapes, locations: Tensor) -> Tensor:
    """Bilinear samples of a multi-head multi-scale map (the reference sampler).

    Args:
        values: (B, L, M, D) flattened map, M heads of D channels.
        shapes: per level (h_l, w_l); sum of h_l * w_l == L.
        locations: (B, Q, M, nL, P, 2) normalised (x, y), see the module docstring.

    Returns:
        (B, Q, M, nL, P, D) sampled values (zero outside the map).
    """
    b, _, m, d = values.shape
    _, q, _, nl, p, _ = locations.shape
    grids = 2 * locations - 1
    out = []
    for lvl, (v, (h, w)) in enumerate(zip(split_levels(values, shapes), shapes)):
        v = v.permute(0, 2, 3, 1).reshape(b * m, d, h, w)
        g = grids[:, :, :, lvl].permute(0, 2, 1, 3, 4).reshape(b * m, q, p, 2)
        s = F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False)
        out.append(s.view(b, m, d, q, p).permute(0, 3, 1, 4, 2))  # (B, Q, M, P, D)
    return torch.stack(out, dim=3)


def ms_deform_attn_reference(values: Tensor, shapes, locations: Tensor, weights: Tensor) -> Tensor:
    """Multi-scale deformable attention core, obvious version: weighted sum of `sample_levels`.

    Args:
        values: (B, L, M, D).
        shapes: per level (h_l, w_l).
        locations: (B, Q, M, nL, P, 2) normalised (x, y).
        weights: (B, Q, M, nL, P), summing to 1 over (nL, P) per head.

    Returns:
        (B, Q, M * D), heads concatenated.
    """
    sampled = sample_levels(values, shapes, locations)
    out = (sampled * weights[..., None]).sum(dim=(3, 4))
    return out.flatten(2)


def ms_deform_attn(values: Tensor, shapes, locations: Tensor, weights: Tensor) -> Tensor:
    """Same as `ms_deform_attn_reference` (tested to 1e-5), accumulated level by level in
    `grid_sample`'s own layout, without materialising every sample (a second reference; the
    encoder runs `deform_gather.ms_deform_attn_gather`, faster still)."""
    b, _, m, d = values.shape
    _, q, _, nl, p, _ = locations.shape
    grids = (2 * locations - 1).permute(0, 2, 1, 3, 4, 5)  # (B, M, Q, nL, P, 2)
    w = weights.permute(0, 2, 1, 3, 4)  # (B, M, Q, nL, P)
    out = None
    for lvl, (v, (h, wd)) in enumerate(zip(split_levels(values, shapes), shapes)):
        v = v.permute(0, 2, 3, 1).reshape(b * m, d, h, wd)
        g = grids[:, :, :, lvl].reshape(b * m, q, p, 2)
        s = F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False)  # (B*M, D, Q, P)
        term = torch.einsum("ndqp,nqp->ndq", s, w[:, :, :, lvl].reshape(b * m, q, p))
        out = term if out is None else out + term
    return out.view(b, m, d, q).permute(0, 3, 1, 2).reshape(b, q, m * d)


def sample_keys_values(keys: Tensor, values: Tensor, shapes, locations: Tensor) -> tuple[Tensor, Tensor]:
    """Faster key-aware sampling: keys and values share one `grid_sample` per level.

    Same arguments and results as calling `sample_levels` on each (tested to 1e-5).
    """
    d = keys.shape[-1]
    both = sample_levels(torch.cat((keys, values), dim=-1), shapes, locations)
    return both[..., :d], both[..., d:]


def key_aware_reference(keys: Tensor, values: Tensor, shapes, locations: Tensor,
                        query: Tensor, *, frames: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Key-aware attention core, obvious version (reference of
    `deform_gather.key_aware_attn_gather`, same arguments and results).

    Args:
        keys, values: (B, L, M, D), or (F, L, M, D) read at `frames` (B,).
        locations: (B, Q, M, nL, P, 2); query: (B, Q, M, D).

    Returns:
        out (B, Q, M * D) heads concatenated, logits (B, Q, M, nL, P).
    """
    if frames is not None:
        keys, values = keys[frames], values[frames]
    k_s, v_s = sample_keys_values(keys, values, shapes, locations)  # (B, Q, M, nL, P, D)
    logits = (query[:, :, :, None, None, :] * k_s).sum(-1) / math.sqrt(keys.shape[-1])
    weights = logits.flatten(3).softmax(-1).view_as(logits)
    return (v_s * weights[..., None]).sum(dim=(3, 4)).flatten(2), logits


def _offset_normaliser(shapes, device, dtype) -> Tensor:
    """(nL, 2) = (w_l, h_l): divides pixel offsets (x, y) into normalised units."""
    return torch.tensor([[w, h] for h, w in shapes], device=device, dtype=dtype)


def _init_offsets(linear: nn.Linear, heads: int, levels: int, points: int) -> None:
    """Deformable-DETR initialisation: zero weight, bias = head directions scaled by point index."""
    nn.init.zeros_(linear.weight)
    theta = torch.arange(heads, dtype=torch.float32) * (2.0 * math.pi / heads)
    grid = torch.stack([theta.cos(), theta.sin()], -1)
    grid = grid / grid.abs().max(-1, keepdim=True)[0]
    grid = grid.view(heads, 1, 1, 2).repeat(1, levels, points, 1)
    grid = grid * torch.arange(1, points + 1, dtype=torch.float32).view(1, 1, points, 1)
    with torch.no_grad():
        linear.bias.copy_(grid.flatten())


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention (encoder self-attention), weights from a linear layer.

    Args:
        dim: channels C.
        heads: M.
        levels: nL.
        points: P per head and level.
    """

    def __init__(self, dim: int, heads: int, levels: int, points: int) -> None:
        super().__init__()
        self.heads, self.levels, self.points = heads, levels, points
        self.sampling_offsets = nn.Linear(dim, heads * levels * points * 2)
        self.attention_weights = nn.Linear(dim, heads * levels * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable-DETR initialisation (for training from scratch)."""
        _init_offsets(self.sampling_offsets, self.heads, self.levels, self.points)
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for lin in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, query: Tensor, reference: Tensor, value_in: Tensor, shapes) -> Tensor:
        """
        Args:
            query: (B, Q, C) (features + positional embedding).
            reference: (B, Q, 2) normalised (x, y) reference of each query (same at every level).
            value_in: (B, L, C) flattened multi-scale map.
            shapes: per level (h_l, w_l).

        Returns:
            (B, Q, C).
        """
        b, q, c = query.shape
        m, nl, p = self.heads, self.levels, self.points
        values = self.value_proj(value_in).view(b, -1, m, c // m)
        offsets = self.sampling_offsets(query).view(b, q, m, nl, p, 2)
        weights = self.attention_weights(query).view(b, q, m, nl * p).softmax(-1).view(b, q, m, nl, p)
        norm = _offset_normaliser(shapes, query.device, query.dtype)
        locations = reference[:, :, None, None, None, :] + offsets / norm[None, None, None, :, None, :]
        return self.output_proj(ms_deform_attn_gather(values, shapes, locations, weights))


@dataclass
class KeyAwareResult:
    """Output of `KeyAwareDeformAttn`.

    Attributes:
        out: (B, Q, C) attention output after output_proj.
        logits: (B, Q, M, nL, P) raw query-key logits (before the per-head softmax).
        offsets: (B, Q, M, nL, P, 2) sampling offsets (x, y) in pixels of each level.
    """

    out: Tensor
    logits: Tensor
    offsets: Tensor


class KeyAwareDeformAttn(nn.Module):
    """Key-aware multi-scale deformable cross-attention (Lite-DETR style, TAPTRv2 decoder).

    Keys (key_proj(memory)) and values (value_proj(memory)) are sampled at the same
    deformable locations; the weights are softmax over the nL*P samples of each head of
    query_proj(query) . key / sqrt(D). No positional embedding is added to the memory.
    """

    def __init__(self, dim: int, heads: int, levels: int, points: int) -> None:
        super().__init__()
        self.heads, self.levels, self.points = heads, levels, points
        self.sampling_offsets = nn.Linear(dim, heads * levels * points * 2)
        self.value_proj = nn.Linear(dim, dim)
        self.key_proj = nn.Linear(dim, dim)
        self.query_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable-DETR style initialisation (for training from scratch)."""
        _init_offsets(self.sampling_offsets, self.heads, self.levels, self.points)
        for lin in (self.value_proj, self.key_proj, self.query_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def project_memory(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """(B, L, C) memory -> (keys, values), each (B, L, C). Per token, so per frame."""
        return self.key_proj(memory), self.value_proj(memory)

    def forward(self, query: Tensor, reference: Tensor, memory: Tensor | None, shapes, *,
                keys_values: tuple[Tensor, Tensor] | None = None,
                kv_frames: Tensor | None = None) -> KeyAwareResult:
        """
        Args:
            query: (B, Q, C) content + positional query.
            reference: (B, Q, 2) normalised (x, y) in [0, 1].
            memory: (B, L, C) flattened encoder memory (query b reads memory b only).
            shapes: per level (h_l, w_l).
            keys_values: `project_memory(memory)` computed earlier (e.g. cached per frame);
                when given, `memory` is not read and may be None. (F, L, C) each.
            kv_frames: (B,) long, the frame of `keys_values` query batch b reads (None:
                frame b, F == B).
        """
        b, q, c = query.shape
        m, nl, p = self.heads, self.levels, self.points
        d = c // m
        keys, values = self.project_memory(memory) if keys_values is None else keys_values
        keys, values = keys.reshape(keys.shape[0], -1, m, d), values.reshape(values.shape[0], -1, m, d)
        offsets = self.sampling_offsets(query).view(b, q, m, nl, p, 2)
        norm = _offset_normaliser(shapes, query.device, query.dtype)
        locations = reference[:, :, None, None, None, :] + offsets / norm[None, None, None, :, None, :]
        q_h = self.query_proj(query).view(b, q, m, d)
        # = sample_keys_values + logits q.k/sqrt(D) + softmax over (nL, P) + weighted values
        # (the obvious version, kept as `key_aware_reference`; tested equal to 1e-5)
        out, logits = key_aware_attn_gather(keys, values, shapes, locations, q_h, frames=kv_frames)
        return KeyAwareResult(out=self.output_proj(out), logits=logits, offsets=offsets)
