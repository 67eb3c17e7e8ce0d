"""Window decoding of the online engine, and committed windows decoded again when points join
them (DESIGN.md section 3).

`WindowDecoder.decode` runs a window [first, last] over the ring buffer (`FeatureCache`) and
the point registry (`PointRegistry`): provisional (state discarded) or committed (the window's
buffered frames keep the new state, its tail becomes every later frame's start state).

A point whose start frame s lies in a committed window [c, e] is part of that window offline:
at s it takes part in spatial attention (the other points' outputs at s change), after s it
is updated, and the window's state is what the next windows start from. Online it can only be
added once frame s has been encoded, after [c, e] was committed without it: when s = e is the
latest frame (a point added at a window's tail frame) or when s is an older buffered stamp. So
every commit keeps the window's input state (the points' state before decoding, a copy made
for decoding anyway) for the last ceil(W / S) committed windows, those that can hold a buffered
frame; and `recommit` decodes again, oldest first, every committed window from the earliest
one the new point starts in, each from its kept input with the changes of the window before
carried over (its overlap, its tail copy), with the points tracked now. One decoder pass per
window joined (1 for a start frame in the last committed window only, 2 for one in the oldest
W - S - j buffered frames when W = 2S and the latest frame is e + j), only when such a point
arrives; the adds between two pushes cost one such run, at the next push (in committed mode
the adds between two decoding pushes: at the next push that decodes, or flush). The buffered
frames get the new state, the future state becomes the new tail, and the frames after
e (never committed) restart from it. From then on every result equals the offline model's on
the video cut there, with the point queried at s. Results already published are not revised;
that includes frame s itself (published before the point could be added: the other points'
results for frame s do not see it).

To decode those windows again their frames' encoder memory must still be there: the ring
buffer keeps the memory (not the keys/values) of W + ceil(W / S) S - 1 frames (`history_frames`;
2W - 1, W - 1 more than it buffers, when S divides W).
A window whose first frames are no longer buffered is decoded from the memory (keys and values
projected in the pass), equal to the cached projections to float rounding. The points decoded
again are those tracked now: a point removed since a commit no longer takes part.
"""

from __future__ import annotations

import collections

import torch

from taptr_ros.model.taptr import TAPTRv2
from taptr_ros.model.windowing import Trajectory, after_tail, point_masks, tail_velocity
from taptr_ros.tracking.decode import decode_padded
from taptr_ros.tracking.feature_cache import FeatureCache
from taptr_ros.tracking.options import TrackerOptions
from taptr_ros.tracking.points import PointRegistry


