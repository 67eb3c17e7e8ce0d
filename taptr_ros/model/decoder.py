"""TAPTRv2 decoder on one window: key-aware cross-attention + APU, temporal and spatial
self-attention, FFN, per-layer position and visibility heads.

Frames of the window are the batch: frame k's queries only read frame k's memory. Positions
("references") are (x, y, w, h): x, y normalised by the input size (0 = centre of the first
pixel row/column, 1 = centre of the last one, as the (W-1, H-1) convention), w, h an internal
box state (0.5 at start) that the delta heads update and that feeds the sine embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taptr_ros.model.config import TaptrConfig
from taptr_ros.model.deform_attn import KeyAwareDeformAttn
from taptr_ros.model.position_encoding import sine_embed_box, sine_embed_delta


def inverse_sigmoid(x: Tensor, eps: float = 1e-3) -> Tensor:
    """logit(x) with x clamped to [0, 1] and both x and 1 - x to at least `eps` (official)."""
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


class MLP(nn.Module):
    """Linear layers `layers.{i}` with ReLU between them, none after the last."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def mlp_sequential(dims: list[int], *, final_relu: bool = False) -> nn.Sequential:
    """nn.Sequential(Linear, ReLU, Linear, ...): linears at even indices (official numbering)."""
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        mods.append(nn.Linear(a, b))
        if final_relu or i < len(dims) - 2:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def init_identity_relu_mlp(mlp: nn.Sequential) -> None:
    """Initialise Linear(n, c), ReLU, Linear(c, c), ReLU, Linear(c, n) to the identity map
    (needs c >= 2n): x -> [x; -x] -> ReLU -> copy -> ReLU -> relu(x) - relu(-x) = x.

    Our choice for training from scratch (the official code keeps PyTorch's default init): the
    APU then starts as the attention-weighted mean of the sampling offsets, a soft-argmax of the
    query-key correlation, so the position loss reaches the features from the first step.
    Does nothing when c < 2n. Loaded weights replace it.
    """
    first, middle, last = mlp[0], mlp[2], mlp[4]
    n, c = first.in_features, first.out_features
    if c < 2 * n:
        return
    eye = torch.eye(n)
    with torch.no_grad():
        for layer in (first, middle, last):
            layer.weight.zero_()
            layer.bias.zero_()
        first.weight[:n] = eye
        first.weight[n:2 * n] = -eye
        middle.weight[:2 * n, :2 * n] = torch.eye(2 * n)
        last.weight[:, :n] = eye
        last.weight[:, n:2 * n] = -eye


