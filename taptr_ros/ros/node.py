"""The taptr_tracker node: images in, TrackedPoints out, points added and removed by service.

Wiring only (DESIGN.md section 4): parameters come from `parameters`, the tracker from the
tracking room's factory, inference runs on `worker.LatestWorker`'s thread, requests go through
`services`, /diagnostics is built by `diagnostics`, ~/features by `features`.

Threads: one executor thread runs the image callback (reads the serialized image with `wire`,
converts it and hands the frame to the worker, newest wins), the requests (services and clicks)
and the diagnostics timer; none of them waits for inference, so a request waits at most one
image conversion. The worker thread runs the tracker and publishes; with ``pipeline`` (the
default) an encoder thread in front of it encodes the next frame meanwhile (each of the two
hands on the newest frame); an overlay thread draws ~/overlay (newest wins too). The tracker
applies requests at frame boundaries.

Why a SingleThreadedExecutor: rclpy's MultiThreadedExecutor adds about 5 ms between a 640x480
image's arrival and its callback on a 2-core CPU (measured: round trip image -> reply 2.1 ms
single-threaded, 7.7 ms multi-threaded, both with raw image subscriptions). The callback
groups stay, so the node remains correct in a multi-threaded executor (composition).
"""

from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point, PointStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
)
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions, install_signal_handlers
from sensor_msgs.msg import CompressedImage, Image, PointCloud
from std_srvs.srv import Trigger

from taptr_ros.data.video import draw_tracks
from taptr_ros.messages.raw_image import ImageConversionError, numpy_to_image
from taptr_ros.messages.rgb8 import compressed_to_rgb8, image_to_rgb8
from taptr_ros.messages.tracks import pack_tracks
from taptr_ros.msg import TrackedPoints
from taptr_ros.resources import set_dds_profile
from taptr_ros.ros import services
from taptr_ros.ros.callback_guard import CallbackGuard
from taptr_ros.ros.diagnostics import NodeStats, build_diagnostics
from taptr_ros.ros.features import FeatureCloud
from taptr_ros.ros.parameters import declare_parameters
from taptr_ros.ros.tracker_setup import build_tracker
from taptr_ros.ros.wire import decode_image_message
from taptr_ros.ros.worker import LatestWorker
from taptr_ros.srv import AddPoints, RemovePoints
from taptr_ros.tracking.encoding import EncodedFrame
from taptr_ros.tracking.errors import FrameError, TrackerError, TrackerStateError

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class StartupError(RuntimeError):
    """The node cannot start (parameters, checkpoint, device); the message says why."""


@dataclass
class _Frame:
    """A converted image on its way to the tracker (encoded by the pipeline's first stage)."""

    rgb: np.ndarray
    header: object
    stamp_ns: int
    received: float  # time.perf_counter() when the image callback started
    encoded: EncodedFrame | None = None

    @property
    def tracker_input(self) -> np.ndarray | EncodedFrame:
        """What `OnlineTracker.push` takes: the encoding when there is one, else the image."""
        return self.rgb if self.encoded is None else self.encoded


