"""Our interfaces over real rclpy (Fast DDS, localhost, a random domain): no mocks.

Nodes live in an isolated rclpy Context (fixture ``rclpy_context``) and are spun by an
executor of that context.
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
from taptr_ros.srv import AddPoints, RemovePoints

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


def _serve_points(node: Node):
    """A minimal registry behind AddPoints/RemovePoints: ids handed out in order."""
    state = {"next": 10, "ids": set()}

    def add(request: AddPoints.Request, response: AddPoints.Response) -> AddPoints.Response:
        count = len(request.x)
        if len(request.y) != count:
            response.success, response.message = False, "x and y differ in length"
            return response
        response.ids = list(range(state["next"], state["next"] + count))
        state["next"] += count
        state["ids"].update(response.ids)
        response.stamp = request.stamp
        response.success, response.message = True, f"added {count} points"
        return response

    def remove(request: RemovePoints.Request,
               response: RemovePoints.Response) -> RemovePoints.Response:
        wanted = sorted(state["ids"]) if request.all else list(request.ids)
        response.removed = [i for i in wanted if i in state["ids"]]
        response.unknown = [i for i in wanted if i not in state["ids"]]
        state["ids"].difference_update(response.removed)
        response.success, response.message = True, f"removed {len(response.removed)}"
        return response

    node.create_service(AddPoints, "~/add_points", add)
    node.create_service(RemovePoints, "~/remove_points", remove)


def _call(executor, spin_until, client, request):
    assert client.wait_for_service(timeout_sec=20.0), "service never appeared"
    future = client.call_async(request)
    assert spin_until(executor, future.done, 20.0), "no response"
    return future.result()


def test_add_and_remove_points_services(nodes, spin_until) -> None:
    executor, make_node = nodes
    server = make_node("tracker")
    _serve_points(server)
    client_node = make_node("client")
    add = client_node.create_client(AddPoints, f"{server.get_fully_qualified_name()}/add_points")
    remove = client_node.create_client(
        RemovePoints, f"{server.get_fully_qualified_name()}/remove_points")

    request = AddPoints.Request(stamp=Time(sec=5, nanosec=6))
    request.x = np.array([1.5, 2.5, 3.5], np.float32).tolist()
    request.y = np.array([4.0, 5.0, 6.0], np.float32).tolist()
    response = _call(executor, spin_until, add, request)
    assert isinstance(response, AddPoints.Response)
    assert response.success and response.message == "added 3 points"
    assert list(response.ids) == [10, 11, 12]
    assert (response.stamp.sec, response.stamp.nanosec) == (5, 6)

    response = _call(executor, spin_until, remove, RemovePoints.Request(ids=[11, 99]))
    assert isinstance(response, RemovePoints.Response)
    assert response.success
    assert (list(response.removed), list(response.unknown)) == ([11], [99])

    response = _call(executor, spin_until, remove, RemovePoints.Request(all=True))
    assert (list(response.removed), list(response.unknown)) == ([10, 12], [])
