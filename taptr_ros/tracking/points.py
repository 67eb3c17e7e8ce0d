"""Point registry: ids, start frames and per-point state, preallocated for `capacity` points.

State of point row r (all on the model's device, dtype of the model):

* ``f0[r]`` (C): initial content (the start frame's feature), input of the between-window
  updater;
* ``content[s, r]`` (C), ``ref[s, r]`` (4, logit space), ``vis[s, r]`` (3 logits): state at
  the frame held in ring-buffer slot s (the same slots as `FeatureCache`);
* ``future_*[r]``: the state every frame after the last committed window starts from (the
  tail copy of `taptr_ros.model.windowing.commit_window`): a new frame's slot is set to it.
  With a start velocity (`TaptrConfig.start_velocity_frames`), ``future_velocity[r]`` ((x, y)
  normalised, per frame) and ``future_steps[r]`` (frames entered since the tail) place the
  j-th frame after the tail at tail + j * velocity (`windowing.extrapolate`).
* ``window_*[i, k, r]``, ``in_window[i, r]``: the state at frame k of a recently committed
  window (kept in entry i of `windows`) before it was decoded, kept for the points it decoded
  (`in_window`), so that the window can be decoded again when points join it
  (`taptr_ros.tracking.windows`); ``ref0[r]``: the initial reference.

A new point starts with its initial state in every slot and in the future state, as in
`Trajectory.start`. Rows are reused after removal, ids never: ids come from the tracker.
"""

from __future__ import annotations

import heapq

import numpy as np
import torch
from torch import Tensor

from taptr_ros.model.windowing import Trajectory, extrapolate, initial_vis_logits