class WindowDecoder:
    """Decodes the engine's windows; keeps the input state of the last ceil(W / S) committed
    ones (in the point registry's preallocated ``window_*`` entries, so memory stays flat).

    Args:
        model: the network.
        options: resolved `TrackerOptions`.
        cache: the ring buffer (memory kept for `history_frames` frames, 2W - 1 by default).
        points: the point registry (slots shared with `cache`, `history_windows` entries).
        dummy_xy: (P, 2) padding positions (`decode.dummy_positions`).
    """

    def __init__(self, model: TAPTRv2, options: TrackerOptions, cache: FeatureCache, points: PointRegistry,
                 dummy_xy: torch.Tensor) -> None:
        self.model, self.options, self.cache, self.points = model, options, cache, points
        self.dummy_xy = dummy_xy
        # (first, last, registry entry) of the last committed windows, oldest first
        self._history: collections.deque = collections.deque(maxlen=history_windows(options))

    def clear(self) -> None:
        """Forget the committed windows (reset)."""
        self._history.clear()

    def joins(self, start: int) -> bool:
        """Whether a point starting at frame `start` lies in a committed window."""
        return bool(self._history) and start <= self._history[-1][1]

    def decode(self, first: int, last: int, *, commit: bool) -> Trajectory | None:
        """Decode frames first..last for every point; commit the state if asked.

        Returns the post-window state (n, N, ...) of the points in id order (None if none).
        """
        points = self.points
        rows = points.rows()
        slots = self.cache.slots(first, last)
        state = points.gather(slots, rows)
        if commit:
            entry = (first // self.options.stride) % self._history.maxlen
            self._history.append((first, last, entry))
            points.keep_window_inputs(entry, rows, state)
        if rows.numel() == 0:
            return None
        tracked, update = point_masks(points.start[rows], first, last)
        if not bool(update.any()):
            return state
        new = self._decode(first, last, state, rows, tracked, update)
        if commit:
            self._write(first, last, rows, new, update, self.cache.oldest)
        return new

    @torch.inference_mode()
    def recommit(self) -> int:
        """Decode again, oldest first, the committed windows from the earliest one in which a
        point it did not decode starts, with the points tracked now (see the module
        docstring); returns the decoder passes run."""
        points = self.points
        rows = points.rows()
        starts = points.start[rows]
        history = list(self._history)
        chain = next((i for i, (first, last, entry) in enumerate(history)
                      if bool((~points.in_window[entry, rows] & (starts >= first) & (starts <= last)).any())),
                     None)
        if chain is None:
            return 0
        stride, gap = self.options.stride, self.options.content_propagation_gap
        changed = torch.zeros(rows.numel(), dtype=torch.bool, device=rows.device)
        passes, prev = 0, None
        for first, last, entry in history[chain:]:
            state, known = points.window_inputs(entry, rows)
            if prev is not None:  # the points decoded again in the window before: its overlap, its tail
                p_last, p_at, p_new, p_copy = prev
                ov = p_last - first + 1
                for mine, theirs in ((state.content, p_new.content), (state.ref, p_new.ref),
                                     (state.vis_logits, p_new.vis_logits)):
                    mine[:ov, p_at] = theirs[-ov:]
                    if theirs is p_new.ref:  # the tail, or along its start velocity
                        cfg = self.model.config
                        mine[ov:, p_at] = after_tail(p_new.ref, mine.shape[0] - ov, cfg.start_velocity_frames,
                                                     cfg.logit_eps)
                    elif theirs is not p_new.content or p_copy:
                        mine[ov:, p_at] = theirs[-1:]
            points.keep_window_inputs(entry, rows, state)
            tracked, update = point_masks(starts, first, last)
            if self.options.independent_points:  # only the tracks of new or changed points change
                select = (~known | changed) & update.any(0)
            else:  # every point the window tracks (a point starting later does not take part)
                select = tracked.any(0)
            if not bool(update[:, select].any()):
                # nothing to update: skipped, as offline. Only before any window was decoded
                # again: a point decoded again has frames to update in every later window.
                continue
            at = torch.nonzero(select).flatten()
            sub = Trajectory(state.content[:, at], state.ref[:, at], state.vis_logits[:, at])
            new = self._decode(first, last, sub, rows[at], tracked[:, at], update[:, at])
            changed[at] = True
            passes += 1
            if last == history[-1][1]:
                self._write(first, last, rows[at], new, update[:, at], self.cache.oldest)
            elif max(first, self.cache.oldest) <= last:  # its buffered frames (the next window
                lo = max(first, self.cache.oldest)       # overwrites those it shares)
                points.scatter(self.cache.slots(lo, last), rows[at], new.frames(lo - first, last - first))
            prev = (last, at, new, (first // stride) % gap == 0)
        return passes

    def _decode(self, first: int, last: int, state: Trajectory, rows: torch.Tensor, tracked: torch.Tensor,
                update: torch.Tensor) -> Trajectory:
        cache = self.cache
        if self.options.cache_projections and cache.holds(first):  # the ring read in place at the slots
            memory, kv, kv_frames = cache.frame_memory(first), cache.ring_kv(), cache.slots(first, last)
        else:  # not cached, or the window's first frames are no longer buffered: their memory is kept
            memory, kv, kv_frames = cache.window(first, last), None, None
        return decode_padded(self.model, memory, kv, state, self.points.f0[rows], tracked, update,
                             self.dummy_xy, kv_frames=kv_frames, isolated=self.options.independent_points)

    def _write(self, first: int, last: int, rows: torch.Tensor, new: Trajectory, update: torch.Tensor,
               lo: int) -> None:
        """Commit a window's new state: its frames from `lo` on (buffered), the future state, and
        the frames after it (when committed again: they were entered with the old future)."""
        points, cache = self.points, self.cache
        if lo <= last:
            points.scatter(cache.slots(lo, last), rows, new.frames(lo - first, last - first))
        # joint decoding carries every point; one-by-one decoding skipped points with no update
        keep = update.any(0).to(rows.device) if self.options.independent_points \
            else torch.ones(rows.numel(), dtype=torch.bool, device=rows.device)
        tail = Trajectory(new.content[-1:, keep], new.ref[-1:, keep], new.vis_logits[-1:, keep])
        k = first // self.options.stride
        frames = self.model.config.start_velocity_frames
        points.set_future(rows[keep], tail, copy_content=k % self.options.content_propagation_gap == 0,
                          velocity=tail_velocity(new.ref[:, keep], frames) if frames else None)
        for frame in range(last + 1, cache.latest + 1):
            points.enter_frame(cache.slot(frame))


def history_windows(options: TrackerOptions) -> int:
    """Committed windows that can hold a buffered frame: ceil(W / S)."""
    return -(-options.window // options.stride)


def history_frames(options: TrackerOptions) -> int:
    """Frames whose memory must be kept to decode the kept windows again until the next commit:
    from the oldest one's first frame (tail - W + 1 - (K - 1) S, K = `history_windows`) to the
    last frame before the next commit (tail + S - 1): W + K S - 1, = 2W - 1 when S divides W."""
    return options.window + history_windows(options) * options.stride - 1
