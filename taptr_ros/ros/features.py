"""The optional ``~/features`` output: visible points as a VINS-style sensor_msgs/PointCloud.

VINS-Mono/VINS-Fusion's feature tracker publishes, per image, a PointCloud whose points are
normalised camera coordinates (x/z, y/z, 1) and whose channels are, in this order:
``id_of_point``, ``u_of_point``, ``v_of_point`` (pixels), ``velocity_x_of_point``,
``velocity_y_of_point`` (of the normalised coordinates, per second). VINS reads the channels
by index, so the order matters. Without intrinsics (fx = 0) points and velocities stay in
pixels. Velocities come from the previous published frame (0 for a point new in this one);
only visible points are published.
"""

from __future__ import annotations

import array

import numpy as np
from geometry_msgs.msg import Point32
from sensor_msgs.msg import ChannelFloat32, PointCloud

CHANNELS = ("id_of_point", "u_of_point", "v_of_point", "velocity_x_of_point",
            "velocity_y_of_point")


def _floats(values: np.ndarray) -> array.array:
    out = array.array("f")
    out.frombytes(np.ascontiguousarray(values, np.float32).tobytes())
    return out


class FeatureCloud:
    """Builds the PointCloud of each frame, remembering the last one for velocities.

    Args:
        intrinsics: (fx, fy, cx, cy); fx = 0 keeps pixels.
    """

    def __init__(self, intrinsics: tuple[float, float, float, float]) -> None:
        self._k = tuple(float(v) for v in intrinsics)
        self._prev_ids = np.zeros(0, np.int64)
        self._prev_xy = np.zeros((0, 2))
        self._prev_t: float | None = None

    def _normalise(self, xy: np.ndarray) -> np.ndarray:
        fx, fy, cx, cy = self._k
        if fx == 0.0:
            return xy.astype(np.float64)
        return (xy - [cx, cy]) / [fx, fy]

    def build(self, header, stamp_s: float, ids: np.ndarray, xy: np.ndarray,
              visible: np.ndarray) -> PointCloud:
        """The message for one frame.

        Args:
            header: the image's header (copied into the message).
            stamp_s: the frame's time in seconds (for velocities).
            ids: (N,) point ids; xy: (N, 2) pixels (x, y); visible: (N,) bool.
        """
        keep = np.asarray(visible, bool)
        ids = np.asarray(ids, np.int64)[keep]
        uv = np.asarray(xy, np.float64).reshape(-1, 2)[keep]
        norm = self._normalise(uv)
        velocity = np.zeros_like(norm)
        dt = None if self._prev_t is None else stamp_s - self._prev_t
        if dt is not None and dt > 0 and len(self._prev_ids):
            order = np.argsort(self._prev_ids)
            pos = np.searchsorted(self._prev_ids[order], ids).clip(0, len(order) - 1)
            match = self._prev_ids[order][pos] == ids
            velocity[match] = (norm[match] - self._prev_xy[order][pos[match]]) / dt
        self._prev_ids, self._prev_xy, self._prev_t = ids, norm, stamp_s

        cloud = PointCloud(header=header)
        cloud.points = [Point32(x=x, y=y, z=1.0) for x, y in norm.tolist()]
        columns = (ids, uv[:, 0], uv[:, 1], velocity[:, 0], velocity[:, 1])
        cloud.channels = [ChannelFloat32(name=name, values=_floats(column))
                          for name, column in zip(CHANNELS, columns)]
        return cloud