class PointRegistry:
    """Per-point state of up to `capacity` points over `slots` buffered frames.

    Args:
        capacity: most points at once (rows preallocated).
        slots: buffered frames (the window size W).
        dim: C, content channels.
        num_vis_classes: visibility logits per point.
        windows: committed windows whose input state is kept.
        device, dtype: of every state tensor; the tensors handed to its methods are already
            in that dtype (the tracker casts the network's outputs once, `decode_padded`).
        eps: clamp of `inverse_sigmoid` when frames are extrapolated (TaptrConfig.logit_eps).
    """

    def __init__(self, capacity: int, slots: int, dim: int, num_vis_classes: int, *,
                 device: torch.device | str, dtype: torch.dtype, windows: int = 1, eps: float = 1e-3) -> None:
        self.capacity = capacity
        self.eps = eps
        kw = dict(device=device, dtype=dtype)
        self.f0 = torch.zeros(capacity, dim, **kw)
        self.content = torch.zeros(slots, capacity, dim, **kw)
        self.ref = torch.zeros(slots, capacity, 4, **kw)
        self.vis = torch.zeros(slots, capacity, num_vis_classes, **kw)
        self.future_content = torch.zeros(capacity, dim, **kw)
        self.future_ref = torch.zeros(capacity, 4, **kw)
        self.future_vis = torch.zeros(capacity, num_vis_classes, **kw)
        self.future_velocity = torch.zeros(capacity, 2, **kw)
        self.future_steps = torch.zeros(capacity, **kw)
        self.ref0 = torch.zeros(capacity, 4, **kw)
        self.window_content = torch.zeros(windows, slots, capacity, dim, **kw)
        self.window_ref = torch.zeros(windows, slots, capacity, 4, **kw)
        self.window_vis = torch.zeros(windows, slots, capacity, num_vis_classes, **kw)
        self.in_window = torch.zeros(windows, capacity, dtype=torch.bool, device=device)
        self.start = torch.zeros(capacity, dtype=torch.long, device=device)
        self._row_of: dict[int, int] = {}  # id -> row, in id order (ids only grow)
        self._start_of: dict[int, int] = {}
        self._free = list(range(capacity))
        self._rows_cache: Tensor | None = None

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, point_id: int) -> bool:
        return point_id in self._row_of

    @property
    def ids(self) -> np.ndarray:
        """(N,) uint32 ids in ascending order."""
        return np.fromiter(self._row_of.keys(), dtype=np.uint32, count=len(self._row_of))

    @property
    def starts(self) -> np.ndarray:
        """(N,) int64 start frame of each point, in id order."""
        return np.fromiter(self._start_of.values(), dtype=np.int64, count=len(self._start_of))

    def rows(self) -> Tensor:
        """(N,) long rows of the points in id order, on the state's device."""
        if self._rows_cache is None:
            self._rows_cache = torch.tensor(list(self._row_of.values()), dtype=torch.long,
                                            device=self.start.device)
        return self._rows_cache

    def add(self, ids: list[int], start: int, f0: Tensor, ref0: Tensor) -> None:
        """Register points starting at frame `start` with initial content f0 (n, C) and
        logit-space reference ref0 (n, 4); every slot and the future state get that state.

        Raises:
            ValueError: not enough free rows, or an id already present / not above the others.
        """
        if ids and (any(i in self._row_of for i in ids) or ids != sorted(ids)
                    or (self._row_of and ids[0] <= next(reversed(self._row_of)))):
            raise ValueError(f"ids {ids} must be new and above every registered id")
        if len(ids) > len(self._free):
            raise ValueError(f"{len(ids)} points do not fit: {len(self._free)} free rows")
        rows_list = [heapq.heappop(self._free) for _ in ids]
        rows = torch.tensor(rows_list, dtype=torch.long, device=self.start.device)
        vis0 = initial_vis_logits(len(ids), self.vis.shape[-1], device=self.vis.device, dtype=self.vis.dtype)
        self.f0[rows] = f0
        self.ref0[rows] = ref0
        self.future_content[rows] = f0
        self.future_ref[rows] = ref0
        self.future_vis[rows] = vis0
        self.future_velocity[rows] = 0
        self.content[:, rows] = f0
        self.ref[:, rows] = ref0
        self.vis[:, rows] = vis0
        self.start[rows] = start
        self.in_window[:, rows] = False
        for i, r in zip(ids, rows_list):
            self._row_of[i] = r
            self._start_of[i] = start
        self._rows_cache = None

    def remove(self, ids: list[int]) -> list[int]:
        """Free the rows of the given ids; returns the ids that were registered."""
        removed = [i for i in dict.fromkeys(ids) if i in self._row_of]
        rows = [self._row_of.pop(i) for i in removed]
        for i in removed:
            del self._start_of[i]
        if rows:
            index = torch.tensor(rows, dtype=torch.long, device=self.start.device)
            for tensor in (self.f0, self.ref0, self.future_content, self.future_ref, self.future_vis,
                           self.future_velocity, self.future_steps, self.start):
                tensor[index] = 0
            for tensor in (self.content, self.ref, self.vis, self.in_window):
                tensor[:, index] = 0
            for tensor in (self.window_content, self.window_ref, self.window_vis):
                tensor[:, :, index] = 0
            for r in rows:
                heapq.heappush(self._free, r)
            self._rows_cache = None
        return removed

    def clear(self) -> None:
        """Remove every point (tensors are kept and zeroed)."""
        self.remove(list(self._row_of))

    def enter_frame(self, slot: int) -> None:
        """A new frame was stored in `slot`: its state is the future state of every point (its
        position one frame further along the point's start velocity, if any)."""
        self.content[slot] = self.future_content
        self.future_steps += 1
        self.ref[slot] = extrapolate(self.future_ref, self.future_velocity, self.future_steps[None], self.eps)[0]
        self.vis[slot] = self.future_vis

    def gather(self, slots: Tensor, rows: Tensor) -> Trajectory:
        """State of `rows` (N,) at `slots` (n,): a `Trajectory` of (n, N, ...) copies."""
        index = (slots[:, None], rows[None, :])
        return Trajectory(content=self.content[index], ref=self.ref[index], vis_logits=self.vis[index])

    def scatter(self, slots: Tensor, rows: Tensor, traj: Trajectory) -> None:
        """Write a (n, N, ...) `Trajectory` back to `slots` x `rows`."""
        index = (slots[:, None], rows[None, :])
        self.content[index] = traj.content
        self.ref[index] = traj.ref
        self.vis[index] = traj.vis_logits

    def set_future(self, rows: Tensor, tail: Trajectory, *, copy_content: bool,
                   velocity: Tensor | None = None) -> None:
        """After a committed window: the future state of `rows` becomes the window's tail
        frame (tail = a one-frame `Trajectory` (1, N, ...)); content only if `copy_content`;
        positions continue `velocity` ((N, 2) normalised per frame, `windowing.tail_velocity`;
        None = stay at the tail)."""
        self.future_ref[rows] = tail.ref[0]
        self.future_velocity[rows] = 0 if velocity is None else velocity
        self.future_steps[rows] = 0
        self.future_vis[rows] = tail.vis_logits[0]
        if copy_content:
            self.future_content[rows] = tail.content[0]

    def keep_window_inputs(self, index: int, rows: Tensor, state: Trajectory) -> None:
        """Keep the (W, N, ...) input state of a committed window for `rows` (only theirs) in
        entry `index`."""
        self.in_window[index].zero_()
        self.in_window[index, rows] = True
        self.window_content[index][:, rows] = state.content
        self.window_ref[index][:, rows] = state.ref
        self.window_vis[index][:, rows] = state.vis_logits

    def window_inputs(self, index: int, rows: Tensor) -> tuple[Trajectory, Tensor]:
        """(W, N, ...) input state of the window kept in entry `index` for `rows`, and (N,) bool:
        kept (else the point was added since and gets its initial state: f0, ref0, [0, 1, 0])."""
        known = self.in_window[index, rows]
        w = self.window_content.shape[1]
        pick = known[None, :, None]
        vis0 = initial_vis_logits(len(rows), self.vis.shape[-1], device=self.vis.device, dtype=self.vis.dtype)
        f0, ref0 = self.f0[rows][None].expand(w, -1, -1), self.ref0[rows][None].expand(w, -1, -1)
        content = torch.where(pick, self.window_content[index][:, rows], f0)
        ref = torch.where(pick, self.window_ref[index][:, rows], ref0)
        vis = torch.where(pick, self.window_vis[index][:, rows], vis0[None].expand(w, -1, -1))
        return Trajectory(content, ref, vis), known
