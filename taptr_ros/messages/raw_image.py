"""sensor_msgs/Image <-> numpy, without cv_bridge (and without rclpy for reading).

Raw images (``sensor_msgs/Image``) in the encodings below, with any row padding
(``step`` > ``width * channels * itemsize``: ``step`` is honoured, unlike rosbags-image) and
either byte order (``is_bigendian``):

=========  ==========  ========  ===================================
encoding   numpy dtype channels  array shape
=========  ==========  ========  ===================================
rgb8       uint8       3         (H, W, 3), R, G, B
bgr8       uint8       3         (H, W, 3), B, G, R
rgba8      uint8       4         (H, W, 4), R, G, B, A
bgra8      uint8       4         (H, W, 4), B, G, R, A
mono8      uint8       1         (H, W)
mono16     uint16      1         (H, W)
16UC1      uint16      1         (H, W)
32FC1      float32     1         (H, W)
=========  ==========  ========  ===================================

Readers take message-like objects (rclpy messages, rosbags messages, anything with the
fields ``height, width, encoding, is_bigendian, step, data``). ``data`` may be bytes,
bytearray, array.array, memoryview or a numpy uint8 array. :func:`numpy_to_image` builds an
rclpy message (``msg.data`` an ``array.array('B')`` made from the bytes, never a numpy array);
:func:`pack_image` gives the plain fields for other message classes (rosbags). Every malformed
input raises :class:`ImageConversionError`. Compressed images: `compressed_image`; RGB8 for the
tracker from any of them: `rgb8`.
"""

from __future__ import annotations

import array
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:  # message types are imported lazily: reading needs no ROS at all
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header


class ImageConversionError(ValueError):
    """An image message or array that cannot be converted; the message says what to do."""


class Encoding(NamedTuple):
    """Layout of one raw image encoding."""

    dtype: np.dtype  # element type (native byte order)
    channels: int  # 1 for mono/depth images


ENCODINGS: dict[str, Encoding] = {
    "rgb8": Encoding(np.dtype(np.uint8), 3),
    "bgr8": Encoding(np.dtype(np.uint8), 3),
    "rgba8": Encoding(np.dtype(np.uint8), 4),
    "bgra8": Encoding(np.dtype(np.uint8), 4),
    "mono8": Encoding(np.dtype(np.uint8), 1),
    "mono16": Encoding(np.dtype(np.uint16), 1),
    "16UC1": Encoding(np.dtype(np.uint16), 1),
    "32FC1": Encoding(np.dtype(np.float32), 1),
}

class PackedImage(NamedTuple):
    """The fields of a sensor_msgs/Image, ``data`` as bytes (``len == step * height``)."""

    height: int
    width: int
    encoding: str
    is_bigendian: bool
    step: int
    data: bytes


def lookup_encoding(name: str) -> Encoding:
    """The layout of a raw encoding; raises ImageConversionError naming the supported ones."""
    try:
        return ENCODINGS[name]
    except KeyError:
        raise ImageConversionError(
            f"unsupported image encoding {name!r}: supported are {', '.join(ENCODINGS)}; "
            "convert the stream upstream (e.g. debayer with image_proc) or publish one of these"
        ) from None


