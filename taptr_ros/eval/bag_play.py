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

This is the one module of eval/ that talks ROS (rclpy, through :mod:`taptr_ros.ros.client`):
it measures the node itself.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from taptr_ros.eval.bag_errors import BagError
from taptr_ros.eval.bag_io import (
    COMPRESSED_TYPE,
    GROUND_TRUTH_TOPIC,
    QUERIES_FILE,
    RESULT_TOPIC,
    TRACKS_TYPE,
    BagReader,
    BagWriter,
    read_queries,
    stamp_to_ns,
)


@dataclasses.dataclass(frozen=True)
class PlayOptions:
    """Options of :func:`play_bag` (see ``taptr bag play --help``)."""

    rate: float = 1.0
    image_topic: str | None = None
    publish_topic: str | None = None
    tracker: str = "/taptr_tracker"
    ground_truth: str | None = None
    gt_video: str | None = None
    use_ground_truth: bool = True
    query_mode: str = "first"
    points: np.ndarray | None = None
    grid: int | None = None
    clock: bool = True
    wait_s: float = 30.0
    drain_s: float = 10.0
    sync: bool = False
    start_node: bool = False
    checkpoint: str = "default"
    device: str = "auto"
    node_args: tuple[str, ...] = ()


@dataclasses.dataclass
class PlayResult:
    """What was measured, and where it was written."""

    metrics: dict[str, Any]
    out_dir: Path | None
    files: list[str]

    def summary(self) -> str:
        m, lat = self.metrics, self.metrics.get("latency_ms") or {}
        lines = [
            f"{m['bag']}: published {m['frames_published']} frames at rate {m['rate']:g} "
            f"({m['publish_fps']:.1f} fps), answered {m['frames_answered']}, dropped {m['frames_dropped']}"
        ]
        if lat:
            lines.append(
                f"latency ms: p50 {lat['p50']:.1f}  p90 {lat['p90']:.1f}  p99 {lat['p99']:.1f}  "
                f"max {lat['max']:.1f}"
            )
        q = m["queries"]
        lines.append(f"queries: {q['added']} added at their frame, {q['late']} late, {q['failed']} failed")
        tapvid = m.get("tapvid")
        if tapvid:
            o = tapvid["overall"]
            fmt = lambda k: "n/a" if o.get(k) is None else f"{100 * o[k]:.1f}"  # noqa: E731
            lines.append(
                f"TAP-Vid ({tapvid['query_mode']}, live): AJ {fmt('average_jaccard')}  <d_avg "
                f"{fmt('average_pts_within_thresh')}  OA {fmt('occlusion_accuracy')}"
            )
        if self.out_dir is not None:
            lines.append(f"wrote {self.out_dir}: {', '.join(self.files)}")
        return "\n".join(lines)


# --- the node as a subprocess -----------------------------------------------------------------


def isolate_ros_domain() -> dict[str, str]:
    """Put this process (and its children) on a random ROS domain, localhost only; returns the vars."""
    env = {
        "ROS_DOMAIN_ID": str(random.SystemRandom().randint(1, 101)),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
    }
    os.environ.update(env)
    for key in ("ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY"):
        os.environ.pop(key, None)
    return env


def start_node(
    *,
    topic: str,
    compressed: bool,
    checkpoint: str,
    device: str,
    sim_time: bool,
    extra: tuple[str, ...],
    log_path: Path,
) -> subprocess.Popen:
    """Start ``taptr-tracker`` (this interpreter, ``-m taptr_ros.ros.node``) subscribed to ``topic``."""
    remap = f"image/compressed:={topic}" if compressed else f"image:={topic}"
    args = [
        sys.executable,
        "-m",
        "taptr_ros.ros.node",
        "--ros-args",
        "-r",
        remap,
        "-p",
        f"checkpoint:={checkpoint}",
        "-p",
        f"device:={device}",
        "-p",
        f"use_sim_time:={'true' if sim_time else 'false'}",
    ]
    if compressed:
        args += ["-p", "input_transport:=compressed"]
    args += list(extra)
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ), start_new_session=True
        )


