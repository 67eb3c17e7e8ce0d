"""``taptr bag play``: replay a bag live into a running taptr_tracker and measure what it publishes.

The bag's image messages are republished byte for byte (padding, compression and stamps as
recorded) with rclpy at ``rate`` x the recorded pace, each preceded by /clock at its stamp (for
``use_sim_time``). Queries are added through ``<tracker>/add_points`` with the stamp of their
frame as soon as the tracker has published that frame (so the frame is buffered); when the frame
was dropped, the point is added at the latest frame instead and counted as late. Everything
published on ``<tracker>/tracks`` is recorded with its arrival time.

Reported: end-to-end latency (image published -> its tracks received, percentiles), frames
dropped (published, never answered), and, with ground truth, the TAP-Vid metrics computed as
``taptr bag eval`` computes them. A live consumer keeps the last positions it received, so a
point's prediction for a frame without one (dropped frame, point added late) is its last
received one (its query before the first); such point-frames are counted as ``held``.

``sync=True`` publishes the next frame only once the tracker answered the previous one and the
frame's queries were added: no drops, and the numbers equal ``taptr bag eval``'s (a test).

This is the one module of eval/ that talks ROS (rclpy, through :mod:`taptr_ros.ros.tools.client`):
it measures the node itself.
"""

from __future__ import annotations

import os
import queue
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from taptr_ros.bags.errors import BagError
from taptr_ros.bags.sidecar import QUERIES_FILE, read_queries
from taptr_ros.bags.storage import BagReader
from taptr_ros.bags.topics import GROUND_TRUTH_TOPIC
from taptr_ros.messages.typestore import COMPRESSED_TYPE, stamp_to_ns
from taptr_ros.ros.tools.bag_play_options import PlayOptions
from taptr_ros.ros.tools.bag_play_report import PlayResult, play_report
from taptr_ros.ros.tools.child_node import isolate_ros_domain, start_node, stop_node

#: seconds before an unanswered frame is re-sent (frame 0 always, every frame with sync)
RESEND_S = 2.0

__all__ = ["PlayOptions", "PlayResult", "isolate_ros_domain", "play_bag", "start_node", "stop_node"]


class _Recorder:
    """Indexes the tracks the client received by frame: arrival time and message."""

    def __init__(self, client: Any, frame_of_stamp: dict[int, int]) -> None:
        self.client, self.frame_of_stamp = client, frame_of_stamp
        self.seen = 0
        self.arrivals: dict[int, float] = {}
        self.messages: dict[int, Any] = {}
        self.lock = threading.Lock()

    def poll(self) -> int:
        """Take new messages in; returns the number of frames answered so far."""
        with self.lock:
            received = self.client.snapshot(self.client.tracks)
            for item in received[self.seen :]:
                k = self.frame_of_stamp.get(stamp_to_ns(item.msg.header.stamp))
                if k is not None and k not in self.arrivals:
                    self.arrivals[k], self.messages[k] = item.time, item.msg
            self.seen = len(received)
            return len(self.arrivals)

    def wait_frame(self, k: int, timeout: float) -> bool:
        """True once frame k is answered; False after ``timeout`` s or once a later frame is answered
        (the node processes frames in order, newest first: k was dropped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if k in self.arrivals:
                return True
            if self.arrivals and max(self.arrivals) > k:
                return False
            time.sleep(0.002)
        return False


class _Adder:
    """Adds each frame's queries once the tracker has published that frame (a thread, or inline)."""

    def __init__(self, client: Any, recorder: _Recorder, stamps: np.ndarray, timeout: float) -> None:
        self.client, self.recorder, self.stamps, self.timeout = client, recorder, stamps, timeout
        self.ids: dict[int, int] = {}  # engine id -> query row
        self.added_at: dict[int, int] = {}  # query row -> stamp used (ns)
        self.late, self.failed, self.messages = 0, 0, []
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="bag-play-add", daemon=True)

    def add(self, k: int, rows: np.ndarray, xy: np.ndarray) -> None:
        answered = self.recorder.wait_frame(k, self.timeout)
        response = self.client.add_points(xy[:, 0], xy[:, 1], int(self.stamps[k])) if answered else None
        if response is None or not response.success:
            if response is not None:
                self.messages.append(response.message)
            response = self.client.add_points(xy[:, 0], xy[:, 1], 0)  # the latest frame
            if not response.success:
                self.failed += len(rows)
                self.messages.append(response.message)
                return
            self.late += len(rows)
        used = stamp_to_ns(response.stamp)
        for engine_id, row in zip(response.ids, rows):
            self.ids[int(engine_id)] = int(row)
            self.added_at[int(row)] = used

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            self.add(*job)


