"""The data room's exception family."""

from __future__ import annotations


class DataError(Exception):
    """Base class of every error raised by :mod:`taptr_ros.data`."""


class VideoError(DataError):
    """A video file cannot be opened, decoded or written."""


class TapVidFormatError(DataError):
    """A TAP-Vid pickle does not have the expected layout."""
