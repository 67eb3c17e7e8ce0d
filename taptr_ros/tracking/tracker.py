"""`OnlineTracker`: TAPTRv2 on a live stream, points added and removed at any frame.

Semantics (DESIGN.md section 3), with W = window and S = stride frames:

* Frame t is encoded once, into a ring buffer of the last W frames (`FeatureCache`; the
  memory of W - 1 older frames is kept too, see below).
* When t = kS + W - 1 the window [kS, t] is decoded and committed: its frames keep the
  result, and its tail frame's state becomes the state every later frame starts from
  (`taptr_ros.model.windowing.commit_window`, the code the offline reference runs).
* In ``immediate`` mode every other frame t runs a provisional window [max(0, t-W+1), t]
  from the committed state; its result for t is published and its state discarded. So the
  result for frame t equals `taptr_ros.model.taptr.track_video` on the video cut at t
  (with ``content_propagation_gap`` = the option), for the points known at t.
* In ``committed`` mode only frames t = W - 1 (mod S) decode: committed windows, or while
  t < W - 1 a provisional [0, t]; the push returns the results of every frame since the
  previous publish, each equal to the offline result on the video cut at t. ``flush()``
  publishes the frames left at the end of a stream.
* A window in which no point has a frame to update is skipped, as offline.
* Points join at a buffered frame s (latest by default) with the feature sampled from that
  frame's cached memory; they take part in every window decoded from then on and, when s
  lies in committed windows (s is the latest frame and a window tail, or an older buffered
  stamp), in those too: they are committed again with them before the next decode
  (`taptr_ros.tracking.windows`, one extra decoder pass per window, only then). So every
  result published after the add equals the offline result on the video cut there with the
  point queried at s. Published frames are never revised (frame s's own results were
  published before the point existed). Ids are never reused, not even across `reset()`.

Threads: `add_points`, `remove_points`, `remove_all` and `reset` may be called from any
thread. They are validated at once (a refusal raises and changes nothing), queued, and
applied at the next frame boundary: immediately when no `push` is running, else at the
start of the next `push`. Only one `push` runs at a time.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from taptr_ros.model.preprocess import pixels_to_norm
from taptr_ros.model.taptr import TAPTRv2
from taptr_ros.tracking.decode import dummy_positions
from taptr_ros.tracking.encoding import EncodedFrame, check_frame, encode_frame
from taptr_ros.tracking.errors import CapacityError, FrameError, PointError, TrackerStateError
from taptr_ros.tracking.feature_cache import FeatureCache
from taptr_ros.tracking.options import FrameResult, FrameTimings, TrackerOptions
from taptr_ros.tracking.points import PointRegistry
from taptr_ros.tracking.stamps import check_increasing, resolve_stamp
from taptr_ros.tracking.windows import WindowDecoder, history_frames, history_windows

_MAX_ID = 2**32 - 1


@dataclass
class _Frame:
    """A frame waiting to be published (committed mode) or being published."""

    index: int
    stamp: Any
    hw: tuple[int, int]
    preprocess_ms: float
    encode_ms: float


class OnlineTracker:
    """Online TAPTRv2 tracker over a stream of frames of any size.

    Args:
        model: the network; moved to `device` when given (in place), put in eval mode.
        options: `TrackerOptions` (window/stride/threshold default to the model config's).
        device: "cpu", "cuda", "cuda:1", ... or None for the model's current device.

    Raises:
        OptionsError: options that do not fit the model.
    """

    def __init__(self, model: TAPTRv2, options: TrackerOptions | None = None, *,
                 device: torch.device | str | None = None) -> None:
        if device is not None:
            model = model.to(device)
        self.model = model.eval()
        cfg = model.config
        self.options = (options or TrackerOptions()).resolved(cfg)
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        opts = self.options
        kv_layers, extra = cfg.dec_layers if opts.cache_projections else 0, history_frames(opts) - opts.window
        self._cache = FeatureCache(opts.window, cfg.num_tokens(), cfg.hidden_dim, device=self.device,
                                   dtype=self.dtype, kv_layers=kv_layers, extra=extra)
        self._points = PointRegistry(opts.max_points, opts.window, cfg.hidden_dim, cfg.num_vis_classes,
                                     device=self.device, dtype=self.dtype, windows=history_windows(opts),
                                     eps=cfg.logit_eps)
        dummy_xy = dummy_positions(opts.pad_queries_to, opts.pad_seed).to(self.device, self.dtype)
        self._windows = WindowDecoder(model, opts, self._cache, self._points, dummy_xy)
        self._lock = threading.Lock()      # guards the fields below up to _next_id
        self._run_lock = threading.Lock()  # one frame step (or op application) at a time
        self._pending: list[tuple] = []
        self._live: dict[int, None] = {}   # ids as they will be after the pending ops
        self._frames: collections.deque = collections.deque(maxlen=opts.window)  # (index, stamp, hw)
        self._next_frame = 0
        self._next_id = 0
        self._failed: str | None = None    # run-thread state from here on
        self._unpublished: list[_Frame] = []
        self._rejoin = False               # points joined committed windows: decode them again

    # ------------------------------------------------------------------ queries
    @property
    def ids(self) -> np.ndarray:
        """(N,) uint32 ids of the points tracked from the next frame on, ascending."""
        with self._lock:
            return np.fromiter(self._live, dtype=np.uint32, count=len(self._live))

    @property
    def num_points(self) -> int:
        with self._lock:
            return len(self._live)

    @property
    def frame_count(self) -> int:
        """Frames pushed since construction or the last reset."""
        with self._lock:
            return self._next_frame

    @property
    def buffered_stamps(self) -> list[Any]:
        """Stamps of the buffered frames (oldest first): those `add_points` accepts."""
        with self._lock:
            return [s for _, s, _ in self._frames]

    # ------------------------------------------------------------------ point ops
    def add_points(self, xy_pixels, stamp: Any = None) -> tuple[np.ndarray, Any]:
        """Start tracking points given in pixels of a buffered frame.

        The points start at that frame as if queried there offline: committed windows it lies
        in are committed again with them before the next decode (see the module docstring).

        Args:
            xy_pixels: (N, 2) pixels (x, y) of the frame named by `stamp`, inside it
                (0 <= x <= width - 1, 0 <= y <= height - 1).
            stamp: the stamp a buffered frame was pushed with, or None for the latest frame.

        Returns:
            (ids (N,) uint32 in input order, the stamp of the frame used).

        Raises:
            PointError: wrong shape, NaN/inf, or a point outside the frame.
            StampError: no frame yet, or no buffered frame with that stamp.
            CapacityError: more than max_points points would be tracked.
        """
        xy = np.asarray(xy_pixels, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise PointError(f"xy_pixels must be an (N, 2) array of pixel (x, y), got shape {xy.shape}")
        bad = np.flatnonzero(~np.isfinite(xy).all(axis=1))
        if bad.size:
            raise PointError(f"points {bad.tolist()} are not finite (NaN or inf): {xy[bad].tolist()}; "
                             "give pixel coordinates inside the frame")
        with self._lock:
            frame, stamp_used, (h, w) = resolve_stamp(self._frames, stamp, self.options.window)
            outside = np.flatnonzero((xy[:, 0] < 0) | (xy[:, 0] > w - 1) | (xy[:, 1] < 0) | (xy[:, 1] > h - 1))
            if outside.size:
                raise PointError(f"points {outside.tolist()} {xy[outside].tolist()} lie outside the "
                                 f"{w}x{h} frame: x must be in [0, {w - 1}] and y in [0, {h - 1}] pixels")
            limit = self.options.max_points
            if len(self._live) + len(xy) > limit:
                raise CapacityError(f"adding {len(xy)} points to the {len(self._live)} tracked would "
                                    f"exceed max_points={limit}; remove points first or raise max_points")
            if self._next_id + len(xy) - 1 > _MAX_ID:
                raise CapacityError("the uint32 id space is exhausted; create a new tracker")
            ids = list(range(self._next_id, self._next_id + len(xy)))
            self._next_id += len(xy)
            if ids:
                self._pending.append(("add", ids, frame, torch.from_numpy(pixels_to_norm(xy, w, h))))
                self._live.update(dict.fromkeys(ids))
        self._try_apply()
        return np.asarray(ids, dtype=np.uint32), stamp_used

    def remove_points(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """Stop tracking points; their state is freed at the frame boundary (at once when idle).

        Args:
            ids: iterable of non-negative integer ids.

        Returns:
            (removed, unknown): uint32 arrays, in request order, duplicates dropped.

        Raises:
            PointError: ids that are not non-negative integers below 2**32.
        """
        arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids).reshape(-1)
        if arr.size and (arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() > _MAX_ID):
            raise PointError(f"ids must be non-negative integers below 2**32, got {arr.tolist()}")
        wanted = list(dict.fromkeys(int(i) for i in arr))
        with self._lock:
            removed = [i for i in wanted if i in self._live]
            unknown = [i for i in wanted if i not in self._live]
            for i in removed:
                del self._live[i]
            if removed:
                self._pending.append(("remove", removed))
        self._try_apply()
        return np.asarray(removed, dtype=np.uint32), np.asarray(unknown, dtype=np.uint32)

    def remove_all(self) -> np.ndarray:
        """Remove every point; returns their ids (uint32, ascending)."""
        return self.remove_points(self.ids)[0]

    def reset(self) -> None:
        """Forget every frame and point (ids keep counting up); applied at the frame boundary.

        The next push is frame 0 of a new stream; stamps may start over.
        """
        with self._lock:
            self._pending = [("reset",)]
            self._live.clear()
            self._frames.clear()
            self._next_frame = 0
        self._try_apply()

    def _try_apply(self) -> None:
        """Apply pending ops now if no push is running (else the next push applies them)."""
        if self._run_lock.acquire(blocking=False):
            try:
                with self._lock:
                    ops, self._pending = self._pending, []
                try:
                    self._apply(ops)
                except Exception as exc:
                    self._failed = f"applying {[op[0] for op in ops]} failed: {exc!r}"
                    raise TrackerStateError(f"{self._failed}; call reset() to start a new stream") from exc
            finally:
                self._run_lock.release()

    @torch.inference_mode()
    def _apply(self, ops: list[tuple]) -> None:
        """Apply queued ops in order (run lock held). Points that join a committed window mark
        it to be committed again (`_rejoin`) at the next push (committed mode: the next push
        that decodes) or flush, once, with the points tracked then: so the ops between two
        frames commute."""
        for op in ops:
            if op[0] == "reset":
                self._cache.clear()
                self._points.clear()
                self._windows.clear()
                self._unpublished.clear()
                self._failed = None
                self._rejoin = False
            elif op[0] == "remove":
                self._points.remove(op[1])
            else:
                _, ids, frame, xy_norm = op
                memory = self._cache.frame_memory(frame)
                memory = memory.expand(len(ids), *memory.shape[1:])  # a view: no copy per point
                f0, ref0 = self.model.init_queries(memory, xy_norm.to(self.device, self.dtype))
                # under autocast half precision; the point state stays in the tracker's dtype
                self._points.add(ids, frame, f0.to(self.dtype), ref0.to(self.dtype))
                self._rejoin = self._rejoin or self._windows.joins(frame)

    def _tail(self, index: int) -> bool:
        """Frame `index` ends a window (committed from W - 1 on): t = W - 1 (mod S)."""
        return (index - (self.options.window - 1)) % self.options.stride == 0

    def _recommit(self) -> None:
        """Commit the last committed window again if points joined it (run lock held)."""
        if self._rejoin:
            self._windows.recommit()
            self._rejoin = False

    # ------------------------------------------------------------------ frames
    def encode(self, frame: np.ndarray) -> EncodedFrame:
        """Encode a frame for a later `push`, without touching the stream's state: may run
        on another thread while a push is decoding (a two-stage pipeline, `encoding`).

        Raises:
            FrameError: a malformed frame.
        """
        return encode_frame(self.model, frame, bgr=self.options.bgr,
                            with_keys_values=self.options.cache_projections)

    def push(self, frame: np.ndarray | EncodedFrame, stamp: Any = None) -> list[FrameResult]:
        """Encode a frame, decode as the mode says, return the results published now.

        Args:
            frame: (H, W, 3) uint8 RGB (BGR with options.bgr), H, W >= 2, any size; or that
                frame already encoded by `encode` of this tracker (same results).
            stamp: the frame's stamp (any totally ordered value, e.g. int nanoseconds),
                strictly increasing; None = the frame index.

        Returns:
            Results oldest first: in immediate mode exactly one, for this frame; in committed
            mode the frames since the previous publish at a publish frame, else none.

        Raises:
            FrameError: bad frame or stamp (nothing changes).
            TrackerStateError: a previous frame failed half-way; call reset().
        """
        if isinstance(frame, EncodedFrame):
            if frame.model is not self.model:
                raise FrameError("the frame was encoded by another network than this tracker's")
            if self.options.cache_projections and frame.keys is None:
                raise FrameError("the frame was encoded without the keys and values this tracker caches")
            hw = frame.hw
        else:
            hw = check_frame(frame)
        with self._run_lock:
            with self._lock:
                if self._failed is not None and not any(op[0] == "reset" for op in self._pending):
                    raise TrackerStateError(f"{self._failed}; call reset() to start a new stream")
                index = self._next_frame
                stamp = index if stamp is None else stamp
                if self._frames:
                    check_increasing(self._frames[-1][1], stamp)
                ops, self._pending = self._pending, []
                self._next_frame += 1
                self._frames.append((index, stamp, hw))
            try:
                self._apply(ops)
                if self.options.mode == "immediate" or self._tail(index):  # committed mode: only
                    self._recommit()                                       # before a decode
                return self._step(frame, index, stamp, hw)
            except Exception as exc:
                self._failed = f"frame {index} failed: {exc!r}"
                raise TrackerStateError(f"{self._failed}; call reset() to start a new stream") from exc

    def flush(self) -> list[FrameResult]:
        """Committed mode: publish the frames pushed since the last publish (a provisional
        window ending at the latest frame); immediate mode: nothing to do, returns []."""
        with self._run_lock, torch.inference_mode():
            if self._failed is not None:
                raise TrackerStateError(f"{self._failed}; call reset() to start a new stream")
            if not self._unpublished:
                return []
            last = self._unpublished[-1].index
            try:
                self._recommit()
                return self._publish(max(0, last - self.options.window + 1), last, commit=False)
            except Exception as exc:
                self._failed = f"flush failed: {exc!r}"
                raise TrackerStateError(f"{self._failed}; call reset() to start a new stream") from exc

    def _sync(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    @torch.inference_mode()
    def _step(self, frame: np.ndarray | EncodedFrame, index: int, stamp: Any, hw: tuple[int, int]) -> list[FrameResult]:
        enc = frame if isinstance(frame, EncodedFrame) else self.encode(frame)
        kv = None if enc.keys is None or not self.options.cache_projections else (enc.keys, enc.values)
        slot = self._cache.put(index, stamp, hw, enc.memory, kv)
        self._points.enter_frame(slot)
        self._unpublished.append(_Frame(index, stamp, hw, enc.preprocess_ms, enc.encode_ms))
        w = self.options.window
        tail = self._tail(index)
        commit = tail and index >= w - 1
        first = max(0, index - w + 1)
        if self.options.mode == "immediate":
            self._unpublished = self._unpublished[-1:]
            return self._publish(first, index, commit=commit)
        if tail:
            return self._publish(first, index, commit=commit)
        return []

    def _publish(self, first: int, last: int, *, commit: bool) -> list[FrameResult]:
        """Decode window [first, last] (committing it if asked), publish the unpublished frames."""
        t0 = time.perf_counter()
        new = self._windows.decode(first, last, commit=commit)
        t1 = self._sync()
        frames, self._unpublished = self._unpublished, []
        ids, starts = self._points.ids, self._points.starts
        if new is not None and len(ids):
            pos = torch.tensor([f.index - first for f in frames], device=self.device)
            xy = new.ref.index_select(0, pos)[..., :2].sigmoid().float().cpu().numpy()
            prob = new.vis_logits.index_select(0, pos)[..., 1].sigmoid().float().cpu().numpy()
        else:
            xy = np.zeros((len(frames), 0, 2), np.float32)
            prob = np.zeros((len(frames), 0), np.float32)
        threshold = np.float32(self.options.visibility_threshold)
        arrays = []
        for i, f in enumerate(frames):
            keep = starts <= f.index
            h, w = f.hw
            vis = prob[i][keep].astype(np.float32)
            xy_px = (xy[i][keep] * np.array([w - 1, h - 1], np.float32)).astype(np.float32)
            arrays.append((ids[keep], xy_px, vis > threshold, vis))
        post = 1e3 * (time.perf_counter() - t1)
        return [FrameResult(stamp=f.stamp, frame_index=f.index, width=f.hw[1], height=f.hw[0],
                            ids=a[0], xy=a[1], visible=a[2], visibility=a[3],
                            timings=FrameTimings(f.preprocess_ms, f.encode_ms, 1e3 * (t1 - t0), post))
                for f, a in zip(frames, arrays)]
