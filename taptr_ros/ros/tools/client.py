"""A client of a running taptr_tracker: publishes frames, calls its services, records outputs.

Used by ``taptr demo`` and the node tests. It owns an rclpy Context of its own (so it can
live beside other contexts in one process) spun on a background thread; received messages
are appended to lists with their arrival time (``time.perf_counter()``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point, PointStamped
from rcl_interfaces.msg import SetParametersResult
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, PointCloud
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from taptr_ros.messages.compressed_image import numpy_to_compressed
from taptr_ros.messages.raw_image import numpy_to_image
from taptr_ros.msg import TrackedPoints
from taptr_ros.ros.services import ns_to_time, stamp_to_ns
from taptr_ros.srv import AddPoints, RemovePoints

RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


class ClientError(RuntimeError):
    """A service that did not answer in time, or a node that never appeared."""


@dataclass
class Received:
    """A message and when it arrived (``time.perf_counter()``)."""

    time: float
    msg: Any


class TrackerClient:
    """Talks to the node ``tracker`` (fully qualified, e.g. ``/taptr_tracker``).

    Args:
        tracker: the node's fully qualified name; its topics/services are ``<tracker>/...``.
        image_topic: where frames are published (the node's ``image`` remapped there).
        image_qos: QoS of the frame publisher (sensor data by default, like the node).
        overlay, features, diagnostics: subscribe to those outputs too.
        compression: None publishes sensor_msgs/Image; "jpeg" or "png" publishes
            sensor_msgs/CompressedImage (``image_topic`` is then e.g. ``.../image/compressed``).
    """

    def __init__(self, *, tracker: str = "/taptr_tracker", image_topic: str = "/image",
                 image_qos: QoSProfile = qos_profile_sensor_data, overlay: bool = False,
                 features: bool = False, diagnostics: bool = False,
                 compression: str | None = None, node_name: str = "taptr_client") -> None:
        self.context = Context()
        rclpy.init(args=[], context=self.context)  # returns None before Kilted
        self.node = Node(node_name, context=self.context)
        self._lock = threading.Lock()
        self.tracks: list[Received] = []
        self.overlays: list[Received] = []
        self.features: list[Received] = []
        self.diagnostics: list[Received] = []
        n = self.node
        self.compression = compression
        self.image_pub = n.create_publisher(CompressedImage if compression else Image,
                                            image_topic, image_qos)
        self.click_pub = n.create_publisher(PointStamped, f"{tracker}/click", RELIABLE)
        self.click_point_pub = n.create_publisher(Point, f"{tracker}/click_point", RELIABLE)
        n.create_subscription(TrackedPoints, f"{tracker}/tracks", self._keep(self.tracks),
                              RELIABLE)
        if overlay:
            n.create_subscription(Image, f"{tracker}/overlay", self._keep(self.overlays),
                                  QoSProfile(depth=100))
        if features:
            n.create_subscription(PointCloud, f"{tracker}/features", self._keep(self.features),
                                  RELIABLE)
        if diagnostics:
            n.create_subscription(DiagnosticArray, "/diagnostics", self._keep(self.diagnostics),
                                  RELIABLE)
        self.add_client = n.create_client(AddPoints, f"{tracker}/add_points")
        self.remove_client = n.create_client(RemovePoints, f"{tracker}/remove_points")
        self.reset_client = n.create_client(Trigger, f"{tracker}/reset")
        self.parameters_client = n.create_client(SetParameters, f"{tracker}/set_parameters")
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(n)
        self._spinner = threading.Thread(target=self._spin, name="client-spin", daemon=True)
        self._spinner.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - the context was shut down under us: done
            pass

    def _keep(self, into: list[Received]) -> Callable[[Any], None]:
        def keep(msg: Any) -> None:
            with self._lock:
                into.append(Received(time.perf_counter(), msg))
        return keep

    def snapshot(self, which: list[Received]) -> list[Received]:
        """A copy of a received list (safe against the spinning thread)."""
        with self._lock:
            return list(which)

    # ------------------------------------------------------------------ waiting
    def wait_until_ready(self, timeout: float = 60.0, is_alive: Callable[[], bool] | None = None
                         ) -> None:
        """Wait until the services exist and the node subscribes to the image topic.

        Raises:
            ClientError: not ready within ``timeout`` s, or ``is_alive()`` turned False.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if is_alive is not None and not is_alive():
                raise ClientError("the tracker process exited before it was ready")
            if (self.add_client.service_is_ready() and self.remove_client.service_is_ready()
                    and self.reset_client.service_is_ready()
                    and self.image_pub.get_subscription_count() > 0
                    and self.node.count_publishers(self._tracks_topic()) > 0):
                return
            time.sleep(0.1)
        raise ClientError(f"the tracker was not ready after {timeout:.0f} s")

    def _tracks_topic(self) -> str:
        return self.add_client.srv_name.rsplit("/", 1)[0] + "/tracks"

    @staticmethod
    def wait_for(predicate: Callable[[], bool], timeout: float = 10.0,
                 interval: float = 0.01) -> bool:
        """Poll ``predicate`` until true or ``timeout`` s; returns its last value."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return predicate()
            time.sleep(interval)
        return True

    def tracks_for(self, stamp_ns: int) -> TrackedPoints | None:
        """The tracks message whose header stamp is ``stamp_ns`` (latest such), or None."""
        for received in reversed(self.snapshot(self.tracks)):
            if stamp_to_ns(received.msg.header.stamp) == stamp_ns:
                return received.msg
        return None

    # ------------------------------------------------------------------ sending
    def publish_frame(self, rgb: np.ndarray, stamp_ns: int, *, frame_id: str = "camera",
                      encoding: str = "rgb8") -> float:
        """Publish an (H, W, 3) uint8 RGB frame as ``encoding`` (rgb8 or bgr8), compressed if
        the client was made so; returns the perf_counter time just before publishing."""
        header = Header(stamp=ns_to_time(stamp_ns), frame_id=frame_id)
        arr = np.ascontiguousarray(rgb[..., ::-1] if encoding == "bgr8" else rgb)
        if self.compression:
            msg = numpy_to_compressed(arr, encoding, fmt=self.compression, header=header)
        else:
            msg = numpy_to_image(arr, encoding, header=header)
        sent = time.perf_counter()
        self.image_pub.publish(msg)
        return sent

    def click(self, x: float, y: float, stamp_ns: int = 0) -> None:
        """Publish a PointStamped on ``~/click`` (stamp 0 = latest frame)."""
        msg = PointStamped(header=Header(stamp=ns_to_time(stamp_ns)))
        msg.point.x, msg.point.y = float(x), float(y)
        self._publish_matched(self.click_pub, msg)

    def click_point(self, x: float, y: float) -> None:
        """Publish a plain Point on ``~/click_point`` (rqt_image_view's mouse publisher)."""
        self._publish_matched(self.click_point_pub, Point(x=float(x), y=float(y)))

    def _publish_matched(self, publisher, msg, timeout: float = 10.0) -> None:
        """Publish once the node's subscription is matched: a message published before
        discovery has matched it is lost (volatile durability), and discovery of a topic
        used for the first time can take seconds on a loaded machine."""
        if not self.wait_for(lambda: publisher.get_subscription_count() > 0, timeout):
            raise ClientError(f"nobody subscribes to {publisher.topic_name}")
        publisher.publish(msg)

    def _call(self, client, request, timeout: float):
        future = client.call_async(request)
        if not self.wait_for(future.done, timeout, 0.002):
            client.remove_pending_request(future)
            raise ClientError(f"{client.srv_name} did not answer within {timeout} s")
        return future.result()

    def add_points(self, xs: Sequence[float], ys: Sequence[float], stamp_ns: int = 0, *,
                   timeout: float = 10.0) -> AddPoints.Response:
        """Call ``~/add_points`` (stamp 0 = the latest frame)."""
        request = AddPoints.Request(stamp=ns_to_time(stamp_ns) if stamp_ns else Time())
        request.x = [float(v) for v in xs]
        request.y = [float(v) for v in ys]
        return self._call(self.add_client, request, timeout)

    def remove_points(self, ids: Sequence[int] = (), *, all: bool = False,
                      timeout: float = 10.0) -> RemovePoints.Response:
        """Call ``~/remove_points``."""
        request = RemovePoints.Request(all=all)
        request.ids = [int(i) for i in ids]
        return self._call(self.remove_client, request, timeout)

    def reset(self, *, timeout: float = 10.0) -> Trigger.Response:
        """Call ``~/reset``."""
        return self._call(self.reset_client, Trigger.Request(), timeout)

    def set_parameter(self, name: str, value: Any, *, timeout: float = 10.0
                      ) -> SetParametersResult:
        """``ros2 param set``: returns the node's result (successful, reason)."""
        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()])
        return self._call(self.parameters_client, request, timeout).results[0]

    def close(self) -> None:
        """Stop spinning, destroy the node, shut the context down."""
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._spinner.join(timeout=2.0)