def data_bytes(data: Any) -> np.ndarray:
    """A flat uint8 view of a message's ``data`` field, whatever container holds it."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError):  # a list of ints, e.g. a hand-built message
        try:
            return np.asarray(data, dtype=np.uint8).reshape(-1)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ImageConversionError(
                f"image data of type {type(data).__name__} is not a byte sequence ({exc}); "
                "set msg.data to bytes, array.array('B') or a uint8 numpy array"
            ) from exc


def decode_pixels(msg: Any) -> tuple[np.ndarray, bool]:
    """(pixels, owned): the decoded image, possibly a read-only view of ``msg.data``
    (``owned`` False) when rows are unpadded and already in native byte order."""
    enc = lookup_encoding(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(
            f"empty {msg.encoding} image ({width}x{height} pixels): the publisher sent no "
            "pixels; check the camera driver"
        )
    row_bytes = width * enc.channels * enc.dtype.itemsize
    if step < row_bytes:
        raise ImageConversionError(
            f"{msg.encoding} image step {step} is smaller than one row of {width} pixels "
            f"({row_bytes} bytes): the publisher must set step >= width * {enc.channels} * "
            f"{enc.dtype.itemsize}"
        )
    data = data_bytes(msg.data)
    if data.size < step * height:
        raise ImageConversionError(
            f"{msg.encoding} image data has {data.size} bytes, expected step * height = "
            f"{step} * {height} = {step * height}: the message is truncated; check the "
            "publisher's step and height"
        )
    rows = data[: step * height].reshape(height, step)
    owned = step != row_bytes
    if owned:  # drop the padding: one copy
        rows = rows[:, :row_bytes].copy()  # C order (ascontiguousarray may not copy)
    pixels = rows.view(enc.dtype.newbyteorder(">" if msg.is_bigendian else "<"))
    if not pixels.dtype.isnative:
        pixels = pixels.byteswap(inplace=owned).view(enc.dtype)  # a copy unless owned
        owned = True
    shape = (height, width) if enc.channels == 1 else (height, width, enc.channels)
    return pixels.reshape(shape), owned


def image_to_numpy(msg: Any) -> np.ndarray:
    """Decode a raw image message into a new numpy array.

    Args:
        msg: a sensor_msgs/Image or any object with ``height, width, encoding, is_bigendian,
            step, data``.

    Returns:
        A C-contiguous array in native byte order that owns its memory (never a view of
        ``msg.data``): (H, W, C) for colour encodings, (H, W) for mono/depth; dtype and
        channel order as in the module table.

    Raises:
        ImageConversionError: unknown encoding, zero size, ``step`` smaller than a row,
            ``data`` shorter than ``step * height``.
    """
    pixels, owned = decode_pixels(msg)
    return pixels if owned else pixels.copy()


def check_array(arr: np.ndarray, encoding: str) -> tuple[np.ndarray, Encoding]:
    """The array cast to the encoding's dtype, shape checked; raises ImageConversionError."""
    enc = lookup_encoding(encoding)
    arr = np.asarray(arr)
    if arr.ndim == 3 and enc.channels == 1 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    expected = "(H, W)" if enc.channels == 1 else f"(H, W, {enc.channels})"
    if arr.ndim != (2 if enc.channels == 1 else 3) or (
        enc.channels > 1 and arr.shape[2] != enc.channels
    ):
        raise ImageConversionError(
            f"array of shape {arr.shape} does not fit encoding {encoding!r}, which needs "
            f"{expected}: pick the encoding that matches the array"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageConversionError(f"array of shape {arr.shape} has no pixels: nothing to send")
    lossless = np.can_cast(arr.dtype, enc.dtype, casting="safe")
    if not (lossless or (enc.dtype.kind == "f" and arr.dtype.kind == "f")):
        raise ImageConversionError(
            f"array of dtype {arr.dtype} does not fit encoding {encoding!r} ({enc.dtype}) "
            f"without loss: convert it first (e.g. arr.astype(np.{enc.dtype.name}))"
        )
    return arr.astype(enc.dtype, copy=False), enc


def _image_rows(
    arr: np.ndarray, encoding: str, step: int | None, is_bigendian: bool
) -> tuple[np.ndarray, int]:
    """(uint8 array (H, step) holding ``data``, step); see :func:`pack_image`."""
    arr, enc = check_array(arr, encoding)
    height, width = arr.shape[:2]
    row_bytes = width * enc.channels * enc.dtype.itemsize
    step = row_bytes if step is None else int(step)
    if step < row_bytes:
        raise ImageConversionError(
            f"step {step} is smaller than one row of {width} {encoding} pixels "
            f"({row_bytes} bytes): pass step=None or step >= {row_bytes}"
        )
    ordered = np.ascontiguousarray(arr, dtype=enc.dtype.newbyteorder(">" if is_bigendian else "<"))
    flat = ordered.view(np.uint8).reshape(height, row_bytes)
    if step == row_bytes:
        return flat, step
    rows = np.zeros((height, step), dtype=np.uint8)
    rows[:, :row_bytes] = flat
    return rows, step


def pack_image(
    arr: np.ndarray, encoding: str, *, step: int | None = None, is_bigendian: bool = False
) -> PackedImage:
    """Lay a numpy image out as the fields of a sensor_msgs/Image.

    Args:
        arr: (H, W, C) or (H, W) array, as in the module table for ``encoding``; a dtype that
            casts to the encoding's without loss (uint8 into 16-bit, float64 into 32FC1).
        encoding: one of :data:`ENCODINGS`.
        step: bytes per row; ``None`` = no padding. Padding bytes are zero.
        is_bigendian: byte order of multi-byte elements in ``data``.

    Raises:
        ImageConversionError: unknown encoding, shape or dtype not matching it, no pixels,
            ``step`` smaller than a row.
    """
    rows, step = _image_rows(arr, encoding, step, is_bigendian)
    height, width = np.shape(arr)[:2]
    return PackedImage(height, width, encoding, bool(is_bigendian), step, rows.tobytes())


def numpy_to_image(
    arr: np.ndarray,
    encoding: str,
    *,
    header: Header | None = None,
    step: int | None = None,
    is_bigendian: bool = False,
) -> Image:
    """Build an rclpy sensor_msgs/Image from a numpy image (see :func:`pack_image`).

    ``header`` is used as is (not copied); ``None`` leaves the default header.
    """
    from sensor_msgs.msg import Image

    rows, step = _image_rows(arr, encoding, step, is_bigendian)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = np.shape(arr)[:2]
    msg.encoding, msg.is_bigendian, msg.step = encoding, bool(is_bigendian), step
    msg.data = byte_array(rows)
    return msg


def byte_array(buffer: np.ndarray | bytes) -> array.array:
    """``array.array('B')`` holding a copy of the bytes: the message setters keep it as is
    (no per-byte check even with ROS_PYTHON_CHECK_FIELDS=1), one copy only."""
    out = array.array("B")
    out.frombytes(memoryview(buffer).cast("B") if isinstance(buffer, np.ndarray) else buffer)
    return out
