"""Our rosbags typestore and message builders: ROS 2 types plus taptr_ros's, without rclpy.

:func:`bag_typestore` holds ROS 2 Kilted's standard types plus every taptr_ros message,
registered from ``msg/*.msg`` with rosbags' ``get_types_from_msg`` (an embedded copy serves
installs without msg/), so bags written with it carry our definitions and ``ros2 bag`` and
Foxglove read them; the RIHS01 hashes equal rosidl's (a test). The builders return rosbags
message objects. Stamps are integer nanoseconds (``sec * 10**9 + nanosec``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
TRACKS_TYPE = "taptr_ros/msg/TrackedPoints"

_MSG_DIRS = (Path(__file__).resolve().parents[2] / "msg",)
# Copy of msg/TrackedPoints.msg for installs that do not ship msg/ (a test keeps them equal).
_TRACKED_POINTS_MSG = """\
std_msgs/Header header
uint32 width
uint32 height
uint32[] ids
float32[] x
float32[] y
bool[] visible
float32[] visibility
"""


def _msg_files() -> dict[str, str]:
    """{'taptr_ros/msg/Name': definition} from the repository's or the install's msg/."""
    dirs = list(_MSG_DIRS)
    try:  # a colcon/ament install keeps them in share/taptr_ros/msg
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory("taptr_ros")) / "msg")
    except Exception:  # noqa: BLE001 - no ament index: the embedded copy serves
        pass
    for folder in dirs:
        files = sorted(folder.glob("*.msg")) if folder.is_dir() else []
        if files:
            return {f"taptr_ros/msg/{path.stem}": path.read_text() for path in files}
    return {TRACKS_TYPE: _TRACKED_POINTS_MSG}


@lru_cache(maxsize=1)
def bag_typestore() -> Any:
    """A rosbags Typestore: ROS 2 Kilted's standard types plus every taptr_ros message."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types: dict[str, Any] = {}
    for name, text in _msg_files().items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


# --- messages -------------------------------------------------------------------------------


def split_stamp(stamp_ns: int) -> tuple[int, int]:
    """(sec, nanosec) of a stamp in nanoseconds."""
    return int(stamp_ns) // 1_000_000_000, int(stamp_ns) % 1_000_000_000


def stamp_to_ns(stamp: Any) -> int:
    """Nanoseconds of a builtin_interfaces/Time-like object."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def make_header(stamp_ns: int, frame_id: str) -> Any:
    """A rosbags std_msgs/Header with the stamp ``stamp_ns`` (integer nanoseconds) and frame id."""
    store = bag_typestore()
    sec, nanosec = split_stamp(stamp_ns)
    return store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id
    )


def image_message(
    rgb: np.ndarray,
    stamp_ns: int,
    *,
    frame_id: str = "camera",
    encoding: str = "rgb8",
    row_padding: int = 0,
    compression: str | None = None,
    jpeg_quality: int = 95,
) -> Any:
    """A rosbags sensor_msgs/Image (or CompressedImage) of an RGB frame.

    Args:
        rgb: (H, W, 3) uint8 RGB.
        stamp_ns: header stamp.
        frame_id: header frame.
        encoding: ``rgb8`` or ``bgr8`` (raw images; compressed images keep rgb8 as the original).
        row_padding: extra zero bytes per row (``step = W * 3 + row_padding``), raw only.
        compression: ``None`` (raw), ``"jpeg"`` or ``"png"``.
        jpeg_quality: 0..100.
    """
    from taptr_ros.messages.compressed_image import encode_compressed
    from taptr_ros.messages.raw_image import pack_image

    store = bag_typestore()
    header = make_header(stamp_ns, frame_id)
    if compression is not None:
        packed = encode_compressed(rgb, "rgb8", fmt=compression, jpeg_quality=jpeg_quality)
        return store.types[COMPRESSED_TYPE](
            header=header, format=packed.format, data=np.frombuffer(packed.data, np.uint8)
        )
    array = rgb if encoding == "rgb8" else np.ascontiguousarray(rgb[:, :, ::-1])
    packed = pack_image(array, encoding, step=rgb.shape[1] * 3 + int(row_padding))
    return store.types[IMAGE_TYPE](
        header=header,
        height=packed.height,
        width=packed.width,
        encoding=packed.encoding,
        is_bigendian=int(packed.is_bigendian),
        step=packed.step,
        data=np.frombuffer(packed.data, np.uint8),
    )


def tracks_message(
    *,
    ids: np.ndarray,
    xy: np.ndarray,
    visible: np.ndarray,
    visibility: np.ndarray,
    width: int,
    height: int,
    stamp_ns: int,
    frame_id: str,
) -> Any:
    """A rosbags taptr_ros/TrackedPoints: ids (N,), xy (N, 2) pixels (x, y), visible (N,), visibility (N,)."""
    xy = np.asarray(xy, np.float32).reshape(-1, 2)
    return bag_typestore().types[TRACKS_TYPE](
        header=make_header(stamp_ns, frame_id),
        width=int(width),
        height=int(height),
        ids=np.ascontiguousarray(ids, np.uint32),
        x=np.ascontiguousarray(xy[:, 0]),
        y=np.ascontiguousarray(xy[:, 1]),
        visible=np.ascontiguousarray(visible, bool),
        visibility=np.ascontiguousarray(visibility, np.float32),
    )
