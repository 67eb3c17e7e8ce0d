"""Deformable encoder over one frame's multi-scale features (Deformable-DETR, post-norm)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taptr_ros.model.config import TaptrConfig
from taptr_ros.model.deform_attn import MSDeformAttn
from taptr_ros.model.position_encoding import sine_map


class EncoderLayer(nn.Module):
    """Deformable self-attention, residual + LayerNorm, FFN (ReLU), residual + LayerNorm."""

    def __init__(self, config: TaptrConfig) -> None:
        super().__init__()
        c = config.hidden_dim
        self.attn = MSDeformAttn(c, config.num_heads, config.num_levels, config.num_points)
        self.norm_attn = nn.LayerNorm(c)
        self.linear1 = nn.Linear(c, config.ffn_dim)
        self.linear2 = nn.Linear(config.ffn_dim, c)
        self.norm_ffn = nn.LayerNorm(c)

    def forward(self, src: Tensor, pos: Tensor, reference: Tensor, shapes) -> Tensor:
        """
        Args:
            src: (B, L, C) tokens.
            pos: (B or 1, L, C) sine position + level embedding.
            reference: (1, L, 2) normalised (x, y) pixel centres of each token.
            shapes: per level (h_l, w_l).

        Returns:
            (B, L, C).
        """
        ref = reference.expand(src.shape[0], -1, -1)
        src = self.norm_attn(src + self.attn(src + pos, ref, src, shapes))
        return self.norm_ffn(src + self.linear2(F.relu(self.linear1(src), inplace=True)))


def token_references(shapes, *, device=None, dtype=torch.float32) -> Tensor:
    """(1, L, 2) normalised (x, y) = ((j + 0.5) / w_l, (i + 0.5) / h_l) of every token."""
    refs = []
    for h, w in shapes:
        y = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        x = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        yy, xx = torch.meshgrid(y, x, indexing="ij")
        refs.append(torch.stack((xx.reshape(-1), yy.reshape(-1)), -1))
    return torch.cat(refs, 0)[None].to(dtype)


class Encoder(nn.Module):
    """Projected levels of independent frames -> flattened encoder memory.

    Each frame is encoded on its own (frames are the batch dimension).
    """

    def __init__(self, config: TaptrConfig) -> None:
        super().__init__()
        self.config = config
        self.level_embed = nn.Parameter(torch.zeros(config.num_levels, config.hidden_dim))
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.enc_layers))
        nn.init.normal_(self.level_embed)
        self._static: dict[tuple, tuple[Tensor, Tensor, Tensor]] = {}  # not state: rebuilt on demand

    def static_inputs(self, shapes, *, device=None, dtype=torch.float32) -> tuple[Tensor, Tensor, Tensor]:
        """What the encoder adds that depends on nothing learned, cached per (shapes, device,
        dtype): flattened sine positions (L, C) without level embedding, the level of each
        token (L,) long, and `token_references` (1, L, 2)."""
        key = (tuple(tuple(s) for s in shapes), torch.device(device or "cpu"), dtype)
        if key not in self._static:
            with torch.inference_mode(False), torch.no_grad():  # usable by training later
                self._static[key] = self._build_static(shapes, device, dtype)
        return self._static[key]

    def _build_static(self, shapes, device, dtype) -> tuple[Tensor, Tensor, Tensor]:
        maps = self.position_maps(shapes, device=device, dtype=dtype)
        sine = torch.cat([m.flatten(1).transpose(0, 1) for m in maps], 0)
        level = torch.cat([torch.full((h * w,), lvl, dtype=torch.long, device=device)
                           for lvl, (h, w) in enumerate(shapes)])
        return sine, level, token_references(shapes, device=device, dtype=dtype)

    def position_maps(self, shapes, *, device=None, dtype=torch.float32) -> list[Tensor]:
        """Sine position map of each level, without level embedding: (C, h_l, w_l) each."""
        c, t = self.config.hidden_dim, self.config.map_pos_temperature
        return [sine_map(h, w, c, t, device=device, dtype=dtype) for h, w in shapes]

    def positions(self, shapes, *, device=None, dtype=torch.float32) -> Tensor:
        """(1, L, C) flattened sine positions + level embedding, as the encoder adds them."""
        maps = self.position_maps(shapes, device=device, dtype=dtype)
        flat = [m.flatten(1).transpose(0, 1) + self.level_embed[lvl] for lvl, m in enumerate(maps)]
        return torch.cat(flat, 0)[None]

    def forward(self, levels: list[Tensor]) -> Tensor:
        """
        Args:
            levels: per level (B, C, h_l, w_l) projected features of B independent frames.

        Returns:
            memory: (B, L, C) with L = sum_l h_l * w_l, levels in order, row-major.
        """
        shapes = [tuple(x.shape[-2:]) for x in levels]
        src = torch.cat([x.flatten(2).transpose(1, 2) for x in levels], dim=1)
        sine, level, ref = self.static_inputs(shapes, device=src.device, dtype=src.dtype)
        pos = (sine + self.level_embed[level].to(src.dtype))[None]  # = self.positions(shapes)
        for layer in self.layers:
            src = layer(src, pos, ref, shapes)
        return src
