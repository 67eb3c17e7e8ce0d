"""The bag tools' exception family: every problem with a rosbag ends in a :class:`BagError`.

Lower errors (rosbags' ``ReaderError``/``AnyReaderError``, sqlite3, image conversion, TAP-Vid
format) are re-raised as one of these, with a message that says what is wrong and what to do.
"""

from __future__ import annotations


class BagError(Exception):
    """Base of every error of :mod:`taptr_ros.bags.storage` and the ``taptr bag`` tools."""


class BagNotFoundError(BagError):
    """The path is missing or is not a rosbag2 bag (no metadata.yaml)."""


class BagTopicError(BagError):
    """A requested topic is not in the bag, or an image topic cannot be chosen unambiguously."""


class BagTypeError(BagError):
    """A topic carries a message type the tools cannot read."""


class BagEmptyError(BagError):
    """The bag, or the chosen topic, holds no messages."""


class BagTruncatedError(BagError):
    """The bag's storage is cut short or corrupt, or a message does not deserialize."""


class BagGroundTruthError(BagError):
    """Ground truth or queries that do not match the bag's video (frames, size, stamps)."""


class BagWriteError(BagError):
    """An output cannot be written (exists already, bad option, storage failure)."""
