"""Frame stamps of the online engine: which buffered frame a point stamp names, and the rule
that frame stamps increase. Pure functions over the tracker's list of buffered frames."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taptr_ros.tracking.errors import FrameError, StampError

Buffered = tuple[int, Any, tuple[int, int]]
"""(frame index, stamp, (height, width)) of a buffered frame."""


def resolve_stamp(frames: Sequence[Buffered], stamp: Any, window: int) -> Buffered:
    """The buffered frame named by `stamp` (None = the latest); `frames` oldest first.

    Raises:
        StampError: no frame yet, or no buffered frame with that stamp (too old, too new, unknown).
    """
    if not frames:
        raise StampError("no frame has been pushed yet (or reset() was called): push a frame "
                         "before adding points")
    if stamp is None:
        return frames[-1]
    for index, s, hw in reversed(frames):
        if s == stamp:
            return index, s, hw
    oldest, newest = frames[0][1], frames[-1][1]
    try:
        if stamp < oldest:
            raise StampError(f"stamp {stamp} is older than the buffer (oldest buffered frame: "
                             f"{oldest}); points can only be added at the last {window} "
                             "frames: give a newer stamp, or none for the latest frame")
        if stamp > newest:
            raise StampError(f"stamp {stamp} is newer than the latest frame ({newest}); push that "
                             "frame first, or give no stamp for the latest frame")
    except TypeError:
        pass
    raise StampError(f"no buffered frame has stamp {stamp!r}; buffered stamps: {[s for _, s, _ in frames]}")


def check_increasing(previous: Any, stamp: Any) -> None:
    """A frame's stamp must come after the previous frame's.

    Raises:
        FrameError: it does not (or the two cannot be compared).
    """
    try:
        increasing = bool(stamp > previous)
    except TypeError:
        increasing = False
    if not increasing:
        raise FrameError(f"stamp {stamp!r} is not after the previous frame's stamp {previous!r}: "
                         "stamps must increase; call reset() if the stream restarted")