def stop_node(popen: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGINT (rclpy catches SIGTERM), then SIGKILL of its process group after ``timeout`` s."""
    import signal

    if popen.poll() is None:
        try:
            popen.send_signal(signal.SIGINT)
            return popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                popen.kill()
    return popen.wait()


# --- playing --------------------------------------------------------------------------------


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


def _predictions(recorder: _Recorder, adder: _Adder, queries: np.ndarray, T: int) -> tuple[np.ndarray, ...]:
    """(tracks (M, T, 2), occluded (M, T), held (M, T)) as a live consumer sees them."""
    M = len(queries)
    qt = np.rint(queries[:, 0]).astype(np.int64)
    tracks = np.repeat(queries[:, None, 1:], T, axis=1).astype(np.float64)
    occluded = np.arange(T)[None, :] < qt[:, None]
    held = np.zeros((M, T), bool)
    last_xy = queries[:, 1:].astype(np.float64).copy()
    last_occ = np.zeros(M, bool)
    for k in range(T):
        got = np.zeros(M, bool)
        msg = recorder.messages.get(k)
        if msg is not None and len(msg.ids):
            rows = np.array([adder.ids.get(int(i), -1) for i in msg.ids])
            keep = rows >= 0
            rows = rows[keep]
            last_xy[rows] = np.stack([np.asarray(msg.x), np.asarray(msg.y)], axis=1)[keep]
            last_occ[rows] = ~np.asarray(msg.visible, bool)[keep]
            got[rows] = True
        after = k > qt
        tracks[after, k] = last_xy[after]
        occluded[after, k] = last_occ[after]
        held[:, k] = after & ~got
    return tracks, occluded, held


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
    from taptr_ros.eval.bag_eval import EvalOptions, _choose_queries
    from taptr_ros.eval.bag_truth import truth_from_bag, truth_from_pickle
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
        queries, source = _choose_queries(
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
    return _report(bag, topic, T, size_hw, stamps, truth, queries, source, run, options, out_dir)


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

    from taptr_ros.ros.client import ClientError, TrackerClient
    from taptr_ros.ros.services import ns_to_time

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
        start_wall, t0 = time.perf_counter(), int(stamps[0])
        with BagReader(bag) as reader:
            for k, (_log_ns, _msg, raw) in enumerate(reader._messages(topic)):
                if not options.sync:
                    delay = start_wall + (int(stamps[k]) - t0) / 1e9 / options.rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                if clock_pub is not None:
                    clock_pub.publish(Clock(clock=ns_to_time(int(stamps[k]))))
                sent[k] = time.perf_counter()
                image_pub.publish(raw)
                rows = by_frame.get(k)
                if options.sync:
                    recorder.wait_frame(k, options.drain_s)
                    if rows is not None:
                        adder.add(k, rows, queries[rows, 1:])
                elif rows is not None:
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


def _report(
    bag: Path,
    topic: str,
    T: int,
    size_hw: tuple[int, int],
    stamps: np.ndarray,
    truth: Any,
    queries: np.ndarray,
    source: str,
    run: dict[str, Any],
    options: PlayOptions,
    out_dir: str | os.PathLike[str] | None,
) -> PlayResult:
    from taptr_ros.eval import bag_report
    from taptr_ros.eval.runner import evaluate_dataset

    recorder, adder, sent = run["recorder"], run["adder"], run["sent"]
    answered = sorted(recorder.arrivals)
    latency = np.array([1000.0 * (recorder.arrivals[k] - sent[k]) for k in answered])
    tracks, occluded, held = _predictions(recorder, adder, queries, T)
    data: dict[str, Any] = {
        "bag": str(bag),
        "image_topic": topic,
        "num_frames": T,
        "width": size_hw[1],
        "height": size_hw[0],
        "mode": "sync" if options.sync else "live",
        "rate": options.rate,
        "tracker": options.tracker,
        "ground_truth": truth.source if truth is not None else None,
        "num_queries": int(len(queries)),
        "queries_source": source,
        "frames_published": T,
        "frames_answered": len(answered),
        "frames_dropped": T - len(answered),
        "publish_fps": T / run["publish_seconds"] if run["publish_seconds"] else 0,
        "latency_ms": (
            {
                "mean": float(latency.mean()),
                "p50": float(np.percentile(latency, 50)),
                "p90": float(np.percentile(latency, 90)),
                "p99": float(np.percentile(latency, 99)),
                "max": float(latency.max()),
            }
            if len(latency)
            else {}
        ),
        "queries": {
            "added": len(adder.added_at) - adder.late,
            "late": adder.late,
            "failed": adder.failed,
            "messages": adder.messages[:10],
        },
        "held_point_frames": int(held.sum()),
        "meta": {"checkpoint": options.checkpoint if options.start_node else None},
    }
    if truth is not None:
        video = truth.as_tapvid(bag.name, T, *size_hw)
        report = evaluate_dataset(
            [video],
            lambda _f, _q: (tracks, occluded, 0.0),
            "first",
            meta={"tracker": "taptr_tracker (live)", "mode": data["mode"]},
        )
        data["tapvid"] = report.to_dict()
    files: list[str] = []
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with BagWriter(out / "tracks", overwrite=True) as writer:
            writer.add_topic(RESULT_TOPIC, TRACKS_TYPE)
            for k in answered:
                writer.write_raw(
                    RESULT_TOPIC,
                    int(stamps[0] + 1e9 * (recorder.arrivals[k] - sent[0])),
                    _serialize(recorder.messages[k]),
                )
        bag_report.write_json(out / "metrics.json", data)
        files = ["tracks/", "metrics.json", "report.md"]
        text = _markdown(data)
        bag_report.atomic_write(out / "report.md", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return PlayResult(bag_report._clean(data), Path(out_dir) if out_dir is not None else None, files)


def _serialize(msg: Any) -> bytes:
    from rclpy.serialization import serialize_message

    return bytes(serialize_message(msg))


def _markdown(data: dict[str, Any]) -> str:
    lat = data["latency_ms"]
    lines = [
        f"# Live replay: {data['bag']}",
        "",
        f"- image topic `{data['image_topic']}`, {data['num_frames']} frames, rate {data['rate']:g} "
        f"({data['mode']}), tracker `{data['tracker']}`",
        f"- answered {data['frames_answered']} frames, dropped {data['frames_dropped']}; point-frames held "
        f"from an earlier frame: {data['held_point_frames']}",
        f"- queries: {data['num_queries']} ({data['queries_source']}): {data['queries']['added']} at their "
        f"frame, {data['queries']['late']} late, {data['queries']['failed']} failed",
        "",
    ]
    if lat:
        lines += [
            "| latency | mean | p50 | p90 | p99 | max |",
            "|---|---|---|---|---|---|",
            f"| ms | {lat['mean']:.1f} | {lat['p50']:.1f} | {lat['p90']:.1f} | {lat['p99']:.1f} | "
            f"{lat['max']:.1f} |",
            "",
        ]
    if data.get("tapvid"):
        o = data["tapvid"]["overall"]
        pct = lambda k: "n/a" if o.get(k) is None else f"{100 * o[k]:.1f}"  # noqa: E731
        lines += [
            "TAP-Vid (first, live; compare with `taptr bag eval` on the same bag): "
            f"AJ {pct('average_jaccard')}, <δ avg {pct('average_pts_within_thresh')}, "
            f"OA {pct('occlusion_accuracy')}",
            "",
        ]
    return "\n".join(lines)
