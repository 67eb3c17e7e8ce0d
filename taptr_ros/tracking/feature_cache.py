"""Ring buffer of the encoder memory of the last W frames, preallocated on the model's device.

Frame i (0-based, counted since the stream started or was reset) lives in slot i % W: its
stamp, its (height, width) in pixels, its cross-attention keys and values when kept, and the
points' state at it (`PointRegistry` uses the same slots). These W frames are the *buffered*
frames (`holds`). The encoder memory alone may be kept for `extra` older frames too, in a ring
of W + extra slots (frame i at i % (W + extra), `holds_memory`): the engine keeps W - 1 more,
every frame of the committed windows that hold a buffered frame, so those windows can be
committed again when points join them (`taptr_ros.tracking.windows`). A frame is encoded once,
when it is pushed; windows read their frames' memory from here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class FeatureCache:
    """Encoder memory of the last `capacity` frames.

    Args:
        capacity: frames kept (the window size W).
        num_tokens: L, tokens of one frame's memory.
        dim: C, channels per token.
        device, dtype: of the memory tensor (the model's).
        kv_layers: when > 0, also keep each frame's cross-attention keys and values of that
            many decoder layers (`TAPTRv2.project_memory`), projected once per frame.
        extra: older frames whose encoder memory (only) is kept beyond the `capacity`
            buffered ones.
    """

    def __init__(self, capacity: int, num_tokens: int, dim: int, *,
                 device: torch.device | str, dtype: torch.dtype, kv_layers: int = 0, extra: int = 0) -> None:
        if capacity < 1 or extra < 0:
            raise ValueError(f"capacity must be >= 1 and extra >= 0, got {capacity} and {extra}")
        self.capacity = capacity
        self.memory_frames = capacity + extra
        """Frames whose memory is kept (W + extra): ``memory`` has this many slots."""
        self.memory = torch.zeros(self.memory_frames, num_tokens, dim, device=device, dtype=dtype)
        self.keys = torch.zeros(kv_layers, capacity, num_tokens, dim, device=device, dtype=dtype) \
            if kv_layers else None
        self.values = torch.zeros_like(self.keys) if kv_layers else None
        self._frame = [-1] * capacity
        self._stamp: list[Any] = [None] * capacity
        self._hw: list[tuple[int, int]] = [(0, 0)] * capacity
        self.latest = -1
        """Index of the newest frame stored (-1 when empty)."""

    @property
    def oldest(self) -> int:
        """Index of the oldest frame still stored (0 when empty)."""
        return max(0, self.latest - self.capacity + 1)

    def __len__(self) -> int:
        return 0 if self.latest < 0 else self.latest - self.oldest + 1

    def holds(self, frame: int) -> bool:
        """The frame is buffered (one of the last `capacity`)."""
        return self.oldest <= frame <= self.latest and self.latest >= 0

    def holds_memory(self, frame: int) -> bool:
        """The frame's encoder memory is kept (one of the last `memory_frames`)."""
        return max(0, self.latest - self.memory_frames + 1) <= frame <= self.latest and self.latest >= 0

    def _memory_slot(self, frame: int) -> int:
        if not self.holds_memory(frame):
            oldest = max(0, self.latest - self.memory_frames + 1)
            raise KeyError(f"frame {frame}'s memory is not kept (frames {oldest}..{self.latest} are)")
        return frame % self.memory_frames

    def slot(self, frame: int) -> int:
        """Slot of a stored frame.

        Raises:
            KeyError: the frame is not stored (evicted or not pushed yet).
        """
        if not self.holds(frame):
            raise KeyError(f"frame {frame} is not buffered (buffer holds {self.oldest}..{self.latest})")
        return frame % self.capacity

    def put(self, frame: int, stamp: Any, hw: tuple[int, int], memory: Tensor,
            kv: tuple[Tensor, Tensor] | None = None) -> int:
        """Store the next frame's memory (L, C) (and keys/values (nD, L, C) each, when kept),
        evicting the frame `capacity` frames older.

        Raises:
            ValueError: `frame` is not latest + 1 (frames are stored in order, none skipped),
                or keys/values missing while the cache keeps them.
        """
        if frame != self.latest + 1:
            raise ValueError(f"frames must be stored in order: expected {self.latest + 1}, got {frame}")
        if (kv is None) != (self.keys is None):
            raise ValueError("keys/values must be given exactly when the cache keeps them")
        slot = frame % self.capacity
        self.memory[frame % self.memory_frames].copy_(memory)
        if kv is not None:
            self.keys[:, slot].copy_(kv[0])
            self.values[:, slot].copy_(kv[1])
        self._frame[slot], self._stamp[slot], self._hw[slot] = frame, stamp, (int(hw[0]), int(hw[1]))
        self.latest = frame
        return slot

    def stamp(self, frame: int) -> Any:
        """The stamp a stored frame (absolute frame index) was pushed with."""
        return self._stamp[self.slot(frame)]

    def hw(self, frame: int) -> tuple[int, int]:
        """(height, width) in pixels of a stored frame."""
        return self._hw[self.slot(frame)]

    def frame_memory(self, frame: int) -> Tensor:
        """(1, L, C) view of the memory of a frame whose memory is kept."""
        slot = self._memory_slot(frame)
        return self.memory[slot:slot + 1]

    def slots(self, first: int, last: int) -> Tensor:
        """(n,) long slots of frames first..last (all stored), on the memory's device."""
        for frame in (first, last):
            self.slot(frame)
        idx = torch.arange(first, last + 1) % self.capacity
        return idx.to(self.memory.device)

    def window(self, first: int, last: int) -> Tensor:
        """(n, L, C) memory of frames first..last in order (a copy); their memory must be kept."""
        for frame in (first, last):
            self._memory_slot(frame)
        idx = torch.arange(first, last + 1) % self.memory_frames
        return self.memory.index_select(0, idx.to(self.memory.device))

    def ring_kv(self) -> tuple[Tensor, Tensor]:
        """Keys and values of every slot, ((nD, W, L, C), (nD, W, L, C)), the buffers
        themselves (no copy): read frame f at slot `slot(f)` (`slots` for a window)."""
        if self.keys is None:
            raise ValueError("this cache does not keep keys/values (kv_layers=0)")
        return self.keys, self.values

    def window_kv(self, first: int, last: int) -> tuple[Tensor, Tensor]:
        """Keys and values of frames first..last, ((nD, n, L, C), (nD, n, L, C)) copies."""
        if self.keys is None:
            raise ValueError("this cache does not keep keys/values (kv_layers=0)")
        slots = self.slots(first, last)
        return self.keys.index_select(1, slots), self.values.index_select(1, slots)

    def clear(self) -> None:
        """Forget every frame (the memory tensor is kept, not freed)."""
        self._frame = [-1] * self.capacity
        self._stamp = [None] * self.capacity
        self._hw = [(0, 0)] * self.capacity
        self.latest = -1
