"""Training rollout: the official windowed inference with gradients, collecting what the losses need.

The rollout *is* `taptr_ros.model.taptr.track_video` (same window schedule, masks and
`commit_window` state carrying); its ``on_window`` hook records each window's per-layer outputs
into full-sequence buffers. As in the official training (``ignore_full_seq_loss=False``,
``ignore_window_loss=True``), the loss is computed on the full-sequence result: a frame
decoded by several overlapping windows keeps the last window's prediction, where the point is
updatable (``update`` mask); frames at or before a point's start frame keep zeros and are
never supervised.

Gradients are **not** detached between windows: the next window starts from the previous
window's (non-detached) tail state, so a clip's windows are trained end to end like BPTT, as in
the official code. On CPU with 16-24 frame clips this fits easily in memory; very long clips
would need detaching (not implemented: train on short clips instead).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from taptr_ros.model.taptr import TAPTRv2, WindowOutput, track_video
from taptr_ros.model.windowing import Trajectory, point_masks


@dataclass
class RolloutOutput:
    """Full-sequence predictions of one clip (nD decoder layers, T frames, N points).

    Attributes:
        pos_apu: (nD, T, N, 2) xy after each layer's APU, normalised by (W-1, H-1) of the input.
        pos: (nD, T, N, 2) xy after each layer's delta head (same units).
        vis_logits: (T, N, 3) last layer's visibility logits.
        update: (T, N) bool, frames after each point's start frame (the supervised frames).
        fine_map: (T, C, h, w) finest level of the encoder memory of every frame (for the
            feature-matching loss); None when not collected.
    """

    pos_apu: Tensor
    pos: Tensor
    vis_logits: Tensor
    update: Tensor
    fine_map: Tensor | None = None


def rollout(model: TAPTRv2, video: Tensor, query_xy: Tensor, query_t: Tensor, *,
            content_propagation_gap: int = 1, isolated: bool = False) -> RolloutOutput:
    """Run `track_video` with gradients and gather the full-sequence per-layer outputs.

    Args:
        model: the network (train or eval mode).
        video: (T, 3, H, W) normalised frames at config.input_hw.
        query_xy: (N, 2) start positions (x, y) normalised by (W-1, H-1).
        query_t: (N,) long start frame of each point.
        content_propagation_gap: as in `track_video`; 1 (every window) is what the online
            engine does, and equals the official rule for clips shorter than 48 frames.
        isolated: decode every point as if alone (no spatial attention between points), as
            `taptr eval tapvid` decodes queries (the TAP-Vid protocol).

    Returns:
        `RolloutOutput`.
    """
    n_layers = model.config.dec_layers
    num_frames, n = video.shape[0], query_xy.shape[0]
    param = next(model.parameters())
    zeros = torch.zeros(n_layers, num_frames, n, 2, device=param.device, dtype=param.dtype)
    buf = {"pos_apu": zeros, "pos": zeros.clone(),
           "vis": torch.zeros(num_frames, n, model.config.num_vis_classes, device=param.device,
                              dtype=param.dtype)}

    def on_window(k: int, first: int, last: int, inputs: Trajectory, out: WindowOutput) -> None:
        _, update = point_masks(query_t.to(param.device), first, last)
        sl = slice(first, last + 1)
        for key, val in (("pos_apu", out.pos_apu[..., :2]), ("pos", out.pos[..., :2])):
            new = buf[key].clone()
            new[:, sl] = torch.where(update[None, ..., None], val, new[:, sl])
            buf[key] = new
        new = buf["vis"].clone()
        new[sl] = torch.where(update[..., None], out.vis_logits[-1], new[sl])
        buf["vis"] = new

    memory = model.encode_frames(video.to(param.device, param.dtype))
    track_video(model, video, query_xy, query_t, content_propagation_gap=content_propagation_gap,
                on_window=on_window, memory=memory, isolated=isolated)
    t = torch.arange(num_frames, device=param.device)[:, None]
    update = t > query_t.to(param.device)[None, :]
    return RolloutOutput(pos_apu=buf["pos_apu"], pos=buf["pos"], vis_logits=buf["vis"], update=update,
                         fine_map=model.level_maps(memory)[0])
