"""TAPTRv2: the network and its offline reference tracker.

Public API (shapes; C = config.hidden_dim, L = config.num_tokens() tokens per frame,
W = frames in a window, N = points; positions normalised by (W-1, H-1) of the input image,
x first):

* ``TAPTRv2(config)``
* ``encode_frames(images (B,3,H,W) normalised) -> memory (B, L, C)``: independent frames;
  level l occupies tokens [sum_{k<l} h_k w_k, ...) row-major, shapes ``model.level_shapes``.
* ``init_queries(memory (N, L, C), xy_norm (N, 2)) -> (content (N, C), ref (N, 4))``: memory of
  each point's start frame; ref = (logit x, logit y, 0, 0) in logit space.
* ``decode_window(window_memory (W, L, C), content_in (W, N, C), ref_in (W, N, 4),
  init_content (N, C), tracked (W, N), update (W, N)) -> WindowOutput``
  (optionally ``memory_kv=project_memory(...)`` cached per frame instead of window_memory).
* after a window: ``windowing.commit_window(Trajectory, first, WindowOutput, update, copy_tail=,
  copy_content=)``; masks from ``windowing.point_masks(query_t, first, last)``.
* ``track_video(model, video (T,3,H,W), query_xy_norm (N,2), query_t (N,)) -> TrackResult``
  (offline reference, official windowing; see `taptr_ros.model.windowing`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taptr_ros.model.backbone import Backbone
from taptr_ros.model.config import TaptrConfig
from taptr_ros.model.decoder import Decoder, WindowOutput, inverse_sigmoid
from taptr_ros.model.deform_attn import split_levels
from taptr_ros.model.encoder import Encoder
from taptr_ros.model.windowing import (Trajectory, commit_window, official_content_gap,
                                       point_masks, restart_from_query_velocity, window_ranges)

__all__ = ["TAPTRv2", "TrackResult", "WindowOutput", "track_video"]


class TAPTRv2(nn.Module):
    """The TAPTRv2 network (backbone, encoder, query initialiser, window decoder).

    Args:
        config: architecture and input numbers (see `taptr_ros.model.config.preset`).
    """

    def __init__(self, config: TaptrConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = Backbone(config)
        self.encoder = Encoder(config)
        self.query_init = nn.Linear(config.num_levels * config.hidden_dim, config.hidden_dim)
        self.decoder = Decoder(config)

    @property
    def level_shapes(self) -> tuple[tuple[int, int], ...]:
        """(h_l, w_l) per level for the configured input size."""
        return self.config.level_shapes()

    def encode_frames(self, images: Tensor) -> Tensor:
        """Backbone + projections + deformable encoder of independent frames.

        Args:
            images: (B, 3, H, W) float, normalised (see `taptr_ros.model.preprocess`);
                (H, W) must equal config.input_hw.

        Returns:
            memory: (B, L, C); frame b's memory depends on image b only.
        """
        if tuple(images.shape[-2:]) != self.config.input_hw or images.dim() != 4:
            raise ValueError(f"encode_frames expects (B, 3, {self.config.input_hw[0]}, "
                             f"{self.config.input_hw[1]}) images, got {tuple(images.shape)}; "
                             "resize with taptr_ros.model.preprocess first")
        return self.encoder(self.backbone(images))

    def level_maps(self, memory: Tensor) -> list[Tensor]:
        """(B, L, C) memory -> per level (B, C, h_l, w_l)."""
        b, _, c = memory.shape
        return [m.transpose(1, 2).reshape(b, c, h, w)
                for m, (h, w) in zip(split_levels(memory, self.level_shapes), self.level_shapes)]

    def sample_query_features(self, memory: Tensor, xy_norm: Tensor, *,
                              frames: Tensor | None = None) -> Tensor:
        """Bilinear samples of every level at each point (align_corners=True, border padding).

        Level l is read at feature-pixel (x * (w_l - 1), y * (h_l - 1)) (corner pixel centres).
        Official quirk (`config.quirk_init_sample_hw_swap`): x is scaled by (h_l - 1) and y by
        (w_l - 1) instead; identical on square maps, kept for the official weights.

        Args:
            memory: (N, L, C) memory of each point's start frame, or (F, L, C) with `frames`.
                An expanded view of one frame (stride 0, e.g. ``m.expand(N, -1, -1)``) is read
                once, never materialised (N copies of a 512x512 frame's memory are 22 MB each).
            xy_norm: (N, 2) (x, y) normalised by (W-1, H-1).
            frames: (N,) long, the frame of `memory` point n reads (None: frame n).

        Returns:
            (N, nL, C).
        """
        n = xy_norm.shape[0]
        if frames is None and n > 1 and memory.shape[0] == n and memory.stride(0) == 0:
            memory, frames = memory[:1], torch.zeros(n, dtype=torch.long, device=xy_norm.device)
        if frames is None or n == 0:
            return self._sample_levels(memory[:n], xy_norm[:, None])[:, 0]
        out = None
        for f in frames.unique().tolist():
            sel = (frames == f).nonzero()[:, 0]
            part = self._sample_levels(memory[f:f + 1], xy_norm[sel][None])[0]
            if out is None:  # the samples' dtype (fp32 under autocast even for half memory)
                out = part.new_empty(n, *part.shape[1:])
            out[sel] = part
        return out

    def _sample_levels(self, memory: Tensor, xy_norm: Tensor) -> Tensor:
        """(B, L, C) memory, (B, K, 2) points of each -> (B, K, nL, C) (see above)."""
        out = []
        for fmap in self.level_maps(memory):
            h, w = fmap.shape[-2:]
            sx, sy = (h - 1, w - 1) if self.config.quirk_init_sample_hw_swap else (w - 1, h - 1)
            px, py = xy_norm[..., 0] * sx, xy_norm[..., 1] * sy
            gx = 2 * px / max(w - 1, 1) - 1
            gy = 2 * py / max(h - 1, 1) - 1
            grid = torch.stack((gx, gy), -1)[:, :, None, :].to(fmap.dtype)  # (B, K, 1, 2)
            s = F.grid_sample(fmap, grid, mode="bilinear", padding_mode="border", align_corners=True)
            out.append(s[..., 0].transpose(1, 2))  # (B, K, C)
        return torch.stack(out, 2)

    def init_queries(self, memory: Tensor, xy_norm: Tensor, *,
                     frames: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Initial state of new points from their start frame's memory.

        Args:
            memory: (N, L, C) memory of each point's start frame (an expanded view of one
                frame is fine), or (F, L, C) with `frames`.
            xy_norm: (N, 2) (x, y) normalised by (W-1, H-1).
            frames: (N,) long, the frame of `memory` point n starts in (None: frame n).

        Returns:
            content: (N, C) f0 = Linear(concat of the nL level samples).
            ref: (N, 4) (logit x, logit y, logit w0, logit h0) with w0 = h0 = config.init_wh.
        """
        # The paper says "an MLP"; the official model is a single Linear(nL*C -> C).
        content = self.query_init(self.sample_query_features(memory, xy_norm, frames=frames).flatten(1))
        wh = torch.full_like(xy_norm, self.config.init_wh)
        ref = inverse_sigmoid(torch.cat((xy_norm, wh), -1).to(content.dtype), self.config.logit_eps)
        return content, ref

    def query_pos(self, ref: Tensor) -> Tensor:
        """(..., 4) logit-space reference -> (..., C) positional query of the first layer."""
        return self.decoder.query_pos(ref.sigmoid())

    def project_memory(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Cross-attention keys and values of every decoder layer, (nD, B, L, C) each.

        Per token, hence per frame: an online engine may project each frame once, cache the
        result with its memory, and stack frames along dim 1 for `decode_window(memory_kv=...)`.
        """
        return self.decoder.project_memory(memory)

    def decode_window(self, window_memory: Tensor | None, content_in: Tensor, ref_in: Tensor,
                      init_content: Tensor, tracked: Tensor, update: Tensor, *,
                      memory_kv: tuple[Tensor, Tensor] | None = None,
                      kv_frames: Tensor | None = None, isolated: bool = False) -> WindowOutput:
        """Run the decoder on one window of W frames, `config.window_passes` times (each pass
        from the previous one's positions; the last pass is returned).

        Args:
            window_memory: (W, L, C) memory of the window's frames in order (may be None
                when `memory_kv` is given).
            content_in: (W, N, C) content state of each point at each window frame.
            ref_in: (W, N, 4) position state (x, y, w, h) in logit space.
            init_content: (N, C) f0 of each point (for the between-window updater).
            tracked: (W, N) bool, frame >= the point's start frame.
            update: (W, N) bool, tracked and not the start frame (see `windowing.point_masks`).
            memory_kv: optional `project_memory` of the window's frames, ((nD, W, L, C), (nD, W,
                L, C)); same result as projecting `window_memory` here (float rounding aside).
            kv_frames: (W,) long: window frame k reads frame kv_frames[k] of `memory_kv`, which
                then holds F frames in any order, ((nD, F, L, C), ...): e.g. a ring buffer and
                its slots, read in place (no copy of the window's keys and values).
            isolated: decode the N points as N independent problems in one batch (spatial
                attention lets each point see only itself): equals decoding each point alone,
                the TAP-Vid protocol, at the cost of one pass.

        Returns:
            `WindowOutput` (per-layer positions after the APU and after the delta head,
            visibility logits, APU deltas, features, new logit-space position and content).
        """
        tracked, update = tracked.bool(), update.bool()
        out = self.decoder(window_memory, self.level_shapes, content_in, ref_in, init_content,
                           tracked, update, memory_kv=memory_kv, kv_frames=kv_frames, isolated=isolated)
        cfg = self.config
        for k in range(cfg.window_passes - 1):  # again from this pass's positions
            ref_in = torch.where(update[..., None], out.ref_out, ref_in)
            if k == 0 and cfg.query_velocity_frames:  # frames far from a query: along its early velocity
                ref_in = restart_from_query_velocity(ref_in, tracked, update, cfg.query_velocity_frames,
                                                     cfg.logit_eps, cfg.query_velocity_gate,
                                                     cfg.input_hw[::-1])
            out = self.decoder(window_memory, self.level_shapes, content_in, ref_in, init_content,
                               tracked, update, memory_kv=memory_kv, kv_frames=kv_frames, isolated=isolated)
        return out


@dataclass
class TrackResult:
    """Tracks of N points over T frames.

    Attributes:
        boxes: (T, N, 4) (x, y, w, h) sigmoid space; x, y normalised by (W-1, H-1).
        vis_logits: (T, N, 3) visibility logits.
        visible: (T, N) bool, sigmoid(logit[1]) > config.visibility_threshold.
        windows: the [first, last] frame ranges actually decoded (skipped ones left out).
    """

    boxes: Tensor
    vis_logits: Tensor
    visible: Tensor
    windows: list[tuple[int, int]]

    @property
    def xy_norm(self) -> Tensor:
        """(T, N, 2) tracks (x, y) normalised by (W-1, H-1)."""
        return self.boxes[..., :2]


WindowCallback = Callable[[int, int, int, Trajectory, WindowOutput], None]


def track_video(model: TAPTRv2, video: Tensor, query_xy_norm: Tensor, query_t: Tensor, *,
                content_propagation_gap: int | None = None, encode_batch: int = 8,
                on_window: WindowCallback | None = None, memory: Tensor | None = None,
                isolated: bool = False) -> TrackResult:
    """Offline reference: the official windowed inference over a whole video.

    Windows follow `windowing.window_ranges` (last one shifted back to end at T-1; T < window
    size gives one window [0, T-1], our extension). A window where no point has an updatable
    frame is skipped. After each window but the last, the tail frame's state is copied into
    every later frame (`windowing.commit_window`). Frames at or before a point's start keep its
    query position and logits [0, 1, 0]. Memory is encoded lazily (window frames plus start
    frames), so long videos do not hold every frame's memory.

    The points are decoded exactly as given. The official eval and demo pad the queries to
    800 with random points (spatial self-attention mixes all points of a frame, so padding
    changes the real points' results); pad before calling to reproduce that.

    Args:
        model: the network (its device and dtype are used).
        video: (T, 3, H, W) normalised frames at config.input_hw.
        query_xy_norm: (N, 2) (x, y) normalised by (W-1, H-1), at each point's start frame.
        query_t: (N,) int start frame of each point.
        content_propagation_gap: content goes to future frames only after windows whose index
            is a multiple of this gap. None = official rule max(1, T // 24), which needs T (not
            causal); the online engine passes a fixed int (default 1 = every window).
        encode_batch: frames per `encode_frames` call.
        on_window: called as on_window(k, first, last, inputs, output) for each decoded window
            k, with `inputs` the window frames' state before decoding (for parity and training).
        memory: optional (T, L, C) `encode_frames` of every frame, computed by the caller
            (training encodes a clip once and also uses the memory in a loss); None = encode
            here, lazily.
        isolated: decode every point as if alone (spatial attention sees only the point
            itself, `TAPTRv2.decode_window`), as the TAP-Vid protocol decodes queries.

    Returns:
        `TrackResult`.
    """
    cfg = model.config
    param = next(model.parameters())
    video = video.to(param.device, param.dtype)
    num_frames = video.shape[0]
    query_t = query_t.to(device=param.device, dtype=torch.long)
    xy = query_xy_norm.to(param.device, param.dtype)
    if query_t.numel() and (int(query_t.min()) < 0 or int(query_t.max()) >= num_frames):
        raise ValueError(f"query_t must lie in [0, {num_frames - 1}], got {query_t.tolist()}")
    gap = official_content_gap(num_frames, cfg.content_propagation_frames) \
        if content_propagation_gap is None else int(content_propagation_gap)
    if gap < 1:
        raise ValueError(f"content_propagation_gap must be >= 1 or None, got {gap}")

    cache: dict[int, Tensor] = {} if memory is None else dict(enumerate(memory))

    def encode(frames: list[int]) -> None:
        todo = [t for t in frames if t not in cache]
        for i in range(0, len(todo), encode_batch):
            chunk = todo[i:i + encode_batch]
            for t, mem in zip(chunk, model.encode_frames(video[chunk])):
                cache[t] = mem

    starts = sorted(set(query_t.tolist()))
    encode(starts)
    if starts:
        init_mem = torch.stack([cache[t] for t in starts])  # each start frame once, not per point
        frame_of = torch.searchsorted(torch.tensor(starts, device=query_t.device), query_t)
        f0, ref0 = model.init_queries(init_mem, xy, frames=frame_of)
    else:
        f0 = video.new_zeros(0, cfg.hidden_dim)
        ref0 = video.new_zeros(0, 4)
    traj = Trajectory.start(num_frames, f0, ref0, cfg.num_vis_classes)
    ranges = window_ranges(num_frames, cfg.window_size, cfg.window_stride)
    done = []
    for k, (first, last) in enumerate(ranges):
        tracked, update = point_masks(query_t, first, last)
        if not bool(update.any()):
            continue
        encode(list(range(first, last + 1)))
        for t in [t for t in cache if t < first]:
            del cache[t]
        window_memory = torch.stack([cache[t] for t in range(first, last + 1)])
        inputs = traj.frames(first, last)
        out = model.decode_window(window_memory, inputs.content, inputs.ref, f0, tracked, update,
                                  isolated=isolated)
        if on_window is not None:
            on_window(k, first, last, inputs, out)
        traj = commit_window(traj, first, out, update, copy_tail=k < len(ranges) - 1,
                             copy_content=k % gap == 0, velocity_frames=cfg.start_velocity_frames,
                             eps=cfg.logit_eps)
        done.append((first, last))
    boxes = traj.ref.sigmoid()
    visible = traj.vis_logits[..., 1].sigmoid() > cfg.visibility_threshold
    return TrackResult(boxes=boxes, vis_logits=traj.vis_logits, visible=visible, windows=done)