class TrackerNode(Node):
    """Node ``taptr_tracker`` (see the README for topics, services and parameters)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("taptr_tracker", **kwargs)
        try:
            self.params = declare_parameters(self)
            self.tracker, self.info = build_tracker(self.params)
        except (InvalidParameterValueException, InvalidParameterTypeException,
                TrackerError) as exc:
            self.destroy_node()
            raise StartupError(_one_line(str(exc))) from exc
        p = self.params
        self.stats = NodeStats()
        self.guard = CallbackGuard(self.get_logger().error)
        guard = self.guard
        self._recent: collections.deque[_Frame] = collections.deque(
            maxlen=self.tracker.options.window + 1)  # committed mode publishes older frames
        self._features = FeatureCloud(tuple(p.features_intrinsics)) if p.publish_features else None

        # In a multi-threaded executor these may overlap: an image conversion, requests (tracker
        # calls are thread-safe and take effect at a frame boundary) and the diagnostics timer.
        # Images never overlap images.
        image_group = MutuallyExclusiveCallbackGroup()
        request_group = ReentrantCallbackGroup()
        timer_group = MutuallyExclusiveCallbackGroup()

        self.tracks_pub = self.create_publisher(TrackedPoints, "~/tracks", RELIABLE)
        self.overlay_pub = self.create_publisher(Image, "~/overlay", QoSProfile(depth=2))
        self.features_pub = (self.create_publisher(PointCloud, "~/features", RELIABLE)
                             if self._features else None)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", RELIABLE)

        qos = qos_profile_sensor_data if p.qos == "sensor_data" else RELIABLE
        qos = QoSProfile(depth=p.queue_depth, reliability=qos.reliability,
                         durability=qos.durability, history=qos.history)
        # raw=True: the callback gets the serialized bytes, read by `wire` (saves rclpy's ~2 ms
        # conversion of a 640x480 frame's data into an array.array)
        self._compressed_input = p.input_transport == "compressed"
        self.create_subscription(CompressedImage if self._compressed_input else Image,
                                 self._image_topic() if self._compressed_input else "image",
                                 guard.callback("image", self._on_image), qos,
                                 callback_group=image_group, raw=True)
        self.create_subscription(PointStamped, "~/click", guard.callback("click", self._on_click),
                                 RELIABLE, callback_group=request_group)
        self.create_subscription(Point, "~/click_point",
                                 guard.callback("click_point", self._on_click_point), RELIABLE,
                                 callback_group=request_group)
        self.create_service(AddPoints, "~/add_points", guard.service("add_points", self._on_add),
                            callback_group=request_group)
        self.create_service(RemovePoints, "~/remove_points",
                            guard.service("remove_points", self._on_remove),
                            callback_group=request_group)
        self.create_service(Trigger, "~/reset", guard.service("reset", self._on_reset),
                            callback_group=request_group)
        self.create_timer(p.diagnostics_period, guard.callback("diagnostics", self._on_diagnostics),
                          callback_group=timer_group)

        self._closed = False
        self.overlay_worker = LatestWorker(self._draw_overlay, name="overlay",  # newest wins too
                                           on_error=lambda exc: guard.report("overlay", exc))
        self.overlay_worker.start()
        self.worker: LatestWorker[_Frame] = LatestWorker(
            self._track, on_error=lambda exc: guard.report("tracking", exc))
        self.worker.start()
        # pipeline: frame t + 1 is encoded on this thread while frame t is decoded on the worker
        self.encoder: LatestWorker[_Frame] | None = None
        if p.pipeline:
            self.encoder = LatestWorker(self._encode, name="encoder",
                                        on_error=lambda exc: guard.report("encoding", exc))
            self.encoder.start()
        profile = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or os.environ.get(
            "FASTRTPS_DEFAULT_PROFILES_FILE") or "none (Fast DDS defaults)"
        self.get_logger().info(f"ready: {self.info.summary} on {self.info.device}, "
                               f"mode {p.mode}, input '{self._image_topic()}', DDS profile {profile}")

    def _image_topic(self) -> str:
        """``image`` as remapped; ``<that>/compressed`` for compressed input, as image_transport
        names it (remapping ``image`` moves both; ``image/compressed`` may be remapped too)."""
        topic = self.resolve_topic_name("image")
        if self.params.input_transport == "compressed":
            topic = self.resolve_topic_name(topic + "/compressed")
        return topic

    # ---------------------------------------------------------------- executor threads
    def _on_image(self, raw: bytes) -> None:
        received = time.perf_counter()
        try:
            header, msg = decode_image_message(raw, compressed=self._compressed_input)
            rgb = compressed_to_rgb8(msg) if self._compressed_input else image_to_rgb8(msg)
        except ImageConversionError as exc:
            self.stats.image_skipped()
            self.get_logger().warning(f"image skipped: {exc}", throttle_duration_sec=5.0)
            return
        frame = _Frame(rgb, header, services.stamp_to_ns(header.stamp), received)
        first_stage = self.worker if self.encoder is None else self.encoder
        self.stats.image_received(dropped_previous=first_stage.submit(frame))

    def _on_add(self, request, response):
        return self._answered("add_points", services.handle_add(self.tracker, request, response))

    def _on_remove(self, request, response):
        return self._answered("remove_points",
                              services.handle_remove(self.tracker, request, response))

    def _on_reset(self, request, response):
        return self._answered("reset", services.handle_reset(self.tracker, response))

    def _on_click(self, msg: PointStamped) -> None:
        self._click(msg.point.x, msg.point.y, services.stamp_to_ns(msg.header.stamp))

    def _on_click_point(self, msg: Point) -> None:
        self._click(msg.x, msg.y, None)

    def _click(self, x: float, y: float, stamp_ns: int | None) -> None:
        ok, message, ids, _ = services.add_points(self.tracker, [x], [y], stamp_ns)
        # one call site per severity: rclpy raises if a site's severity changes between calls
        if ok:
            self.get_logger().info(f"click ({x:.1f}, {y:.1f}): point {ids[0]} {message}")
        else:
            self.get_logger().warning(f"click ({x:.1f}, {y:.1f}) refused: {message}")

    def _answered(self, name: str, response):
        if response.success:
            self.get_logger().info(f"{name}: {response.message}")
        else:
            self.get_logger().warning(f"{name}: refused: {response.message}")
        return response

    def _on_diagnostics(self) -> None:
        p = self.params
        extra = {"mode": p.mode, "checkpoint": self.info.summary,
                 "input_topic": self._image_topic(),
                 "callback_errors": str(self.guard.failures),
                 "last_callback_error": self.guard.last_failure}
        self.diag_pub.publish(build_diagnostics(
            self.stats.snapshot(points=self.tracker.num_points),
            stamp=self.get_clock().now().to_msg(),
            name=f"{self.get_name()}: tracking", hardware_id=str(self.info.device), extra=extra))

    # ---------------------------------------------------------------- worker threads
    def _encode(self, frame: _Frame) -> None:
        """Encoder thread (pipeline): encode, then hand over to the tracking worker."""
        try:
            frame.encoded = self.tracker.encode(frame.rgb)
        except FrameError as exc:
            self.get_logger().warning(f"frame skipped: {exc}", throttle_duration_sec=5.0)
            return
        self.stats.frame_dropped_after_encoding(self.worker.submit(frame))

    def _track(self, frame: _Frame) -> None:
        try:
            results = self.tracker.push(frame.tracker_input, frame.stamp_ns)
        except FrameError as exc:
            if not self._restart_on_rewind(frame):
                self.get_logger().warning(f"frame skipped: {exc}", throttle_duration_sec=5.0)
                return
            results = self.tracker.push(frame.tracker_input, frame.stamp_ns)
        except TrackerStateError as exc:
            self.get_logger().error(f"{exc}: resetting the tracker (points are lost)")
            self.tracker.reset()
            return
        self.stats.frame_processed()
        delay_ms = self.get_parameter("debug_delay_ms").value
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
        self._recent.append(frame)
        by_stamp = {f.stamp_ns: f for f in self._recent}
        for result in results:
            self._publish(result, by_stamp.get(result.stamp, frame))

    def _restart_on_rewind(self, frame: _Frame) -> bool:
        """A stamp older than the last frame's (a bag replayed again): reset and go on."""
        if not self._recent or frame.stamp_ns >= self._recent[-1].stamp_ns:
            return False
        self.get_logger().warning("image stamps went back in time (bag restarted?): resetting the "
                               "tracker; points are lost")
        self.tracker.reset()
        self._recent.clear()
        return True

    def _publish(self, result, frame: _Frame) -> None:
        threshold = self.get_parameter("visibility_threshold").value
        visible = result.visible if threshold == self.tracker.options.visibility_threshold \
            else result.visibility > threshold
        self.tracks_pub.publish(pack_tracks(
            ids=result.ids, x=result.xy[:, 0], y=result.xy[:, 1], visible=visible,
            visibility=result.visibility, width=result.width, height=result.height,
            header=frame.header))
        if self.get_parameter("overlay").value and self.overlay_pub.get_subscription_count() > 0:
            self.overlay_worker.submit((frame, result.ids, result.xy, visible))
        if self._features is not None:
            self.features_pub.publish(self._features.build(
                frame.header, frame.stamp_ns * 1e-9, result.ids, result.xy, visible))
        self.stats.tracks_published(result.timings.total,
                                    1e3 * (time.perf_counter() - frame.received), len(result.ids))

    def _draw_overlay(self, item) -> None:
        """Overlay thread: drawing thousands of points takes longer than tracking them."""
        frame, ids, xy, visible = item
        drawn = draw_tracks(frame.rgb, ids, xy, visible)
        self.overlay_pub.publish(numpy_to_image(drawn, "rgb8", header=frame.header))

    def close(self) -> None:
        """Stop the worker threads (after their current item), destroy the node; idempotent."""
        if self.encoder is not None:
            self.encoder.stop()
        self.worker.stop()
        self.overlay_worker.stop()
        if not self._closed:
            self._closed = True
            self.destroy_node()


