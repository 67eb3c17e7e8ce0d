"""Window schedule, point masks and the per-point trajectory state between windows.

Pure functions on tensors, shared by the offline reference (`taptr_ros.model.taptr.track_video`)
and the online engine, so both run exactly the same code.

Frame indices are video frame numbers; a window is an inclusive range [first, last].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from taptr_ros.model.decoder import WindowOutput, inverse_sigmoid


def window_ranges(num_frames: int, size: int, stride: int) -> list[tuple[int, int]]:
    """Official window schedule: [0, size-1], [stride, stride+size-1], ...

    The number of windows is floor((T - size) / stride) + 1, plus one more if the last does
    not reach frame T-1; that extra window is shifted back to [T-size, T-1] (it may overlap
    the previous one by more than size - stride frames). Our extension: T < size gives the
    single window [0, T-1] (the official code requires T >= size).

    Raises:
        ValueError: num_frames < 1.
    """
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if num_frames < size:
        return [(0, num_frames - 1)]
    n = (num_frames - size) // stride + 1
    ranges = [(k * stride, k * stride + size - 1) for k in range(n)]
    if size + stride * (n - 1) < num_frames:
        ranges.append((num_frames - size, num_frames - 1))
    return ranges


def official_content_gap(num_frames: int, frames_per_step: int = 24) -> int:
    """Official long-video rule: content goes to future frames only on windows whose index is
    a multiple of floor(T / 24) (taken as 1 when T < 48, every window). Needs the video length
    T, so it is not causal; the online engine uses a fixed gap instead."""
    return max(1, num_frames // frames_per_step)


def point_masks(query_t: Tensor, first: int, last: int) -> tuple[Tensor, Tensor]:
    """Masks of frames first..last for points starting at `query_t`.

    Args:
        query_t: (N,) int start frame of each point (video frame numbers).

    Returns:
        tracked: (W, N) bool, frame >= start (the start frame takes part in attention).
        update: (W, N) bool, tracked and frame != start (the start frame is never updated).
    """
    t = torch.arange(first, last + 1, device=query_t.device)[:, None]
    tracked = t >= query_t[None, :]
    return tracked, tracked & (t != query_t[None, :])


def initial_vis_logits(num_points: int, num_classes: int = 3, *, device=None,
                       dtype=torch.float32) -> Tensor:
    """(N, num_classes) one-hot of class 1 ("visible"): the state at and before a start frame."""
    out = torch.zeros(num_points, num_classes, device=device, dtype=dtype)
    out[:, 1] = 1
    return out


@dataclass
class Trajectory:
    """Per-frame state of every point over a run of consecutive frames.

    Attributes:
        content: (T, N, C) content feature per frame.
        ref: (T, N, 4) position (x, y, w, h) in logit space (sigmoid gives x, y normalised by
            (W-1, H-1) of the network input).
        vis_logits: (T, N, 3) visibility logits (last decoder layer).
    """

    content: Tensor
    ref: Tensor
    vis_logits: Tensor

    @classmethod
    def start(cls, num_frames: int, init_content: Tensor, init_ref: Tensor,
              num_classes: int = 3) -> "Trajectory":
        """Every frame starts from the point's init content (N, C) and reference (N, 4)."""
        n = init_content.shape[0]
        vis = initial_vis_logits(n, num_classes, device=init_content.device, dtype=init_content.dtype)
        return cls(content=init_content[None].repeat(num_frames, 1, 1),
                   ref=init_ref[None].repeat(num_frames, 1, 1),
                   vis_logits=vis[None].repeat(num_frames, 1, 1))

    def to(self, dtype: torch.dtype) -> "Trajectory":
        """This trajectory in `dtype` (itself if already so): e.g. half-precision decoder
        outputs under autocast into the float32 state of the tracker."""
        if self.content.dtype == self.ref.dtype == self.vis_logits.dtype == dtype:
            return self
        return Trajectory(self.content.to(dtype), self.ref.to(dtype), self.vis_logits.to(dtype))

    def frames(self, first: int, last: int) -> "Trajectory":
        """Frames first..last (inclusive, indices into this trajectory)."""
        return Trajectory(self.content[first:last + 1], self.ref[first:last + 1],
                          self.vis_logits[first:last + 1])


