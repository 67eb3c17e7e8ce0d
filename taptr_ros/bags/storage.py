"""rosbag2 bags without ROS, on ``rosbags``: read camera frames and tracks, write bags atomically.

* :class:`BagReader`: opens a sqlite3 or mcap bag (a directory with metadata.yaml), picks the
  image topic, yields :class:`BagImage` frames decoded to RGB with ``step`` padding and
  compression handled by :mod:`taptr_ros.messages.rgb8` (the node's own decoder), and
  reads TrackedPoints topics as :class:`taptr_ros.messages.tracks.Tracks`.
* :class:`BagWriter`: writes to a hidden temporary directory next to the target and moves it
  into place on success, so a bag path never holds a half-written bag.

Types and message builders: :mod:`taptr_ros.messages.typestore`. Every failure is a
:class:`taptr_ros.bags.errors.BagError`. No rclpy is imported here.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from taptr_ros.bags.errors import (
    BagEmptyError,
    BagError,
    BagNotFoundError,
    BagTopicError,
    BagTruncatedError,
    BagTypeError,
    BagWriteError,
)
from taptr_ros.bags.topics import BAG_VERSION, STORAGES
from taptr_ros.messages.typestore import (
    IMAGE_TYPES,
    TRACKS_TYPE,
    bag_typestore,
    stamp_to_ns,
)

# --- writing --------------------------------------------------------------------------------


def replace_path(tmp: Path, target: Path) -> None:
    """Move ``tmp`` (file or directory) to ``target``, replacing what was there."""
    if target.is_dir() and not target.is_symlink():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


class BagWriter:
    """Write a rosbag2 bag atomically: into ``.NAME.partial-XXXX/NAME`` beside it, moved by :meth:`close`.

    Use as a context manager; an exception inside removes the temporary bag and leaves the target
    untouched.

    Args:
        path: the bag directory to create.
        storage: ``"sqlite3"`` or ``"mcap"``.
        overwrite: replace an existing bag at ``path`` (else :class:`BagWriteError`).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, storage: str = "sqlite3", overwrite: bool = False
    ) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise BagWriteError(f"unknown storage {storage!r}: use one of {', '.join(STORAGES)}")
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise BagWriteError(f"{self.path} exists already: choose another --out or remove it first")
        if not self.path.parent.is_dir():
            raise BagWriteError(f"{self.path.parent} is not a directory: create it first")
        # the storage file is named after its directory: write NAME inside a hidden temporary folder
        self._tmp_parent = self.path.with_name(f".{self.path.name}.partial-{uuid.uuid4().hex[:8]}")
        self._tmp_parent.mkdir()
        self.tmp = self._tmp_parent / self.path.name
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.tmp, version=BAG_VERSION, storage_plugin=plugin)
        self._connections: dict[str, Any] = {}
        self._files: dict[str, str] = {}
        self._writer.open()

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare a topic; its type's definition (and dependencies) is stored in the bag."""
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=bag_typestore())

    def write(self, topic: str, log_ns: int, msg: Any) -> None:
        """Serialize a rosbags message (CDR) and append it with receive time ``log_ns``."""
        connection = self._connections[topic]
        self._writer.write(
            connection, int(log_ns), bytes(bag_typestore().serialize_cdr(msg, connection.msgtype))
        )

    def write_raw(self, topic: str, log_ns: int, data: bytes | memoryview) -> None:
        """Append already serialized CDR bytes."""
        self._writer.write(self._connections[topic], int(log_ns), bytes(data))

    def add_file(self, name: str, text: str) -> None:
        """A side file written into the bag directory on close (e.g. :data:`QUERIES_FILE`)."""
        self._files[name] = text

    def close(self) -> Path:
        """Finish the bag and move it to its path; returns the path."""
        self._writer.close()
        for name, text in self._files.items():
            (self.tmp / name).write_text(text, encoding="utf-8")
        replace_path(self.tmp, self.path)
        self._tmp_parent.rmdir()
        return self.path

    def abort(self) -> None:
        """Drop the temporary bag; the target is left as it was."""
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - it is being thrown away
            pass
        shutil.rmtree(self._tmp_parent, ignore_errors=True)

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# --- reading --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BagImage:
    """One camera frame of a bag.

    Attributes:
        index: position among the topic's messages, from 0.
        log_ns: the bag's receive time.
        stamp_ns: the message header's stamp (what the tracker and TrackedPoints use).
        frame_id: the header's frame.
        rgb: (H, W, 3) uint8 RGB, decoded as the node decodes it.
        raw: the message's CDR bytes, as recorded (republished as is by ``taptr bag play``).
    """

    index: int
    log_ns: int
    stamp_ns: int
    frame_id: str
    rgb: np.ndarray
    raw: bytes

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def _reader_error(path: Path, error: BaseException) -> BagError:
    text = str(error)
    if isinstance(error, sqlite3.DatabaseError) or any(
        word in text.lower()
        for word in (
            "malformed",
            "truncat",
            "corrupt",
            "unexpected end",
            "not a database",
            "magic",
            "crc",
            "eof",
            "short",
            "buffer",
        )
    ):
        return BagTruncatedError(
            f"{path}: the bag's storage is truncated or corrupt ({type(error).__name__}: {text}); "
            "re-record or re-copy it (a bag cut short by a crash may be repaired with `ros2 bag reindex`)"
        )
    return BagError(f"{path}: rosbags cannot read it ({type(error).__name__}: {text})")


