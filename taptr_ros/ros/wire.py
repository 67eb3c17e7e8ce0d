"""Camera images read from their serialized (CDR) bytes, without rclpy's message conversion.

rclpy hands a subscription callback a Python message; turning a 640x480 rgb8 frame's uint8[]
data into its ``array.array`` costs about 2 ms on this project's 2-core CPU, on the node's
executor thread, before the callback starts. The node subscribes to images with ``raw=True``
instead and reads the bytes here with the CDR deserializer of ``rosbags``, through the
typestore the bag tools use (`taptr_ros.messages.typestore.bag_typestore`; Image and
CompressedImage are the same in every distro): about 0.3 ms, ``data`` a numpy array over the
received bytes. The result goes through the same `taptr_ros.messages` functions as an rclpy
message (they only read the fields), so every encoding and every error is handled the same
way. The 2 ms and 0.3 ms are one-off timings of ``rclpy.serialization.deserialize_message``
and ``deserialize_cdr`` on one frame; the node's overhead before and after is measured with
``taptr bench node`` (README, Performance).
"""

from __future__ import annotations

from typing import Any

from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from taptr_ros.messages.raw_image import ImageConversionError
from taptr_ros.messages.typestore import COMPRESSED_TYPE, IMAGE_TYPE, bag_typestore


def decode_image_message(raw: bytes, *, compressed: bool = False) -> tuple[Header, Any]:
    """Deserialize a received sensor_msgs/Image (or CompressedImage) from its CDR bytes.

    Args:
        raw: the serialized message, as a ``raw=True`` subscription delivers it (CDR, with its
            4-byte encapsulation header; either byte order).
        compressed: the bytes are a CompressedImage.

    Returns:
        header: an rclpy std_msgs/Header (stamp and frame_id), ready to go on outputs.
        message: the message with the fields of its type (``height``, ``width``, ``encoding``,
            ``is_bigendian``, ``step``, ``data`` as a uint8 numpy array, or ``format`` and
            ``data``), for `rgb8.image_to_rgb8` / `rgb8.compressed_to_rgb8`.

    Raises:
        ImageConversionError: the bytes are not such a message (truncated, garbage).
    """
    typename = COMPRESSED_TYPE if compressed else IMAGE_TYPE
    try:
        msg = bag_typestore().deserialize_cdr(raw, typename)
    except Exception as exc:  # noqa: BLE001 - rosbags raises several types on bad bytes
        raise ImageConversionError(
            f"malformed {typename} message ({len(raw)} bytes) could not be deserialized: "
            f"{type(exc).__name__}: {exc}") from exc
    stamp = msg.header.stamp
    header = Header(stamp=Time(sec=int(stamp.sec), nanosec=int(stamp.nanosec)),
                    frame_id=str(msg.header.frame_id))
    return header, msg