def tail_velocity(ref: Tensor, frames: int) -> Tensor:
    """Per-frame velocity of a window's tail frame.

    Args:
        ref: (W, N, 4) a window's positions in logit space (`Trajectory.ref`).
        frames: measured over the last `frames` frames (fewer when W - 1 is smaller).

    Returns:
        (N, 2) (x, y) normalised by (W-1, H-1) of the input, per frame: (xy[-1] - xy[-1-k]) / k;
        zeros when `frames` is 0 or the window has one frame.
    """
    k = min(int(frames), ref.shape[0] - 1)
    if k <= 0:
        return ref.new_zeros(ref.shape[1], 2)
    xy = ref[[-1, -1 - k], :, :2].sigmoid()
    return (xy[0] - xy[1]) / k


def extrapolate(ref: Tensor, velocity: Tensor, steps: Tensor, eps: float = 1e-3) -> Tensor:
    """Positions `steps` frames after a tail at constant velocity, kept inside the image.

    Args:
        ref: (N, 4) the tail's positions in logit space.
        velocity: (N, 2) per-frame (x, y) velocity, normalised (`tail_velocity`).
        steps: (F, 1) or (F, N) frames after the tail (float).
        eps: clamp of `inverse_sigmoid` (TaptrConfig.logit_eps).

    Returns:
        (F, N, 4) logit-space positions: x, y = clamp(sigmoid(ref) + steps * velocity, 0, 1);
        w, h and every entry whose displacement is 0 exactly as in `ref` (no round trip).
    """
    disp = steps[..., None] * velocity  # (F, N, 2)
    moved = inverse_sigmoid(ref[:, :2].sigmoid() + disp, eps)
    xy = torch.where(disp == 0, ref[:, :2], moved)
    return torch.cat((xy, ref[:, 2:].expand(*xy.shape[:-1], -1)), -1)


def after_tail(ref: Tensor, count: int, velocity_frames: int, eps: float = 1e-3) -> Tensor:
    """(count, N, 4) logit-space positions of the `count` frames after a window's tail: the
    tail's (`velocity_frames` 0, official) or along its velocity over the window's last
    `velocity_frames` frames (`tail_velocity`, `extrapolate`). ref: (W, N, 4) the window's."""
    if velocity_frames <= 0:
        return ref[-1:].expand(count, -1, -1)
    steps = torch.arange(1, count + 1, device=ref.device, dtype=ref.dtype)[:, None]
    return extrapolate(ref[-1], tail_velocity(ref, velocity_frames), steps, eps)


