"""sensor_msgs/Image and sensor_msgs/CompressedImage <-> numpy, without cv_bridge.

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

Compressed images (``sensor_msgs/CompressedImage``) in jpeg or png, with the ``format``
strings of compressed_image_transport (``"rgb8; jpeg compressed bgr8"``, plain ``"png"``,
...) and 16UC1 from compressed_depth_image_transport (``"16UC1; compressedDepth png"``).

Readers take message-like objects (rclpy messages, rosbags messages, anything with the
fields): raw ``height, width, encoding, is_bigendian, step, data``; compressed ``format,
data``. ``data`` may be bytes, bytearray, array.array, memoryview or a numpy uint8 array.
Writers build rclpy messages (``msg.data`` is an ``array.array('B')`` made from the bytes,
never a numpy array); :func:`pack_image` and :func:`encode_compressed` give the plain fields
for other message classes (rosbags).

The tracker wants RGB uint8 (H, W, 3): :func:`image_to_rgb8` and :func:`compressed_to_rgb8`
give it from any encoding (see :func:`array_to_rgb8` for how mono, 16-bit and float images
are scaled). Every malformed input raises :class:`ImageConversionError`.
"""

from __future__ import annotations

import array
from typing import TYPE_CHECKING, Any, NamedTuple

import cv2
import numpy as np

if TYPE_CHECKING:  # message types are imported lazily: reading needs no ROS at all
    from sensor_msgs.msg import CompressedImage, Image
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

COMPRESSED_FORMATS = ("jpeg", "png")


class PackedImage(NamedTuple):
    """The fields of a sensor_msgs/Image, ``data`` as bytes (``len == step * height``)."""

    height: int
    width: int
    encoding: str
    is_bigendian: bool
    step: int
    data: bytes


class PackedCompressedImage(NamedTuple):
    """The fields of a sensor_msgs/CompressedImage, ``data`` as bytes."""

    format: str
    data: bytes


def _encoding(name: str) -> Encoding:
    try:
        return ENCODINGS[name]
    except KeyError:
        raise ImageConversionError(
            f"unsupported image encoding {name!r}: supported are {', '.join(ENCODINGS)}; "
            "convert the stream upstream (e.g. debayer with image_proc) or publish one of these"
        ) from None


def _data_bytes(data: Any) -> np.ndarray:
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


def _pixels(msg: Any) -> tuple[np.ndarray, bool]:
    """(pixels, owned): the decoded image, possibly a read-only view of ``msg.data``
    (``owned`` False) when rows are unpadded and already in native byte order."""
    enc = _encoding(msg.encoding)
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
    data = _data_bytes(msg.data)
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
    pixels, owned = _pixels(msg)
    return pixels if owned else pixels.copy()


def _check_array(arr: np.ndarray, encoding: str) -> tuple[np.ndarray, Encoding]:
    """The array cast to the encoding's dtype, shape checked; raises ImageConversionError."""
    enc = _encoding(encoding)
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
    arr, enc = _check_array(arr, encoding)
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
    msg.data = _byte_array(rows)
    return msg


def _byte_array(buffer: np.ndarray | bytes) -> array.array:
    """``array.array('B')`` holding a copy of the bytes: the message setters keep it as is
    (no per-byte check even with ROS_PYTHON_CHECK_FIELDS=1), one copy only."""
    out = array.array("B")
    out.frombytes(memoryview(buffer).cast("B") if isinstance(buffer, np.ndarray) else buffer)
    return out


