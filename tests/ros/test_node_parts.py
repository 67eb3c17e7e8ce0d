"""The node's parts without a process: worker, request handlers, features, diagnostics."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from taptr_ros.srv import AddPoints, RemovePoints

from taptr_ros.ros import services
from taptr_ros.ros.diagnostics import NodeStats, build_diagnostics, diagnostics_values
from taptr_ros.ros.features import CHANNELS, FeatureCloud
from taptr_ros.ros.worker import LatestWorker

# ----------------------------------------------------------------------------- worker


def test_worker_processes_the_newest_item_and_reports_drops() -> None:
    gate, done, errors = threading.Event(), [], []

    def process(item: int) -> None:
        if item == 0:
            gate.wait(5)  # hold the worker busy on the first item
        done.append(item)

    worker = LatestWorker(process, on_error=errors.append)
    worker.start()
    try:
        assert worker.submit(0) is False
        assert _wait(lambda: worker.busy)
        drops = [worker.submit(i) for i in range(1, 6)]  # 1..4 replaced before being taken
        assert drops == [False, True, True, True, True]
        gate.set()
        assert _wait(lambda: done == [0, 5])
    finally:
        worker.stop()
    assert errors == []


def test_worker_reports_errors_and_goes_on() -> None:
    done, errors = [], []

    def process(item: int) -> None:
        if item == 1:
            raise ValueError("bad frame")
        done.append(item)

    worker = LatestWorker(process, on_error=errors.append)
    worker.start()
    try:
        for item in (1, 2):
            worker.submit(item)
            assert _wait(lambda: not worker.busy and (errors or done))
        assert _wait(lambda: done == [2])
    finally:
        worker.stop()
    assert [str(e) for e in errors] == ["bad frame"]


def _wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


# ----------------------------------------------------------------------------- requests


@pytest.fixture(scope="module")
def tracker(tiny_checkpoint):
    from taptr_ros.tracking.factory import build_tracker
    from taptr_ros.tracking.options import TrackerOptions

    tracker = build_tracker(tiny_checkpoint, device="cpu", options=TrackerOptions(max_points=8))
    frame = np.zeros((48, 64, 3), np.uint8)
    for stamp in (10, 20, 30):
        tracker.push(frame, stamp)
    return tracker


def test_add_request_to_response(tracker) -> None:
    request = AddPoints.Request(x=[1.0, 63.0], y=[2.0, 47.0])
    request.stamp = services.ns_to_time(20)
    response = services.handle_add(tracker, request, AddPoints.Response())
    assert response.success, response.message
    assert len(response.ids) == 2 and services.stamp_to_ns(response.stamp) == 20
    latest = services.handle_add(tracker, AddPoints.Request(x=[5.0], y=[5.0]), AddPoints.Response())
    assert latest.success and services.stamp_to_ns(latest.stamp) == 30  # zero stamp = latest
    tracker.remove_all()


@pytest.mark.parametrize("x, y, stamp, fragment", [
    ([1.0], [], 0, "x has 1 values and y 0"),
    ([], [], 0, "no points given"),
    ([float("nan")], [1.0], 0, "not finite"),
    ([64.0], [1.0], 0, "outside"),
    ([1.0], [1.0], 5, "older than the buffer"),
    ([1.0] * 9, [1.0] * 9, 0, "max_points=8"),
])
def test_bad_add_requests_are_answered_not_raised(tracker, x, y, stamp, fragment) -> None:
    request = AddPoints.Request(x=x, y=y, stamp=services.ns_to_time(stamp))
    response = services.handle_add(tracker, request, AddPoints.Response())
    assert not response.success and fragment in response.message
    assert list(response.ids) == [] and tracker.num_points == 0


def test_remove_and_reset_requests(tracker) -> None:
    ok, _, ids, _ = services.add_points(tracker, [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], None)
    assert ok
    partly = services.handle_remove(tracker, RemovePoints.Request(ids=[int(ids[0]), 999]),
                                    RemovePoints.Response())
    assert not partly.success and list(partly.removed) == [ids[0]] and list(partly.unknown) == [999]
    nothing = services.handle_remove(tracker, RemovePoints.Request(), RemovePoints.Response())
    assert nothing.success and "nothing removed" in nothing.message
    everything = services.handle_remove(tracker, RemovePoints.Request(all=True),
                                        RemovePoints.Response())
    assert everything.success and sorted(everything.removed) == sorted(ids[1:].tolist())
    reset = services.handle_reset(tracker, Trigger.Response())
    assert reset.success and tracker.frame_count == 0


# ----------------------------------------------------------------------------- features


def test_features_are_vins_style_with_velocities() -> None:
    cloud = FeatureCloud((500.0, 400.0, 320.0, 240.0))
    header = Header(frame_id="camera")
    ids = np.array([4, 7, 9])
    first = cloud.build(header, 1.0, ids, np.array([[320.0, 240.0], [370.0, 280.0], [0.0, 0.0]]),
                        np.array([True, True, False]))
    assert [c.name for c in first.channels] == list(CHANNELS)
    assert [(p.x, p.y, p.z) for p in first.points] == [(0.0, 0.0, 1.0), (0.1, 0.1, 1.0)]
    assert list(first.channels[3].values) == [0.0, 0.0]  # no previous frame: no velocity
    # 0.5 s later: id 4 moved 50 px right (0.1 normalised), id 9 appears, id 7 hidden
    second = cloud.build(header, 1.5, ids, np.array([[370.0, 240.0], [0.0, 0.0], [10.0, 20.0]]),
                         np.array([True, False, True]))
    channel = {c.name: list(c.values) for c in second.channels}
    assert channel["id_of_point"] == [4.0, 9.0]
    assert channel["u_of_point"] == [370.0, 10.0] and channel["v_of_point"] == [240.0, 20.0]
    assert channel["velocity_x_of_point"] == pytest.approx([0.2, 0.0])
    assert channel["velocity_y_of_point"] == pytest.approx([0.0, 0.0])


def test_features_without_intrinsics_stay_in_pixels() -> None:
    cloud = FeatureCloud((0.0, 0.0, 0.0, 0.0))
    msg = cloud.build(Header(), 0.0, np.array([1]), np.array([[12.5, 7.0]]), np.array([True]))
    assert (msg.points[0].x, msg.points[0].y) == (12.5, 7.0)


# ----------------------------------------------------------------------------- diagnostics


def test_diagnostics_levels_and_values() -> None:
    stats = NodeStats()
    waiting = build_diagnostics(stats.snapshot(), stamp=Header().stamp, name="t",
                                hardware_id="cpu", extra={})
    assert waiting.status[0].level == DiagnosticStatus.WARN  # no image yet
    stats.image_received(dropped_previous=False)
    stats.image_received(dropped_previous=True)
    stats.frame_processed()
    stats.tracks_published(20.0, 25.0, points=3)
    array = build_diagnostics(stats.snapshot(), stamp=Header().stamp, name="t", hardware_id="cpu",
                              extra={"mode": "immediate"})
    status = array.status[0]
    assert status.level == DiagnosticStatus.OK and "dropping" in status.message
    values = diagnostics_values(array)
    assert values["frames_received"] == "2" and values["frames_dropped"] == "1"
    assert values["model_ms"] == "20.00" and values["latency_ms"] == "25.00"
    assert values["points"] == "3" and values["mode"] == "immediate"


# ----------------------------------------------------------------------------- isolation


def test_isolation_never_picks_the_domain_it_leaves(monkeypatch) -> None:
    from taptr_ros.ros.tools.child_node import isolate_ros_domain

    monkeypatch.setattr(os, "environ", dict(os.environ))  # the session's environment stays as is
    seen = set()
    for current in ("1", "50", "101"):
        for _ in range(300):
            os.environ.update(ROS_DOMAIN_ID=current, ROS_LOCALHOST_ONLY="1")
            env = isolate_ros_domain()
            assert env["ROS_DOMAIN_ID"] != current
            assert 1 <= int(env["ROS_DOMAIN_ID"]) <= 101
            assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
            assert "ROS_LOCALHOST_ONLY" not in os.environ
            seen.add(env["ROS_DOMAIN_ID"])
    assert len(seen) > 50  # still random, not a fixed fallback