def _one_line(message: str, width: int = 240) -> str:
    """A multi-line error (e.g. a checkpoint's key listing) as one log line of short parts."""
    parts = [line.strip() for line in message.splitlines() if line.strip()]
    return " | ".join(part if len(part) <= width else part[:width] + " ..." for part in parts)


def main(args: list[str] | None = None) -> int:
    """Console script ``taptr-tracker``: run the node until SIGINT; 1 if it cannot start."""
    # Whole camera frames between processes: the shipped Fast DDS profile (large shared-memory
    # segment) unless the user chose one or opted out; read when the context starts.
    set_dds_profile(os.environ)
    # Python's own SIGINT handling while the model loads (rclpy's handler only wakes
    # executors, so a Ctrl-C before spin() would be lost); rclpy's from spin() on.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)  # no `with`: Humble
    node = None
    try:
        try:
            node = TrackerNode()
        except StartupError as exc:
            rclpy.logging.get_logger("taptr_tracker").fatal(f"cannot start: {exc}")
            return 1
        install_signal_handlers(SignalHandlerOptions.ALL)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        _spin(executor, node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        _shut_down(node)
    return 0


def _spin(executor: SingleThreadedExecutor, node: TrackerNode) -> None:
    """Spin until shutdown; whatever escapes the executor itself (not a callback: those are
    guarded) is reported and spinning resumes."""
    while rclpy.ok(context=node.context):
        try:
            executor.spin()
            return
        except (KeyboardInterrupt, ExternalShutdownException):
            raise
        except Exception as exc:  # noqa: BLE001 - the node never ends on an error after start
            node.guard.report("executor", exc)


def _shut_down(node: TrackerNode | None) -> None:
    """Close the node and shut rclpy down. The SIGINT that ended spin() may raise its
    KeyboardInterrupt only now: the steps are idempotent and simply run again."""
    for _ in range(3):
        try:
            if node is not None:
                node.close()
            rclpy.try_shutdown()
            return
        except KeyboardInterrupt:
            continue


if __name__ == "__main__":
    raise SystemExit(main())