def _to_uint8(values: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Map ``value_range`` linearly onto 0..255, clipped, rounded; NaN -> 0."""
    low, high = float(value_range[0]), float(value_range[1])
    if not high > low:
        raise ImageConversionError(
            f"value_range {value_range} is empty: pass (low, high) with high > low"
        )
    scaled = (values.astype(np.float32) - low) * np.float32(255.0 / (high - low))
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


_CV_TO_RGB = {"bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB,
              "bgra8": cv2.COLOR_BGRA2RGB, "mono8": cv2.COLOR_GRAY2RGB}
# round(v / 257) for every 16-bit value: 0..65535 onto 0..255
_UINT16_TO_UINT8 = ((np.arange(65536, dtype=np.uint32) + 128) // 257).astype(np.uint8)


def array_to_rgb8(
    arr: np.ndarray, encoding: str, *, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Convert a decoded image to the tracker's input: RGB uint8, (H, W, 3), C-contiguous.

    Colour: channels reordered, alpha dropped (not blended). Mono and depth: the gray
    value replicated into R, G and B. Scaling of non-8-bit images, the same for every frame
    (never per-frame min/max, which would make the same surface change brightness between
    frames and mislead the tracker):

    * mono16, 16UC1: the full 16-bit range 0..65535 onto 0..255 (round(v / 257)), unless
      ``value_range`` is given.
    * 32FC1: 0.0..1.0 onto 0..255 (the usual range of float intensity images), clipped;
      NaN -> 0. For depth in metres pass ``value_range=(near, far)``.

    Args:
        arr: an array as returned by :func:`image_to_numpy` for ``encoding``.
        encoding: one of :data:`ENCODINGS`.
        value_range: (low, high) in the image's units, mapped linearly onto 0..255 and
            clipped; ignored for 8-bit encodings.

    Returns:
        A new array, except for an rgb8 input that is already C-contiguous uint8: that
        array itself.

    Raises:
        ImageConversionError: unknown encoding, shape or dtype not matching it.
    """
    arr, enc = _check_array(arr, encoding)
    if encoding == "rgb8":
        return np.ascontiguousarray(arr)
    if encoding in _CV_TO_RGB:
        return cv2.cvtColor(np.ascontiguousarray(arr), _CV_TO_RGB[encoding])
    if value_range is not None:
        gray = _to_uint8(arr, value_range)
    elif enc.dtype == np.uint16:
        gray = _UINT16_TO_UINT8[arr]
    else:  # 32FC1
        gray = _to_uint8(arr, (0.0, 1.0))
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)