def restart_from_query_velocity(ref: Tensor, tracked: Tensor, update: Tensor, frames: int,
                                eps: float = 1e-3, keep_within_px: float = 0.0,
                                input_wh: tuple[int, int] = (1, 1)) -> Tensor:
    """A window's positions after a decoder pass, with the frames far from each point's query
    restarted along the point's early velocity (`TaptrConfig.query_velocity_frames`).

    For a point whose start frame s lies in the window (tracked and not updated there) and
    whose frames reach past s + K (K = `frames`): v = (xy[s + K] - xy[s]) / K, and frame
    s + K + j starts at xy[s + K] + j v (`extrapolate`, kept inside the image), unless the
    pass put it within `keep_within_px` input pixels of that restart: then the pass's
    position is kept (`TaptrConfig.query_velocity_gate`; a slow point the pass already
    followed keeps its refinement, a point the pass left at its query restarts). Every other
    entry is returned as it is (bit for bit).

    Args:
        ref: (W, N, 4) logit-space positions of the window's frames (a pass's output).
        tracked, update: (W, N) bool masks (`point_masks`).
        frames: K >= 1 (0 returns `ref`).
        eps: clamp of `inverse_sigmoid` (TaptrConfig.logit_eps).
        keep_within_px: radius in input pixels (0 = restart every far frame).
        input_wh: network input (width, height) in pixels: the scale of `keep_within_px`.

    Returns:
        (W, N, 4) logit-space positions.
    """
    w = ref.shape[0]
    if frames <= 0 or w <= frames + 1:
        return ref
    start_here = tracked & ~update                        # (W, N): the start frame, if in the window
    start = start_here.to(torch.uint8).argmax(0)          # (N,) window index of s (0 if none)
    anchor = start + frames                               # (N,) s + K
    restart = start_here.any(0) & (anchor < w - 1)        # frames after the anchor exist
    if not bool(restart.any()):
        return ref
    anchor = anchor.clamp(max=w - 1)
    points = torch.arange(ref.shape[1], device=ref.device)
    at_anchor = ref[anchor, points]                       # (N, 4)
    velocity = (at_anchor[:, :2].sigmoid() - ref[start, points, :2].sigmoid()) / frames
    k = torch.arange(w, device=ref.device)[:, None]
    steps = ((k - anchor[None]).clamp(min=0) * restart[None]).to(ref.dtype)  # (W, N)
    moved = extrapolate(at_anchor, velocity, steps, eps)
    restarted = steps > 0                                 # (W, N)
    if keep_within_px > 0:
        apart = moved[..., :2].sigmoid() - ref[..., :2].sigmoid()  # (W, N, 2) normalised
        apart_px = torch.hypot(apart[..., 0] * input_wh[0], apart[..., 1] * input_wh[1])
        restarted = restarted & (apart_px > keep_within_px)
    return torch.where(restarted[..., None], moved, ref)


def commit_window(traj: Trajectory, first: int, out: WindowOutput, update: Tensor, *,
                  copy_tail: bool, copy_content: bool = True, velocity_frames: int = 0,
                  eps: float = 1e-3) -> Trajectory:
    """State after a window (functional: `traj` is not modified).

    Window frames first..first+W-1 (indices into `traj`) take the last layer's position and
    visibility logits where `update` holds and keep theirs elsewhere; their content becomes
    `out.content_out` (which already equals f_in where not updated). Then, if `copy_tail`
    (every window but the video's last), the tail frame's position and logits are copied
    into every later frame of `traj`, and its content too if `copy_content`. With
    `velocity_frames` > 0 (ours, `TaptrConfig.start_velocity_frames`) the later frames' positions
    instead continue the tail's velocity over the window's last `velocity_frames` frames
    (`after_tail`): frame tail + j starts at tail + j * velocity.

    Args:
        traj: (T', N, ...) state; may be a slice of a longer trajectory.
        first: index in `traj` of the window's first frame.
        out: the window's decoder output (W frames).
        update: (W, N) bool update mask of the window.
        velocity_frames: 0 = the official tail copy of positions.
        eps: clamp of `inverse_sigmoid` when extrapolating (TaptrConfig.logit_eps).
    """
    w = update.shape[0]
    end = first + w
    upd = update[..., None]
    ref, vis, content = traj.ref.clone(), traj.vis_logits.clone(), traj.content.clone()
    ref[first:end] = torch.where(upd, out.ref_out, ref[first:end])
    vis[first:end] = torch.where(upd, out.vis_logits[-1], vis[first:end])
    content[first:end] = out.content_out
    if copy_tail and end < ref.shape[0]:
        ref[end:] = after_tail(ref[first:end], ref.shape[0] - end, velocity_frames, eps)
        vis[end:] = vis[end - 1]
        if copy_content:
            content[end:] = content[end - 1]
    return Trajectory(content=content, ref=ref, vis_logits=vis)
