"""Our messages over real rclpy (Fast DDS, localhost, a random domain): no mocks.

Nodes live in an isolated rclpy Context (fixture ``rclpy_context``) and are spun by an
executor of that context. The services (AddPoints, RemovePoints, reset) are checked against
the real node in test_node_tracking.py.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from taptr_ros.msg import TrackedPoints

from taptr_ros.messages.raw_image import image_to_numpy, numpy_to_image
from taptr_ros.messages.tracks import pack_tracks, unpack_tracks

RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture
def nodes(rclpy_context):
    """(executor, make_node): nodes created by make_node are spun by executor, destroyed after."""
    executor = SingleThreadedExecutor(context=rclpy_context)
    created: list[Node] = []

    def make_node(name: str) -> Node:
        node = Node(f"{name}_{uuid.uuid4().hex[:8]}", context=rclpy_context)
        executor.add_node(node)
        created.append(node)
        return node

    try:
        yield executor, make_node
    finally:
        executor.shutdown()
        for node in created:
            node.destroy_node()


def _publish_until_received(executor, spin_until, publisher, msg, received, timeout=20.0):
    """Publish (again every 0.5 s, in case discovery was late) until a message arrives."""
    assert spin_until(executor, lambda: publisher.get_subscription_count() > 0, timeout), (
        "subscriber never matched: discovery failed on localhost")
    for _ in range(int(timeout / 0.5)):
        publisher.publish(msg)
        if spin_until(executor, lambda: bool(received), 0.5):
            return received[0]
    raise AssertionError("published message never arrived")


def test_tracked_points_5000_arrive_intact(nodes, spin_until) -> None:
    executor, make_node = nodes
    topic = f"/test_tracks_{uuid.uuid4().hex[:8]}"
    received: list[TrackedPoints] = []
    make_node("listener").create_subscription(TrackedPoints, topic, received.append, RELIABLE)
    publisher = make_node("talker").create_publisher(TrackedPoints, topic, RELIABLE)

    rng = np.random.default_rng(7)
    arrays = dict(ids=rng.permutation(5000).astype(np.uint32) + 1_000_000,
                  x=(rng.random(5000) * 1279).astype(np.float32),
                  y=(rng.random(5000) * 719).astype(np.float32),
                  visible=rng.random(5000) > 0.5,
                  visibility=rng.random(5000).astype(np.float32))
    header = Header(stamp=Time(sec=42, nanosec=999_999_999), frame_id="camera")
    msg = pack_tracks(**arrays, width=1280, height=720, header=header)

    tracks = unpack_tracks(_publish_until_received(executor, spin_until, publisher, msg, received))
    assert (tracks.width, tracks.height) == (1280, 720)
    assert (tracks.header.stamp.sec, tracks.header.stamp.nanosec) == (42, 999_999_999)
    assert tracks.header.frame_id == "camera"
    for name, expected in arrays.items():
        got = getattr(tracks, name)
        assert got.dtype == expected.dtype, name
        np.testing.assert_array_equal(got, expected, err_msg=name)


def test_padded_big_endian_image_arrives_intact(nodes, spin_until) -> None:
    executor, make_node = nodes
    topic = f"/test_image_{uuid.uuid4().hex[:8]}"
    received: list[Image] = []
    make_node("listener").create_subscription(Image, topic, received.append, RELIABLE)
    publisher = make_node("talker").create_publisher(Image, topic, RELIABLE)
    depth = np.random.default_rng(3).integers(0, 65536, (37, 53), dtype=np.uint16)
    msg = numpy_to_image(depth, "16UC1", step=53 * 2 + 5, is_bigendian=True)

    image = _publish_until_received(executor, spin_until, publisher, msg, received)
    assert (image.step, image.is_bigendian) == (111, True)
    np.testing.assert_array_equal(image_to_numpy(image), depth)