def image_to_rgb8(msg: Any, *, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3) from a raw image message of any supported encoding.

    See :func:`image_to_numpy` for ``msg`` and :func:`array_to_rgb8` for the scaling.

    Raises:
        ImageConversionError: as :func:`image_to_numpy`.
    """
    pixels, owned = _pixels(msg)
    if msg.encoding == "rgb8" and not owned:
        pixels = pixels.copy()  # never a view of msg.data
    return array_to_rgb8(pixels, msg.encoding, value_range=value_range)


# --- compressed ---------------------------------------------------------------------------

_DECODED_ENCODING = {(np.dtype(np.uint8), 1): "mono8", (np.dtype(np.uint16), 1): "mono16",
                     (np.dtype(np.uint8), 3): "bgr8", (np.dtype(np.uint8), 4): "bgra8"}
_COMPRESSED_DEPTH_HEADER_BYTES = 12  # compressed_depth_image_transport's ConfigHeader


def _parse_format(fmt: str) -> tuple[str | None, str]:
    """(original encoding or None, codec) from a CompressedImage ``format`` string:
    ``"jpeg"`` -> (None, "jpeg"); ``"rgb8; jpeg compressed bgr8"`` -> ("rgb8", "jpeg");
    ``"16UC1; compressedDepth png"`` -> ("16UC1", "compressedDepth")."""
    head, sep, tail = fmt.partition(";")
    original, rest = (head.strip() or None, tail) if sep else (None, head)
    words = rest.split()
    return original, (words[0] if words else "")


def compressed_to_numpy(msg: Any) -> tuple[np.ndarray, str]:
    """Decode a compressed image message (jpeg or png) with OpenCV.

    Args:
        msg: a sensor_msgs/CompressedImage or any object with ``format`` and ``data``.

    Returns:
        (array, encoding): the image as :func:`image_to_numpy` would return it for
        ``encoding``. If ``format`` names the original encoding (``"rgb8; jpeg compressed
        bgr8"``) and the decoded image has its layout, it is converted back to it (rgb8,
        rgba8, 16UC1); otherwise the decoded encoding: bgr8, bgra8, mono8 or mono16.

    Raises:
        ImageConversionError: empty data, bytes that OpenCV cannot decode, 32FC1 depth.
    """
    original, codec = _parse_format(str(msg.format))
    data = _data_bytes(msg.data)
    if codec == "compressedDepth":
        if original not in (None, "16UC1", "mono16"):
            raise ImageConversionError(
                f"compressedDepth images of encoding {original!r} are not supported (only "
                "16UC1): republish the depth stream raw or as 16UC1"
            )
        data = data[_COMPRESSED_DEPTH_HEADER_BYTES:]
    if data.size == 0:
        raise ImageConversionError(
            f"compressed image (format {msg.format!r}) has no data: the publisher sent an "
            "empty message"
        )
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.size == 0:
        raise ImageConversionError(
            f"OpenCV cannot decode the {data.size} bytes of a compressed image (format "
            f"{msg.format!r}): they are not a valid jpeg or png; check the publisher's "
            "transport (compressed, not theora or zstd)"
        )
    channels = 1 if decoded.ndim == 2 else decoded.shape[2]
    encoding = _DECODED_ENCODING.get((decoded.dtype, channels))
    if encoding is None:
        raise ImageConversionError(
            f"decoded image of dtype {decoded.dtype} with {channels} channels has no "
            "supported encoding: publish 8-bit colour/gray or 16-bit gray images"
        )
    if channels == 1 and decoded.ndim == 3:
        decoded = decoded[:, :, 0]
    if (original, encoding) in (("rgb8", "bgr8"), ("rgba8", "bgra8")):
        code = cv2.COLOR_BGR2RGB if channels == 3 else cv2.COLOR_BGRA2RGBA
        return cv2.cvtColor(decoded, code), original
    if original == "16UC1" and encoding == "mono16":
        return decoded, "16UC1"
    return decoded, encoding


def compressed_to_rgb8(
    msg: Any, *, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """RGB uint8 (H, W, 3) from a compressed image message (see :func:`array_to_rgb8`)."""
    arr, encoding = compressed_to_numpy(msg)
    return array_to_rgb8(arr, encoding, value_range=value_range)


def message_to_rgb8(msg: Any, *, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3) from a raw or a compressed image message (told apart by fields)."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return compressed_to_rgb8(msg, value_range=value_range)
    return image_to_rgb8(msg, value_range=value_range)


def encode_compressed(
    arr: np.ndarray, encoding: str, *, fmt: str = "jpeg", jpeg_quality: int = 90
) -> PackedCompressedImage:
    """Compress a numpy image with OpenCV, ``format`` as compressed_image_transport writes it.

    Args:
        arr: an image as in the module table for ``encoding``.
        encoding: rgb8, bgr8, rgba8, bgra8, mono8 (jpeg and png); mono16, 16UC1 (png only).
            jpeg drops alpha.
        fmt: "jpeg" or "png" (lossless).
        jpeg_quality: 0..100.

    Returns:
        ``format`` like ``"rgb8; jpeg compressed bgr8"`` and the compressed bytes.

    Raises:
        ImageConversionError: unknown encoding or format, 16-bit jpeg, 32FC1, shape/dtype
            not matching the encoding, or OpenCV failing to encode.
    """
    codec = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}.get(fmt.lower())
    if codec is None:
        raise ImageConversionError(f"unsupported compression {fmt!r}: use 'jpeg' or 'png'")
    arr, enc = _check_array(arr, encoding)
    if encoding == "32FC1" or (codec == "jpeg" and enc.dtype != np.uint8):
        raise ImageConversionError(
            f"{encoding} images cannot be compressed as {codec}: use png for 16-bit images "
            "and send 32FC1 images raw"
        )
    if encoding in ("rgb8", "bgr8") or (codec == "jpeg" and encoding in ("rgba8", "bgra8")):
        bgr = arr[:, :, 2::-1] if encoding.startswith("rgb") else arr[:, :, :3]
        image, target = bgr, "bgr8"
    elif encoding in ("rgba8", "bgra8"):
        image = arr[:, :, [2, 1, 0, 3]] if encoding == "rgba8" else arr
        target = "bgra8"
    else:
        image, target = arr, ("mono8" if enc.dtype == np.uint8 else "mono16")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if codec == "jpeg" else []
    ok, buf = cv2.imencode("." + ("jpg" if codec == "jpeg" else "png"),
                           np.ascontiguousarray(image), params)
    if not ok:
        raise ImageConversionError(f"OpenCV failed to encode a {encoding} image as {codec}")
    return PackedCompressedImage(f"{encoding}; {codec} compressed {target}", buf.tobytes())


def numpy_to_compressed(
    arr: np.ndarray,
    encoding: str,
    *,
    fmt: str = "jpeg",
    jpeg_quality: int = 90,
    header: Header | None = None,
) -> CompressedImage:
    """Build an rclpy sensor_msgs/CompressedImage (see :func:`encode_compressed`)."""
    from sensor_msgs.msg import CompressedImage

    packed = encode_compressed(arr, encoding, fmt=fmt, jpeg_quality=jpeg_quality)
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = packed.format
    msg.data = _byte_array(packed.data)
    return msg
