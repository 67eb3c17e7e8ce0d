"""The tracking room's exception family: every refusal of the online engine is a `TrackerError`.

Messages say what is wrong and what to do. A refused call changes nothing: no id is consumed,
no point is added or removed, no frame is stored.
"""

from __future__ import annotations


class TrackerError(Exception):
    """Base class of every error raised by :mod:`taptr_ros.tracking`."""


class OptionsError(TrackerError):
    """Invalid `TrackerOptions` or options that do not fit the model."""


class FrameError(TrackerError):
    """A frame or frame stamp that `OnlineTracker.push` cannot take."""


class PointError(TrackerError):
    """Point coordinates that cannot be tracked (wrong shape, NaN/inf, outside the frame)."""


class StampError(TrackerError):
    """A point stamp that names no buffered frame (too old, unknown, or no frame yet)."""


class CapacityError(TrackerError):
    """Adding the points would exceed `TrackerOptions.max_points`."""


class ModelLoadError(TrackerError):
    """The tracker's network could not be built (missing or unreadable checkpoint)."""


class TrackerStateError(TrackerError):
    """A previous frame failed half-way; the tracker must be `reset()` before going on."""