class BagReader:
    """Read a rosbag2 bag (sqlite3 or mcap). Use as a context manager.

    Args:
        path: the bag directory (with metadata.yaml).

    Raises:
        BagNotFoundError: missing path, or no metadata.yaml.
        BagTruncatedError: the storage cannot be opened.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from rosbags.highlevel import AnyReader

        self.path = Path(path)
        if not self.path.exists():
            raise BagNotFoundError(
                f"{self.path}: no such bag; make one with `taptr bag make SOURCE --out BAG`"
            )
        if self.path.is_file() and self.path.suffix in (".mcap", ".db3"):
            raise BagNotFoundError(
                f"{self.path} is a storage file: pass its directory (the one with "
                "metadata.yaml), or recreate metadata with `ros2 bag reindex`"
            )
        if not (self.path / "metadata.yaml").is_file():
            raise BagNotFoundError(
                f"{self.path}: not a rosbag2 bag (no metadata.yaml); pass the bag "
                "directory, or recreate metadata with `ros2 bag reindex`"
            )
        try:
            self._reader = AnyReader([self.path], default_typestore=bag_typestore())
            self._reader.open()
        except Exception as error:  # noqa: BLE001 - every failure becomes a BagError
            raise _reader_error(self.path, error) from error

    def close(self) -> None:
        """Close the bag (also on leaving a ``with`` block)."""
        self._reader.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def topics(self) -> dict[str, str]:
        """{topic: message type} of every topic in the bag."""
        return {topic: str(info.msgtype) for topic, info in sorted(self._reader.topics.items())}

    def message_count(self, topic: str) -> int:
        """Messages on ``topic`` according to the bag's metadata."""
        return sum(c.msgcount for c in self._reader.connections if c.topic == topic)

    def _listing(self) -> str:
        return ", ".join(f"{t} ({m})" for t, m in self.topics.items()) or "none"

    def require_topic(self, topic: str, msgtypes: Sequence[str]) -> str:
        """The type of ``topic``, checked against ``msgtypes``.

        Raises:
            BagTopicError: the topic is absent (the message lists the topics present).
            BagTypeError: it carries another type.
        """
        topics = self.topics
        if topic not in topics:
            raise BagTopicError(
                f"{self.path}: no topic {topic!r}; topics present: {self._listing()}. "
                "Pick one of them with --image-topic (or the matching option)"
            )
        if topics[topic] not in msgtypes:
            raise BagTypeError(
                f"{self.path}: topic {topic!r} carries {topics[topic]}, which these tools "
                f"cannot read here; expected {' or '.join(msgtypes)}. Choose a topic of "
                "that type, or convert the stream first"
            )
        return topics[topic]

    def image_topic(self, topic: str | None = None) -> str:
        """``topic`` checked to be an Image/CompressedImage topic, or the bag's only such topic.

        Raises:
            BagTopicError: absent, or None given and the bag has zero or several image topics.
            BagTypeError: the topic is not an image topic.
        """
        if topic is not None:
            self.require_topic(topic, IMAGE_TYPES)
            return topic
        images = [t for t, m in self.topics.items() if m in IMAGE_TYPES]
        if len(images) == 1:
            return images[0]
        if not images:
            raise BagTopicError(
                f"{self.path}: no sensor_msgs/Image or CompressedImage topic; topics "
                f"present: {self._listing()}. Record the camera's image topic"
            )
        raise BagTopicError(
            f"{self.path}: several image topics ({', '.join(images)}): choose one " "with --image-topic"
        )

    def _messages(self, topic: str) -> Iterator[tuple[int, Any, bytes]]:
        """(log_ns, message, raw CDR) of ``topic`` in log-time order; checks the count."""
        connections = [c for c in self._reader.connections if c.topic == topic]
        expected = sum(c.msgcount for c in connections)
        count = 0
        try:
            for connection, log_ns, raw in self._reader.messages(connections=connections):
                try:
                    msg = self._reader.deserialize(raw, connection.msgtype)
                except Exception as error:  # noqa: BLE001
                    raise BagTruncatedError(
                        f"{self.path}: message {count} of {topic!r} ({connection.msgtype}) does not "
                        f"deserialize ({error}); the bag is truncated or corrupt: re-record or re-copy it"
                    ) from error
                count += 1
                yield int(log_ns), msg, bytes(raw)
        except BagError:
            raise
        except Exception as error:  # noqa: BLE001 - storage failures mid-read
            raise _reader_error(self.path, error) from error
        if count == 0:
            raise BagEmptyError(
                f"{self.path}: topic {topic!r} has no messages (metadata says {expected}); "
                "record some, or choose another topic"
            )
        if count < expected:
            raise BagTruncatedError(
                f"{self.path}: topic {topic!r} has {count} readable messages but the "
                f"metadata lists {expected}: the bag is truncated; re-record or re-copy it"
            )

    def iter_images(self, topic: str | None = None) -> Iterator[BagImage]:
        """Frames of an image topic (see :meth:`image_topic`), decoded to RGB as the node does.

        Raises:
            BagEmptyError: the topic holds no messages.
            BagTruncatedError: storage or a message cut short.
            BagTypeError: a frame that cannot be decoded (unsupported encoding, bad jpeg, ...).
        """
        from taptr_ros.messages.raw_image import ImageConversionError
        from taptr_ros.messages.rgb8 import message_to_rgb8

        topic = self.image_topic(topic)
        for index, (log_ns, msg, raw) in enumerate(self._messages(topic)):
            try:
                rgb = message_to_rgb8(msg)
            except ImageConversionError as error:
                cls = BagTruncatedError if "truncated" in str(error) else BagTypeError
                raise cls(f"{self.path}: frame {index} of {topic!r}: {error}") from error
            yield BagImage(index, log_ns, stamp_to_ns(msg.header.stamp), str(msg.header.frame_id), rgb, raw)

    def image_stamps(self, topic: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(header stamps, log times), both (T,) int64 ns, of an image topic, without decoding pixels."""
        topic = self.image_topic(topic)
        pairs = [(stamp_to_ns(msg.header.stamp), log_ns) for log_ns, msg, _raw in self._messages(topic)]
        return np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64)

    def iter_tracks(self, topic: str) -> Iterator[tuple[int, Any]]:
        """(log_ns, :class:`taptr_ros.messages.tracks.Tracks`) of a TrackedPoints topic."""
        from taptr_ros.messages.tracks import TracksMessageError, unpack_tracks

        self.require_topic(topic, (TRACKS_TYPE,))
        for log_ns, msg, _raw in self._messages(topic):
            try:
                yield log_ns, unpack_tracks(msg)
            except TracksMessageError as error:
                raise BagTruncatedError(f"{self.path}: {topic!r}: {error}") from error
