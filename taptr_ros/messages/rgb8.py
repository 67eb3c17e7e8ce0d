"""The tracker's input, RGB uint8 (H, W, 3), from any camera image message or decoded array.

:func:`image_to_rgb8` (raw `raw_image` messages), :func:`compressed_to_rgb8`
(`compressed_image`), :func:`message_to_rgb8` (either, told apart by their fields); see
:func:`array_to_rgb8` for how mono, 16-bit and float images are scaled. Every malformed input
raises `raw_image.ImageConversionError`.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from taptr_ros.messages.compressed_image import compressed_to_numpy
from taptr_ros.messages.raw_image import (
    ImageConversionError,
    check_array,
    decode_pixels,
)


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
        arr: an array as returned by `raw_image.image_to_numpy` for ``encoding``.
        encoding: one of `raw_image.ENCODINGS`.
        value_range: (low, high) in the image's units, mapped linearly onto 0..255 and
            clipped; ignored for 8-bit encodings.

    Returns:
        A new array, except for an rgb8 input that is already C-contiguous uint8: that
        array itself.

    Raises:
        ImageConversionError: unknown encoding, shape or dtype not matching it.
    """
    arr, enc = check_array(arr, encoding)
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

    See `raw_image.image_to_numpy` for ``msg`` and :func:`array_to_rgb8` for the scaling.

    Raises:
        ImageConversionError: as `raw_image.image_to_numpy`.
    """
    pixels, owned = decode_pixels(msg)
    if msg.encoding == "rgb8" and not owned:
        pixels = pixels.copy()  # never a view of msg.data
    return array_to_rgb8(pixels, msg.encoding, value_range=value_range)


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