def play_bag(
    bag: str | os.PathLike[str],
    options: PlayOptions = PlayOptions(),
    *,
    out_dir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
) -> PlayResult:
    """Replay ``bag`` into a live tracker; see the module docstring.

    Raises:
        BagError: problems with the bag or ground truth, a tracker that never appears, or that exits.
    """
    from taptr_ros.bags.evaluate import EvalOptions, choose_queries
    from taptr_ros.bags.truth import truth_from_bag, truth_from_pickle
    from taptr_ros.eval.tapvid import sample_queries

    bag = Path(bag)
    if options.query_mode != "first":
        raise BagError(
            "live replay supports --query-mode first only (strided needs tracking backwards in time)"
        )
    with BagReader(bag) as reader:
        topic = reader.image_topic(options.image_topic)
        msgtype = reader.topics[topic]
        stamps, _logs = reader.image_stamps(topic)
        first = next(reader.iter_images(topic))
        T, size_hw = len(stamps), first.rgb.shape[:2]
        truth = None
        if options.use_ground_truth and options.ground_truth:
            truth = truth_from_pickle(
                options.ground_truth, T, (size_hw[1], size_hw[0]), video=options.gt_video
            )
        elif options.use_ground_truth and GROUND_TRUTH_TOPIC in reader.topics:
            truth = truth_from_bag(reader, GROUND_TRUTH_TOPIC, stamps, (size_hw[1], size_hw[0]))
    if truth is not None:
        video = truth.as_tapvid(bag.name, T, *size_hw)
        queries = sample_queries(
            video.points.astype(np.float64) * np.array([size_hw[1], size_hw[0]]), video.occluded, "first"
        )[0]
        source = "ground truth, query mode 'first'"
    else:
        sidecar = read_queries(bag) if (bag / QUERIES_FILE).is_file() else None
        queries, source = choose_queries(
            EvalOptions(points=options.points, grid=options.grid), sidecar, (size_hw[1], size_hw[0]), T
        )
    publish_topic = options.publish_topic or topic
    # the node refuses points outside the frame: clipped, as the lockstep replay clips them
    queries = np.concatenate(
        [queries[:, :1], np.clip(queries[:, 1:], 0, [size_hw[1] - 1, size_hw[0] - 1])], axis=1
    )
    node = None
    scratch = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="taptr_bag_play-"))
    if options.start_node:
        isolate_ros_domain()
        scratch.mkdir(parents=True, exist_ok=True)
        node_log = scratch / "taptr_tracker.log"
        node = start_node(
            topic=publish_topic,
            compressed=msgtype == COMPRESSED_TYPE,
            checkpoint=options.checkpoint,
            device=options.device,
            sim_time=options.clock,
            extra=options.node_args,
            log_path=node_log,
        )
        log(
            f"started taptr_tracker (pid {node.pid}, ROS_DOMAIN_ID {os.environ['ROS_DOMAIN_ID']}), log {node_log}"
        )
    try:
        run = _play(bag, topic, msgtype, publish_topic, stamps, queries, options, node, log)
    finally:
        if node is not None:
            stop_node(node)
    return play_report(bag, topic, T, size_hw, stamps, truth, queries, source, run, options, out_dir)