class MaskedSelfAttention(nn.Module):
    """Multi-head attention, `nn.MultiheadAttention` parameter layout, boolean "blocked" masks.

    Parameters: in_proj_weight (3C, C) = rows [W_q; W_k; W_v], in_proj_bias (3C), out_proj.
    Scale 1/sqrt(C/heads). A row whose keys are all blocked attends to itself only (the
    TAPTRv2 masks never produce such a row: a query always shares its own tracked state).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, qk: Tensor, v: Tensor, blocked: Tensor | None) -> Tensor:
        """
        Args:
            qk: (B, S, C) query = key input (content + position).
            v: (B, S, C) value input (content).
            blocked: (B, S, S) bool, True = query i may not attend to key j; None = nothing
                blocked (no mask is built: the fused attention kernels run unmasked, which
                matters at thousands of points, where an (S, S) mask per frame is large).

        Returns:
            (B, S, C).
        """
        b, s, c = qk.shape
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        heads = [F.linear(x, w, bias).view(b, s, self.heads, c // self.heads).transpose(1, 2)
                 for x, w, bias in ((qk, w_q, b_q), (qk, w_k, b_k), (v, w_v, b_v))]
        allowed = None
        if blocked is not None:
            eye = torch.eye(s, dtype=torch.bool, device=qk.device)
            allowed = (~blocked | (eye & blocked.all(-1, keepdim=True)))[:, None]
        out = F.scaled_dot_product_attention(*heads, attn_mask=allowed)
        return self.out_proj(out.transpose(1, 2).reshape(b, s, c))

    def self_only(self, v: Tensor) -> Tensor:
        """What `forward` gives when every query may attend only to itself (the softmax over
        one key is 1): out_proj(W_v v + b_v). v (..., C) -> (..., C)."""
        _, w_v = self.in_proj_weight.split((2 * v.shape[-1], v.shape[-1]))
        return self.out_proj(F.linear(v, w_v, self.in_proj_bias[2 * v.shape[-1]:]))


def exclusive_mask(tracked: Tensor) -> Tensor:
    """(B, S) bool -> (B, S, S) blocked where exactly one of the pair is tracked."""
    return tracked[:, :, None] != tracked[:, None, :]


def exclusive_mask_or_none(tracked: Tensor) -> Tensor | None:
    """`exclusive_mask`, or None when it blocks nothing (each row of `tracked` all True or all
    False, e.g. every point started before the window): same attention, no (B, S, S) mask."""
    uniform = tracked.all(-1) | ~tracked.any(-1)
    return None if bool(uniform.all()) else exclusive_mask(tracked)


@dataclass
class WindowOutput:
    """Result of decoding one window of W frames for N points with nD decoder layers.

    Positions are (x, y, w, h) in sigmoid space (x, y normalised by (W-1, H-1) of the input).

    Attributes:
        pos_apu: (nD, W, N, 4) position after each layer's APU.
        pos: (nD, W, N, 4) position after each layer's delta head (the next layer's reference).
        vis_logits: (nD, W, N, 3) visibility logits per layer (visible <=> sigmoid(logit[1]) > thr).
        apu_delta: (nD, W, N, 2) APU displacement (x, y) actually applied (0 where not updated).
        layer_feat: (nD, W, N, C) content after each layer (after the FFN's norm).
        hs: (nD, W, N, C) fused head feature g of each layer.
        ref_out: (W, N, 4) last layer's position in logit space (the new trajectory state).
        content_out: (W, N, C) post-window content: f_in + update * between_window_updater([f0, f_in, g_last])
            (the delta dropped with p = 0.6 in training mode, as the official recipe).
    """

    pos_apu: Tensor
    pos: Tensor
    vis_logits: Tensor
    apu_delta: Tensor
    layer_feat: Tensor
    hs: Tensor
    ref_out: Tensor
    content_out: Tensor


class DecoderLayer(nn.Module):
    """One TAPTRv2 decoder layer (order: cross-attention + APU, temporal, spatial, FFN)."""

    def __init__(self, config: TaptrConfig) -> None:
        super().__init__()
        c, m = config.hidden_dim, config.num_heads
        n_logits = m * config.num_levels * config.num_points
        self.cross_attn = KeyAwareDeformAttn(c, m, config.num_levels, config.num_points)
        self.norm_cross = nn.LayerNorm(c)
        # APU "disentangler": 128 logits -> C ReLU -> C ReLU -> 128 (softmax applied outside).
        self.apu_weights = nn.Sequential(nn.Linear(n_logits, c), nn.ReLU(), nn.Linear(c, c), nn.ReLU(),
                                         nn.Linear(c, n_logits))
        init_identity_relu_mlp(self.apu_weights)
        self.apu_pos_head = MLP([2 * c, c, c])
        self.temporal_attn = MaskedSelfAttention(c, m)
        self.norm_temporal = nn.LayerNorm(c)
        self.spatial_attn = MaskedSelfAttention(c, m)
        self.norm_spatial = nn.LayerNorm(c)
        self.linear1 = nn.Linear(c, config.ffn_dim)
        self.linear2 = nn.Linear(config.ffn_dim, c)
        self.norm_ffn = nn.LayerNorm(c)

    def apu(self, logits: Tensor, offsets: Tensor, level_div: Tensor) -> Tensor:
        """Attention-based position update: (.., M, nL, P) logits, (.., M, nL, P, 2) pixel
        offsets, (nL, 2) divisors -> (.., 2) displacement in normalised units."""
        lead = logits.shape[:-3]
        w = self.apu_weights(logits.flatten(-3)).softmax(-1).view(*logits.shape, 1)
        return (w * offsets / level_div[:, None, :]).sum(dim=(-4, -3, -2)).view(*lead, 2)

    def self_attend(self, x: Tensor, pos: Tensor, t_blocked: Tensor | None,
                    s_blocked: Tensor | None, *, isolated: bool = False) -> Tensor:
        """Temporal (per point over frames) then spatial (per frame over points); x (W, N, C).
        ``isolated``: no point sees another in spatial attention (each attends to itself only,
        exactly as if it were decoded alone)."""
        xt, pt = x.transpose(0, 1), pos.transpose(0, 1)
        xt = self.norm_temporal(xt + self.temporal_attn(xt + pt, xt, t_blocked))
        x = xt.transpose(0, 1)
        spatial = self.spatial_attn.self_only(x) if isolated else self.spatial_attn(x + pos, x, s_blocked)
        return self.norm_spatial(x + spatial)

    def ffn(self, x: Tensor) -> Tensor:
        """Feed-forward block with residual and LayerNorm, (..., C) -> (..., C)."""
        return self.norm_ffn(x + self.linear2(F.relu(self.linear1(x))))


WINDOW_UPDATE_DROPOUT = 0.6  # official TAPTRv2 recipe (taptrv2_notes.md section 1.5)


class Decoder(nn.Module):
    """The TAPTRv2 decoder with its shared modules and per-layer heads."""

    def __init__(self, config: TaptrConfig) -> None:
        super().__init__()
        c = config.hidden_dim
        self.config = config
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.dec_layers))
        self.ref_point_head = MLP([2 * c, c, c])  # shared by all layers
        self.content_updater = mlp_sequential([2 * c, c, c])  # layers >= 1: f + upd([f, f_in])
        self.head_fuser = mlp_sequential([2 * c, c, c, c])  # g = fuser([f, sine2(delta)])
        self.pos_heads = nn.ModuleList(MLP([c, c, c, 4]) for _ in range(config.dec_layers))
        self.vis_heads = nn.ModuleList(nn.Linear(c, config.num_vis_classes) for _ in range(config.dec_layers))
        self.window_updater = mlp_sequential([3 * c, c, c])  # [f0, f_in, g_last] -> content delta
        # official training drops the between-window content delta (p = 0.6); no-op in eval mode
        self.window_dropout = nn.Dropout(WINDOW_UPDATE_DROPOUT)
        for head in self.pos_heads:
            nn.init.zeros_(head.layers[-1].weight)
            nn.init.zeros_(head.layers[-1].bias)

    def level_divisors(self, shapes, device, dtype) -> Tensor:
        """(nL, 2) divisors of APU offsets (x, y).

        Official quirk (`quirk_apu_hw_swap`): x is divided by h_l and y by w_l; identical to
        the correct (w_l, h_l) on square maps, kept so official weights behave as trained.
        """
        rows = [[h, w] if self.config.quirk_apu_hw_swap else [w, h] for h, w in shapes]
        return torch.tensor(rows, device=device, dtype=dtype)

    def query_pos(self, ref_sig: Tensor) -> Tensor:
        """(..., 4) sigmoid-space reference -> (..., C) positional query (shared head)."""
        c, t = self.config.hidden_dim, self.config.query_pos_temperature
        return self.ref_point_head(sine_embed_box(ref_sig, c // 2, t))

    def project_memory(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """(B, L, C) memory -> keys and values of every layer's cross-attention, each
        (nD, B, L, C). Computed per token, so frames can be projected once and cached."""
        kv = [layer.cross_attn.project_memory(memory) for layer in self.layers]
        return torch.stack([k for k, _ in kv]), torch.stack([v for _, v in kv])

    def forward(self, memory: Tensor | None, shapes, content_in: Tensor, ref_in: Tensor,
                init_content: Tensor, tracked: Tensor, update: Tensor, *,
                memory_kv: tuple[Tensor, Tensor] | None = None,
                kv_frames: Tensor | None = None, isolated: bool = False) -> WindowOutput:
        """Decode one window; see `TAPTRv2.decode_window` for the arguments."""
        cfg = self.config
        c, t, eps = cfg.hidden_dim, cfg.query_pos_temperature, cfg.logit_eps
        n_frames, n_pts, _ = content_in.shape
        upd = update[..., None].to(content_in.dtype)
        t_blocked = exclusive_mask_or_none(tracked.transpose(0, 1))  # (N, W, W) or None
        s_blocked = None if isolated else exclusive_mask_or_none(tracked)  # (W, N, N) or None
        div = self.level_divisors(shapes, content_in.device, content_in.dtype)
        ref = ref_in.sigmoid()
        x = content_in
        outs: dict[str, list[Tensor]] = {k: [] for k in ("pos_apu", "pos", "vis", "delta", "feat", "hs")}
        ref_unsig = ref_in
        for lvl, layer in enumerate(self.layers):
            pos = self.query_pos(ref)
            if lvl > 0:
                x = x + self.content_updater(torch.cat((x, content_in), -1))
            kv = None if memory_kv is None else (memory_kv[0][lvl], memory_kv[1][lvl])
            ca = layer.cross_attn(x + pos, ref[..., :2], memory, shapes, keys_values=kv, kv_frames=kv_frames)
            x = layer.norm_cross(x + ca.out)
            delta = layer.apu(ca.logits, ca.offsets, div)
            moved = inverse_sigmoid(ref[..., :2] + delta, eps).sigmoid()
            xy = torch.where(update[..., None], moved, ref[..., :2])
            applied = xy - ref[..., :2]
            ref_apu = torch.cat((xy, ref[..., 2:]), -1)
            pos = layer.apu_pos_head(sine_embed_box(ref_apu, c // 2, t))
            x = layer.self_attend(x, pos, t_blocked, s_blocked, isolated=isolated)
            x = layer.ffn(x)
            g = self.head_fuser(torch.cat((x, sine_embed_delta(applied, c // 2, t)), -1))
            ref_unsig = inverse_sigmoid(ref_apu, eps) + self.pos_heads[lvl](g) * upd
            ref = ref_unsig.sigmoid()
            for key, val in (("pos_apu", ref_apu), ("pos", ref), ("vis", self.vis_heads[lvl](g)),
                             ("delta", applied), ("feat", x), ("hs", g)):
                outs[key].append(val)
        g_last = outs["hs"][-1]
        f0 = init_content[None].expand(n_frames, n_pts, c)
        delta = self.window_dropout(self.window_updater(torch.cat((f0, content_in, g_last), -1)))
        content_out = content_in + upd * delta
        return WindowOutput(
            pos_apu=torch.stack(outs["pos_apu"]), pos=torch.stack(outs["pos"]),
            vis_logits=torch.stack(outs["vis"]), apu_delta=torch.stack(outs["delta"]),
            layer_feat=torch.stack(outs["feat"]), hs=torch.stack(outs["hs"]),
            ref_out=ref_unsig, content_out=content_out)
