"""A real taptr_tracker process driven through every message path in one sequence stays alive.

Malformed images of several kinds, refused and accepted requests in alternation (the same log
call sites at different severities: rclpy raises ValueError if one call site changes severity
or filters), refused and accepted clicks, a stamp rewind and a reset: at the end the process
is running, tracks the points it should, and /diagnostics counts the skipped images and no
callback errors.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from taptr_ros.messages.raw_image import numpy_to_image
from taptr_ros.messages.tracks import unpack_tracks
from taptr_ros.ros.diagnostics import diagnostics_values
from taptr_ros.ros.services import ns_to_time
from taptr_ros.ros.tools.client import RELIABLE, TrackerClient

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NS = "/t_robust"
TRACKER = f"{NS}/taptr_tracker"
WIDTH, HEIGHT = 96, 64
START_NS = 1_800_000_000_000_000_000
PERIOD_NS = 50_000_000


def _malformed_images() -> dict[str, object]:
    """Image messages the node must skip, by what is wrong with them."""
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    unknown = numpy_to_image(rgb, "rgb8")
    unknown.encoding = "yuv9000"
    short = numpy_to_image(rgb, "rgb8")
    short.data = bytes(short.data[: len(short.data) // 2])
    narrow_step = numpy_to_image(rgb, "rgb8")
    narrow_step.step = WIDTH  # fewer bytes per row than 3 x width
    empty = numpy_to_image(rgb, "rgb8")
    empty.width, empty.height, empty.step, empty.data = 0, 0, 0, b""
    return {"unknown encoding": unknown, "data too short": short, "step below the row": narrow_step,
            "empty image": empty}


class Driver:
    """One stream of frames with increasing stamps, and the requests sent in between."""

    def __init__(self, client: TrackerClient) -> None:
        self.client = client
        self.stamp = START_NS
        rng = np.random.default_rng(0)
        self.frames = [rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(4)]
        self.count = 0

    def frame(self, stamp_ns: int | None = None):
        """Publish a valid frame (next stamp, or `stamp_ns`) and return its tracks."""
        stamp = self.stamp = (self.stamp + PERIOD_NS) if stamp_ns is None else stamp_ns
        self.client.publish_frame(self.frames[self.count % 4], stamp)
        self.count += 1
        assert self.client.wait_for(lambda: self.client.tracks_for(stamp) is not None, 60), \
            f"no tracks for stamp {stamp}"
        return unpack_tracks(self.client.tracks_for(stamp))

    def malformed(self, msg) -> None:
        self.stamp += PERIOD_NS
        msg.header.stamp = ns_to_time(self.stamp)
        self.client.image_pub.publish(msg)


@pytest.fixture(scope="module")
def node(start_module_process, tiny_checkpoint, tracker_executable, ros_isolation):
    return start_module_process([
        str(tracker_executable), "--ros-args", "--params-file", "config/tracker.yaml",
        "-p", f"checkpoint:={tiny_checkpoint}", "-p", "qos:=reliable", "-p", "max_points:=8",
        "-p", "diagnostics_period:=0.3", "-r", f"__ns:={NS}", "-r", "image:=/robust/image",
    ], name="tracker")


@pytest.fixture(scope="module")
def driver(node, ros_isolation):
    client = TrackerClient(tracker=TRACKER, image_topic="/robust/image", image_qos=RELIABLE,
                           diagnostics=True, node_name="robust_client")
    try:
        client.wait_until_ready(120, is_alive=lambda: node.popen.poll() is None)
        yield Driver(client)
    finally:
        client.close()


def _clicks_logged(node, count: int) -> bool:
    return node.output().count("click (") >= count


def test_every_message_path_in_sequence_leaves_the_node_tracking(driver, node) -> None:
    client = driver.client
    driver.frame()
    ids: list[int] = []
    malformed = _malformed_images()
    clicks = 0
    for round_ in range(2):  # twice: a call site that worked once must work again
        for name, msg in malformed.items():
            driver.malformed(msg)
            assert sorted(driver.frame().ids.tolist()) == sorted(ids), name
        for bad, good in [(([math.nan], [5.0]), ([10.0 + round_], [10.0])),
                          (([WIDTH + 3.0], [5.0]), ([20.0], [30.0 + round_]))]:
            refused = client.add_points(*bad)
            assert not refused.success and refused.message
            accepted = client.add_points(*good)
            assert accepted.success, accepted.message
            ids += list(accepted.ids)
            driver.frame()
        unknown = client.remove_points([99_999])
        assert not unknown.success
        removed = client.remove_points([ids[-1]])
        assert removed.success, removed.message
        ids.pop()
        # clicks: refused (outside the image), accepted, refused again (same call sites)
        client.click(-5.0, 3.0)
        client.click_point(12.0, 14.0)
        client.click(WIDTH + 1.0, 3.0)
        clicks += 3
        assert client.wait_for(lambda: _clicks_logged(node, clicks), 30), node.output()[-3000:]
        tracks = driver.frame()
        ids = tracks.ids.tolist()  # the accepted click added one point
        assert len(ids) == 2 * (round_ + 1), ids
        assert node.popen.poll() is None, node.output()[-3000:]

    # a stamp rewind (bag restarted): the node resets itself and goes on
    rewound = driver.frame(stamp_ns=START_NS - 1000 * PERIOD_NS)
    assert rewound.ids.tolist() == []
    assert "went back in time" in node.output()
    assert client.add_points([40.0], [20.0]).success
    assert len(driver.frame().ids) == 1
    # a reset service call, then tracking resumes with new points
    reset = client.reset()
    assert reset.success, reset.message
    assert not client.add_points([30.0], [30.0]).success  # no frame since the reset
    assert driver.frame().ids.tolist() == []
    added = client.add_points([30.0, 50.0], [30.0, 40.0]).ids
    for _ in range(3):
        tracks = driver.frame()
    assert sorted(tracks.ids.tolist()) == sorted(added)
    assert np.all((tracks.x >= 0) & (tracks.x <= WIDTH - 1))

    assert node.popen.poll() is None, node.output()[-3000:]
    assert "Traceback" not in node.output(), node.output()[-3000:]
    # diagnostics: the skipped images counted, nothing escaped a callback, points = now
    start = len(client.snapshot(client.diagnostics))
    assert client.wait_for(lambda: len(client.snapshot(client.diagnostics)) > start + 1, 10)
    values = diagnostics_values(client.snapshot(client.diagnostics)[-1].msg)
    assert values["images_skipped"] == str(2 * len(malformed)), values
    assert values["callback_errors"] == "0", values
    assert values["points"] == "2", values


def test_points_in_diagnostics_follow_a_reset_while_no_frames_come(driver) -> None:
    client = driver.client
    assert client.reset().success
    start = len(client.snapshot(client.diagnostics))
    assert client.wait_for(lambda: len(client.snapshot(client.diagnostics)) > start + 1, 10)
    assert diagnostics_values(client.snapshot(client.diagnostics)[-1].msg)["points"] == "0"