def _play(
    bag: Path,
    topic: str,
    msgtype: str,
    publish_topic: str,
    stamps: np.ndarray,
    queries: np.ndarray,
    options: PlayOptions,
    node: subprocess.Popen | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Publish, add, record; returns the raw measurements."""
    from rclpy.qos import qos_profile_sensor_data
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CompressedImage, Image

    from taptr_ros.ros.services import ns_to_time
    from taptr_ros.ros.tools.client import ClientError, TrackerClient

    client = TrackerClient(
        tracker=options.tracker, image_topic="/_taptr_bag_play/unused", node_name="taptr_bag_play"
    )
    try:
        image_pub = client.node.create_publisher(
            CompressedImage if msgtype == COMPRESSED_TYPE else Image, publish_topic, qos_profile_sensor_data
        )
        clock_pub = client.node.create_publisher(Clock, "/clock", 10) if options.clock else None
        alive = (lambda: node.poll() is None) if node is not None else None
        wait = max(options.wait_s, 120.0) if node is not None else options.wait_s
        ready = client.wait_for(
            lambda: (
                client.add_client.service_is_ready()
                and image_pub.get_subscription_count() > 0
                and client.node.count_publishers(f"{options.tracker}/tracks") > 0
            )
            or (alive is not None and not alive()),
            wait,
            0.05,
        )
        if alive is not None and not alive():
            raise BagError(
                f"taptr_tracker exited with code {node.returncode} before it was ready; see its log"
            )
        if not ready:
            raise BagError(
                f"no tracker answered within {wait:.0f} s: start one subscribed to {publish_topic} "
                f"(`taptr-tracker --ros-args -r image:={publish_topic}`), check --tracker "
                f"{options.tracker} and ROS_DOMAIN_ID, or pass --start-node"
            )
        T = len(stamps)
        recorder = _Recorder(client, {int(s): k for k, s in enumerate(stamps)})
        adder = _Adder(client, recorder, stamps, timeout=max(options.drain_s, 5.0))
        qt = np.rint(queries[:, 0]).astype(np.int64)
        by_frame = {int(t): np.flatnonzero(qt == t) for t in np.unique(qt)}
        if not options.sync:
            adder.thread.start()
        sent = np.full(T, np.nan)
        with BagReader(bag) as reader:
            raws = (raw for _log_ns, _msg, raw in reader._messages(topic))

            def publish(k: int, raw: bytes, *, first_send: bool = True) -> None:
                if clock_pub is not None:
                    clock_pub.publish(Clock(clock=ns_to_time(int(stamps[k]))))
                if first_send or k == 0:  # latency counts from the first send (frame 0: the last)
                    sent[k] = time.perf_counter()
                image_pub.publish(raw)

            def until_answered(k: int, raw: bytes, timeout: float) -> None:
                """Publish frame k, re-sending it every RESEND_S until it is answered: a best-effort
                subscriber that has not matched this publisher yet, or lost a fragment, never sees it
                (the node drops a duplicate stamp)."""
                publish(k, raw)
                deadline = time.monotonic() + timeout
                while not recorder.wait_frame(k, min(RESEND_S, max(0.0, deadline - time.monotonic()))):
                    if time.monotonic() >= deadline or (recorder.arrivals and max(recorder.arrivals) > k):
                        return
                    publish(k, raw, first_send=False)

            # frame 0 is a handshake (the clock starts once it is answered), every frame in sync mode
            until_answered(0, next(raws), wait)
            if 0 in by_frame:
                adder.add(0, by_frame[0], queries[by_frame[0], 1:])
            start_wall, t0 = time.perf_counter(), int(stamps[0])
            for k, raw in enumerate(raws, start=1):
                rows = by_frame.get(k)
                if options.sync:
                    until_answered(k, raw, options.drain_s)
                    if rows is not None:
                        adder.add(k, rows, queries[rows, 1:])
                    continue
                delay = start_wall + (int(stamps[k]) - t0) / 1e9 / options.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                publish(k, raw)
                if rows is not None:
                    adder.jobs.put((k, rows, queries[rows, 1:]))
        publish_seconds = time.perf_counter() - start_wall
        if not options.sync:
            adder.jobs.put(None)
            adder.thread.join()
        recorder.wait_frame(T - 1, options.drain_s)  # the newest frame is the one never dropped
        recorder.poll()
        if node is not None and node.poll() is not None:
            raise BagError(f"taptr_tracker exited with code {node.returncode} during the replay; see its log")
    except ClientError as error:
        raise BagError(f"the tracker stopped answering: {error}") from error
    finally:
        client.close()
    return {"recorder": recorder, "adder": adder, "sent": sent, "publish_seconds": publish_seconds}
