"""sensor_msgs/CompressedImage <-> numpy with OpenCV, without cv_bridge.

Compressed images in jpeg or png, with the ``format`` strings of compressed_image_transport
(``"rgb8; jpeg compressed bgr8"``, plain ``"png"``, ...) and 16UC1 from
compressed_depth_image_transport (``"16UC1; compressedDepth png"``). Readers take any object
with ``format`` and ``data`` (see `raw_image` for ``data``); :func:`numpy_to_compressed` builds
an rclpy message, :func:`encode_compressed` the plain fields (rosbags). Arrays and encodings
are those of `raw_image`'s table. Every malformed input raises `raw_image.ImageConversionError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import cv2
import numpy as np

from taptr_ros.messages.raw_image import (
    ImageConversionError,
    byte_array,
    check_array,
    data_bytes,
)

if TYPE_CHECKING:
    from sensor_msgs.msg import CompressedImage
    from std_msgs.msg import Header

COMPRESSED_FORMATS = ("jpeg", "png")


class PackedCompressedImage(NamedTuple):
    """The fields of a sensor_msgs/CompressedImage, ``data`` as bytes."""

    format: str
    data: bytes


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
        (array, encoding): the image as `raw_image.image_to_numpy` would return it for
        ``encoding``. If ``format`` names the original encoding (``"rgb8; jpeg compressed
        bgr8"``) and the decoded image has its layout, it is converted back to it (rgb8,
        rgba8, 16UC1); otherwise the decoded encoding: bgr8, bgra8, mono8 or mono16.

    Raises:
        ImageConversionError: empty data, bytes that OpenCV cannot decode, 32FC1 depth.
    """
    original, codec = _parse_format(str(msg.format))
    data = data_bytes(msg.data)
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


def encode_compressed(
    arr: np.ndarray, encoding: str, *, fmt: str = "jpeg", jpeg_quality: int = 90
) -> PackedCompressedImage:
    """Compress a numpy image with OpenCV, ``format`` as compressed_image_transport writes it.

    Args:
        arr: an image as in `raw_image`'s table for ``encoding``.
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
    arr, enc = check_array(arr, encoding)
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
    msg.data = byte_array(packed.data)
    return msg
