"""Window decoding of the online engine, and the last committed window committed again when
points join it (DESIGN.md section 3).

`WindowDecoder.decode` runs a window [first, last] over the ring buffer (`FeatureCache`) and
the point registry (`PointRegistry`): provisional (state discarded) or committed (the window's
buffered frames keep the new state, its tail becomes every later frame's start state).

A point whose start frame s lies in the last committed window [c, e] (s <= e) is part of that
window offline: at s it takes part in spatial attention (the other points' outputs at s
change), after s it is updated, and the window's tail state is what every later window starts
from. Online it can only be added once frame s has been encoded, that is after [c, e] was
committed without it: when s = e is the latest frame (a point added at a window's tail frame)
or when s is an older buffered stamp inside [c, e]. So a commit keeps the window's input state
(the points' state before decoding, a copy made for decoding anyway), and `recommit` decodes
the window again from it with the points tracked now (one more decoder pass, only when such a
point arrives): the window's buffered frames get the new state, the future state becomes the
new tail, and the frames after e (never committed) restart from it. From the next window on,
results equal the offline model's on the video cut there, with the new point queried at s.
Results already published are not revised; that includes frame s itself (published before
the point could be added: the other points' results for frame s do not see it).

To decode a window again its frames' encoder memory must still be there: the ring buffer keeps
the memory (not the keys/values) of S - 1 frames more than the W buffered ones, the frames the
window loses before the next commit (`extra` of `FeatureCache`). When its first frames are no
longer buffered, the window is decoded from the memory (keys and values projected in the
pass), equal to the cached projections to float rounding.

Where it is not exact: the window before, [c - S, e - S], cannot be decoded again (its first
frames' memory is gone). A point whose start frame lies in it too (s <= e - S: the oldest
W - S - j buffered frames when the latest frame is e + j) joins [c, e] but misses that
window, where offline it would have been (decoded jointly: spatial attention at s..e - S;
independently: only s < e - S changes the point's own track). Measured in README.md ("Online
semantics"). The points decoded again are those tracked now: points removed since the commit
no longer take part.
"""

from __future__ import annotations

import torch

from taptr_ros.model.taptr import TAPTRv2
from taptr_ros.model.windowing import Trajectory, point_masks
from taptr_ros.tracking.decode import decode_padded
from taptr_ros.tracking.feature_cache import FeatureCache
from taptr_ros.tracking.options import TrackerOptions
from taptr_ros.tracking.points import PointRegistry


class WindowDecoder:
    """Decodes the engine's windows; keeps the last committed one's input state (in the point
    registry's preallocated ``window_*`` rows, so memory stays flat).

    Args:
        model: the network.
        options: resolved `TrackerOptions`.
        cache: the ring buffer (memory kept for window + stride - 1 frames).
        points: the point registry (slots shared with `cache`).
        dummy_xy: (P, 2) padding positions (`decode.dummy_positions`).
    """

    def __init__(self, model: TAPTRv2, options: TrackerOptions, cache: FeatureCache, points: PointRegistry,
                 dummy_xy: torch.Tensor) -> None:
        self.model, self.options, self.cache, self.points = model, options, cache, points
        self.dummy_xy = dummy_xy
        self._committed: tuple[int, int] | None = None  # (first, last) of the last committed window

    def clear(self) -> None:
        """Forget the last committed window (reset)."""
        self._committed = None

    def joins(self, start: int) -> bool:
        """Whether a point starting at frame `start` lies in the last committed window."""
        return self._committed is not None and start <= self._committed[1]

    def decode(self, first: int, last: int, *, commit: bool) -> Trajectory | None:
        """Decode frames first..last for every point; commit the state if asked.

        Returns the post-window state (n, N, ...) of the points in id order (None if none).
        """
        points = self.points
        rows = points.rows()
        slots = self.cache.slots(first, last)
        state = points.gather(slots, rows)
        if commit:
            self._committed = (first, last)
            points.keep_window_inputs(rows, state)
        if rows.numel() == 0:
            return None
        tracked, update = point_masks(points.start[rows], first, last)
        if not bool(update.any()):
            return state
        new = self._decode(first, last, state, rows, tracked, update)
        if commit:
            self._write(first, last, rows, new, update)
        return new

    @torch.inference_mode()
    def recommit(self) -> bool:
        """Decode the last committed window again with the points tracked now (see the module
        docstring); returns whether a decoder pass ran."""
        if self._committed is None:
            return False
        points = self.points
        rows = points.rows()
        first, last = self._committed
        state, known = points.window_inputs(rows)
        points.keep_window_inputs(rows, state)
        if rows.numel() == 0:
            return False
        tracked, update = point_masks(points.start[rows], first, last)
        if self.options.independent_points:  # only the new points' own tracks can change
            select = ~known & update.any(0)
        else:  # every point the window tracks (a point starting later does not take part)
            select = tracked.any(0)
        if not bool(update[:, select].any()):
            return False
        at = torch.nonzero(select).flatten()
        sub = Trajectory(state.content[:, at], state.ref[:, at], state.vis_logits[:, at])
        new = self._decode(first, last, sub, rows[at], tracked[:, at], update[:, at])
        self._write(first, last, rows[at], new, update[:, at])
        return True

    def _decode(self, first: int, last: int, state: Trajectory, rows: torch.Tensor, tracked: torch.Tensor,
                update: torch.Tensor) -> Trajectory:
        cache = self.cache
        if self.options.cache_projections and cache.holds(first):  # the ring read in place at the slots
            memory, kv, kv_frames = cache.frame_memory(first), cache.ring_kv(), cache.slots(first, last)
        else:  # not cached, or the window's first frames are no longer buffered: their memory is kept
            memory, kv, kv_frames = cache.window(first, last), None, None
        return decode_padded(self.model, memory, kv, state, self.points.f0[rows], tracked, update,
                             self.dummy_xy, kv_frames=kv_frames, isolated=self.options.independent_points)

    def _write(self, first: int, last: int, rows: torch.Tensor, new: Trajectory, update: torch.Tensor) -> None:
        """Commit a window's new state: its buffered frames, the future state, and the frames
        after it (a recommit: they were entered with the old future state)."""
        points, cache = self.points, self.cache
        lo = max(first, cache.oldest)
        points.scatter(cache.slots(lo, last), rows, new.frames(lo - first, last - first))
        # joint decoding carries every point; one-by-one decoding skipped points with no update
        keep = update.any(0).to(rows.device) if self.options.independent_points \
            else torch.ones(rows.numel(), dtype=torch.bool, device=rows.device)
        tail = Trajectory(new.content[-1:, keep], new.ref[-1:, keep], new.vis_logits[-1:, keep])
        k = first // self.options.stride
        points.set_future(rows[keep], tail, copy_content=k % self.options.content_propagation_gap == 0)
        for frame in range(last + 1, cache.latest + 1):
            points.enter_frame(cache.slot(frame))
