"""launch/tracker.launch.py with launch_pytest: the node starts from it and tracks arrive.

Needs a ROS 2 install with launch, launch_ros and launch_pytest, and the package built and
sourced (colcon build; the launch file finds the executable through the ament index). Here,
with only the PyPI wheels, the module is skipped; the same node runs as a process in
tests/ros/test_node_*.py.
"""

from __future__ import annotations

import pytest

launch_pytest = pytest.importorskip("launch_pytest", exc_type=ImportError)
pytest.importorskip("launch_ros", exc_type=ImportError)

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from launch import LaunchDescription  # noqa: E402
from taptr_ros.messages.tracks import unpack_tracks  # noqa: E402
from taptr_ros.ros.tools.client import TrackerClient  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "launched"
IMAGE = "/launch_test/image"


@launch_pytest.fixture
def launch_description(tiny_checkpoint, ros_isolation):
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(REPO / "launch" / "tracker.launch.py")),
        launch_arguments={
            "image": IMAGE,
            "params_file": str(REPO / "config" / "tracker.yaml"),
            "namespace": NAMESPACE,
            "checkpoint": str(tiny_checkpoint),
            "device": "cpu",
        }.items())
    return LaunchDescription([include, launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=launch_description)
def test_tracks_arrive_from_the_launched_node() -> None:
    client = TrackerClient(tracker=f"/{NAMESPACE}/taptr_tracker", image_topic=IMAGE,
                           node_name="launch_test_client")
    try:
        client.wait_until_ready(120)
        frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
        stamps = iter(range(2_000_000_000, 3_000_000_000, 33_333_333))

        def tracked_frame() -> int:
            """Publish frames (best effort, the default QoS: one may be lost while discovery
            settles) until one is answered; its stamp."""
            for _ in range(120):
                stamp = next(stamps)
                client.publish_frame(frame, stamp)
                if client.wait_for(lambda: client.tracks_for(stamp) is not None, 1.0):
                    return stamp
            raise AssertionError("no tracks arrived")

        tracked_frame()
        response = client.add_points([10.0, 80.0], [20.0, 60.0])
        assert response.success, response.message
        for _ in range(5):
            last = tracked_frame()
        tracks = unpack_tracks(client.tracks_for(last))
        assert sorted(tracks.ids.tolist()) == sorted(response.ids)
        assert (tracks.width, tracks.height) == (160, 120)
    finally:
        client.close()
