"""taptr_ros.ros.wire: images read from their serialized bytes give what rclpy's messages give.

The bytes are produced by rclpy's own serializer (what a ``raw=True`` subscription receives),
so the rosbags reading is checked against rclpy's reading of the same message.
"""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from std_msgs.msg import Header

from taptr_ros.messages.compressed_image import numpy_to_compressed
from taptr_ros.messages.raw_image import ImageConversionError, numpy_to_image
from taptr_ros.messages.rgb8 import compressed_to_rgb8, image_to_rgb8
from taptr_ros.ros.services import ns_to_time
from taptr_ros.ros.wire import decode_image_message

STAMP_NS = 1_700_000_123_456_789_012


def _header() -> Header:
    return Header(stamp=ns_to_time(STAMP_NS), frame_id="camera_optical")


@pytest.mark.parametrize("encoding, shape, step, bigendian", [
    ("rgb8", (7, 5, 3), None, False),
    ("bgr8", (6, 9, 3), 31, False),  # padded rows
    ("mono16", (4, 6), None, True),  # big-endian pixels
    ("bgra8", (3, 4, 4), None, False),
])
def test_raw_image_converts_like_the_rclpy_message(encoding, shape, step, bigendian):
    rng = np.random.default_rng(3)
    dtype = np.uint16 if encoding == "mono16" else np.uint8
    pixels = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    msg = numpy_to_image(pixels, encoding, header=_header(), step=step, is_bigendian=bigendian)

    header, wire_msg = decode_image_message(serialize_message(msg))

    assert header == msg.header
    assert isinstance(header, Header)
    np.testing.assert_array_equal(image_to_rgb8(wire_msg), image_to_rgb8(msg))


def test_raw_compressed_image_converts_like_the_rclpy_message():
    rgb = np.random.default_rng(4).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    msg = numpy_to_compressed(rgb, "rgb8", fmt="png", header=_header())

    header, wire_msg = decode_image_message(serialize_message(msg), compressed=True)

    assert header == msg.header
    np.testing.assert_array_equal(compressed_to_rgb8(wire_msg), rgb)


def test_converted_frame_does_not_alias_the_received_bytes():
    rgb = np.full((2, 3, 3), 7, np.uint8)
    raw = bytearray(serialize_message(numpy_to_image(rgb, "rgb8", header=_header())))
    _, wire_msg = decode_image_message(bytes(raw))
    out = image_to_rgb8(wire_msg)
    out[...] = 0  # the frame handed to the tracker is its own, writable copy
    np.testing.assert_array_equal(image_to_rgb8(wire_msg), rgb)


@pytest.mark.parametrize("cut", [0, 3, 10, 40, -5])
def test_truncated_bytes_are_a_conversion_error(cut):
    raw = serialize_message(numpy_to_image(np.zeros((4, 4, 3), np.uint8), "rgb8", header=_header()))
    with pytest.raises(ImageConversionError, match="malformed sensor_msgs/msg/Image"):
        decode_image_message(raw[:cut])


def test_garbage_is_a_conversion_error():
    with pytest.raises(ImageConversionError, match="could not be deserialized"):
        decode_image_message(b"\x00\x01\x00\x00" + b"\xff" * 64, compressed=True)
