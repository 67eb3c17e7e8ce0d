"""The NAIVE online loop, a baseline for ``taptr bench engine`` only: it re-encodes the whole
window every frame.

It answers every frame with the result the offline reference gives on the video cut at that
frame (the engine's ``immediate`` semantics), but keeps the last W *images* instead of their
encoder memory: each push runs the backbone and encoder on all W frames of the window
(W encoder passes per frame instead of one), then decodes the window from the committed
state, committing it at window tails. Everything else (the model calls, `commit_window`,
`point_masks`) is the code the engine and `track_video` run. Not for use outside benchmarks.
"""

from __future__ import annotations

import collections

import numpy as np
import torch
from torch import Tensor

from taptr_ros.model.preprocess import pixels_to_norm, preprocess_frame
from taptr_ros.model.taptr import TAPTRv2
from taptr_ros.model.windowing import (
    Trajectory,
    commit_window,
    initial_vis_logits,
    point_masks,
)


class NaiveWindowTracker:
    """Re-encode-the-window online loop (benchmark baseline), points added at the latest frame.

    Args:
        model: the network (its device and dtype are used).
        window, stride: the windowing (default: the model config's).
    """

    def __init__(self, model: TAPTRv2, *, window: int | None = None, stride: int | None = None) -> None:
        cfg = model.config
        self.model = model
        self.window = window or cfg.window_size
        self.stride = stride or cfg.window_stride
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.images: collections.deque[Tensor] = collections.deque(maxlen=self.window)
        self.index = -1
        c, k = cfg.hidden_dim, cfg.num_vis_classes
        self.f0 = torch.zeros(0, c, device=self.device, dtype=self.dtype)
        self.start = torch.zeros(0, dtype=torch.long, device=self.device)
        self.future = Trajectory(self.f0[None], torch.zeros(1, 0, 4, device=self.device, dtype=self.dtype),
                                 torch.zeros(1, 0, k, device=self.device, dtype=self.dtype))
        self.state = Trajectory(self.future.content[:0], self.future.ref[:0], self.future.vis_logits[:0])
        self._last_memory: Tensor | None = None
        self._hw = (0, 0)

    @torch.inference_mode()
    def add_points(self, xy_pixels: np.ndarray) -> None:
        """Points (N, 2) pixel (x, y) of the latest frame start tracking there."""
        h, w = self._hw
        xy = torch.from_numpy(pixels_to_norm(np.asarray(xy_pixels, np.float64), w, h))
        xy = xy.to(self.device, self.dtype)
        memory = self._last_memory.expand(len(xy), *self._last_memory.shape[1:])
        f0, ref0 = self.model.init_queries(memory, xy)
        vis0 = initial_vis_logits(len(xy), self.state.vis_logits.shape[-1], device=self.device,
                                  dtype=self.dtype)
        n = self.state.content.shape[0]
        self.f0 = torch.cat((self.f0, f0))
        self.start = torch.cat((self.start, torch.full((len(xy),), self.index, device=self.device)))
        self.state = _append_points(self.state, f0, ref0, vis0, n)
        self.future = _append_points(self.future, f0, ref0, vis0, 1)

    @torch.inference_mode()
    def prime(self, frames: list[np.ndarray], xy_pixels: np.ndarray) -> None:
        """Benchmark shortcut: hold the last W of `frames` as if pushed (nothing decoded) and
        add points that started at frame 0 in their initial state. The per-frame cost of the
        pushes that follow is that of the full loop (it does not depend on the state's values);
        their results are not the offline ones."""
        for frame in frames[:-1]:
            self.index += 1
            self._hw = frame.shape[:2]
            self.images.append(preprocess_frame(frame, self.model.config).to(self.device, self.dtype))
        self.push(frames[-1])
        self.add_points(xy_pixels)
        self.start.zero_()
        n = self.window - 1
        self.state = Trajectory(*(x.expand(n, -1, -1).clone() for x in
                                  (self.future.content, self.future.ref, self.future.vis_logits)))

    @torch.inference_mode()
    def push(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Track one (H, W, 3) uint8 RGB frame; returns (xy pixels (N, 2), visibility (N,))."""
        self.index += 1
        t, w_size = self.index, self.window
        self._hw = frame.shape[:2]
        self.images.append(preprocess_frame(frame, self.model.config).to(self.device, self.dtype))
        memory = self.model.encode_frames(torch.stack(list(self.images)))  # the naive part: W frames
        self._last_memory = memory[-1:]
        first = max(0, t - w_size + 1)
        keep = t - first  # frames of the old state still in the window
        old = (self.state.content, self.state.ref, self.state.vis_logits)
        new_frame = (self.future.content, self.future.ref, self.future.vis_logits)
        self.state = Trajectory(*(torch.cat((a[a.shape[0] - keep:] if keep else a[:0], b))
                                  for a, b in zip(old, new_frame)))
        new = self.state
        tracked, update = point_masks(self.start, first, t)
        decoded = bool(update.any())
        if decoded:
            out = self.model.decode_window(memory, self.state.content, self.state.ref, self.f0, tracked,
                                           update)
            new = commit_window(self.state, 0, out, update, copy_tail=False)
        if decoded and t >= w_size - 1 and (t - (w_size - 1)) % self.stride == 0:
            self.state = new
            self.future = Trajectory(new.content[-1:], new.ref[-1:], new.vis_logits[-1:])
        h, w = self._hw
        xy = new.ref[-1, :, :2].sigmoid().float().cpu().numpy() * np.array([w - 1, h - 1], np.float32)
        vis = new.vis_logits[-1, :, 1].sigmoid().float().cpu().numpy()
        return xy, vis


def _append_points(traj: Trajectory, f0: Tensor, ref0: Tensor, vis0: Tensor, frames: int) -> Trajectory:
    """`traj` (T, N, ...) with new points in their initial state at every one of its frames."""
    add = [x[None].expand(frames, -1, -1) for x in (f0, ref0, vis0)]
    return Trajectory(*(torch.cat((a, b), 1) for a, b in
                        zip((traj.content, traj.ref, traj.vis_logits), add)))
