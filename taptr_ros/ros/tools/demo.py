"""The demo behind ``taptr demo``: the real node, a video played into it, points by service.

Starts ``taptr-tracker`` as a process (isolated: a random ROS_DOMAIN_ID, localhost only),
plays a video's frames into it over rclpy, adds a grid of points through ``~/add_points`` at
the first frame, a few more mid-stream at an older stamp, removes some later, records
``~/tracks`` and ``~/overlay``, and writes:

* ``demo_overlay.mp4``: the node's overlay images, in frame order;
* ``demo_tracks.npz``: ``ids`` (N,), ``stamps_ns`` (T,), ``xy`` (T, N, 2) pixels and
  ``visible`` (T, N), NaN / False where a point was not tracked;
* ``demo_summary.json``: frames, points, fps, latency and the node's own timings;
* ``demo_node.log``: the node's output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taptr_ros.data.video import read_video, write_video
from taptr_ros.messages.raw_image import image_to_numpy
from taptr_ros.messages.tracks import unpack_tracks
from taptr_ros.ros.diagnostics import diagnostics_values
from taptr_ros.ros.services import stamp_to_ns
from taptr_ros.ros.tools.child_node import isolate_ros_domain
from taptr_ros.ros.tools.client import RELIABLE, ClientError, TrackerClient

NAMESPACE = "/taptr_demo"
IMAGE_TOPIC = f"{NAMESPACE}/camera/image"
START_NS = 1_000_000_000


class DemoError(RuntimeError):
    """The demo cannot run or did not complete; the message says why and what to do."""


@dataclass(frozen=True)
class DemoOptions:
    """What ``taptr demo`` runs (see its --help)."""

    checkpoint: Path
    video: Path
    out: Path
    device: str = "auto"
    grid: int = 6
    max_frames: int | None = None
    rate: float = 0.0  # frames per second; 0 = lockstep (every frame tracked)
    params_file: Path | None = None
    ready_timeout: float = 180.0


def grid_points(width: int, height: int, n: int) -> tuple[list[float], list[float]]:
    """An n x n grid of pixel positions inside a width x height image (margins of 1/(2n))."""
    xs = (np.arange(n) + 0.5) / n * (width - 1)
    ys = (np.arange(n) + 0.5) / n * (height - 1)
    gx, gy = np.meshgrid(xs, ys)
    return gx.ravel().tolist(), gy.ravel().tolist()


def _node_command(options: DemoOptions) -> list[str]:
    script = Path(sys.executable).parent / "taptr-tracker"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "taptr_ros.ros.node"]
    command += ["--ros-args"]
    if options.params_file is not None:
        command += ["--params-file", str(options.params_file)]
    return command + ["-p", f"checkpoint:={options.checkpoint}", "-p", f"device:={options.device}",
                      "-p", "qos:=reliable", "-r", f"__ns:={NAMESPACE}",
                      "-r", f"image:={IMAGE_TOPIC}"]


def _stop(process: subprocess.Popen) -> int:
    """SIGINT (rclpy catches SIGTERM), then SIGKILL after 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    return process.wait()


def run_demo(options: DemoOptions, *, log=print) -> dict:
    """Run the demo; returns the summary written to demo_summary.json.

    Raises:
        DemoError: missing checkpoint or video, a node that does not start or stops answering.
    """
    if not options.checkpoint.is_file():
        raise DemoError(f"checkpoint {options.checkpoint} does not exist")
    frames, fps = read_video(options.video, max_frames=options.max_frames)
    fps = fps or 30.0
    height, width = frames.shape[1:3]
    options.out.mkdir(parents=True, exist_ok=True)
    isolation = isolate_ros_domain()
    log(f"taptr demo: {len(frames)} frames {width}x{height} of {options.video}, checkpoint "
        f"{options.checkpoint}, ROS_DOMAIN_ID={isolation['ROS_DOMAIN_ID']} (localhost only)")
    node_log = options.out / "demo_node.log"
    with open(node_log, "wb") as sink:
        process = subprocess.Popen(_node_command(options), stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    client = None
    try:
        client = TrackerClient(tracker=f"{NAMESPACE}/taptr_tracker", image_topic=IMAGE_TOPIC,
                               image_qos=RELIABLE, overlay=True, diagnostics=True,
                               node_name="taptr_demo_player")
        started = time.perf_counter()
        try:
            client.wait_until_ready(options.ready_timeout, is_alive=lambda: process.poll() is None)
        except ClientError as exc:
            tail = node_log.read_text(errors="replace").strip().splitlines()[-3:]
            raise DemoError(f"{exc}; the node said: {' / '.join(tail) or '(nothing)'}") from exc
        log(f"node ready after {time.perf_counter() - started:.1f} s; playing "
            + ("in lockstep" if options.rate <= 0 else f"at {options.rate:g} Hz"))
        events = _play(client, frames, fps, options, log)
        summary = _record(client, frames, fps, options, events)
    finally:
        if client is not None:
            client.close()
        rc = _stop(process)
    summary["node_exit_code"] = rc
    (options.out / "demo_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _play(client: TrackerClient, frames: np.ndarray, fps: float, options: DemoOptions,
          log) -> dict:
    """Publish every frame (lockstep or at options.rate); add and remove points on the way."""
    height, width = frames.shape[1:3]
    period_ns = int(round(1e9 / fps))
    stamps = [START_NS + i * period_ns for i in range(len(frames))]
    events = {"stamps": stamps, "sent": {}, "added": [], "removed": []}
    t0 = time.perf_counter()
    for i, (frame, stamp) in enumerate(zip(frames, stamps)):
        if options.rate > 0:
            time.sleep(max(0.0, t0 + i / options.rate - time.perf_counter()))
        events["sent"][stamp] = client.publish_frame(frame, stamp)
        if options.rate <= 0 or i == 0:
            if not client.wait_for(lambda: client.tracks_for(stamp) is not None, 60.0):
                raise DemoError(f"no tracks for frame {i} within 60 s: see demo_node.log")
        if i == 0:  # a grid at the first frame
            xs, ys = grid_points(width, height, options.grid)
            _add(client, xs, ys, stamp, events, log, "grid")
        elif i == len(frames) // 3 and i >= 2:  # three points at the frame two before
            xs = [0.25 * (width - 1), 0.5 * (width - 1), 0.75 * (width - 1)]
            ys = [0.4 * (height - 1)] * 3
            _add(client, xs, ys, stamps[i - 2], events, log, "late, at an older stamp")
        elif i == 2 * len(frames) // 3 and events["added"]:
            victims = [int(v) for v in events["added"][0]["ids"][::options.grid + 1]]
            response = client.remove_points(victims)
            if not response.success:
                raise DemoError(f"remove_points refused: {response.message}")
            events["removed"].append({"frame": i, "ids": list(response.removed)})
            log(f"frame {i}: removed points {list(response.removed)} (the grid's diagonal)")
    events["seconds"] = time.perf_counter() - t0
    last = stamps[-1]
    client.wait_for(lambda: client.tracks_for(last) is not None, 30.0)
    client.wait_for(lambda: _overlay_for(client, last) is not None, 5.0)

    def counted() -> bool:  # diagnostics that include every frame (published at 1 Hz)
        received = client.snapshot(client.diagnostics)
        values = diagnostics_values(received[-1].msg) if received else {}
        return int(values.get("frames_received", -1)) >= len(stamps)

    client.wait_for(counted, 3.0)
    return events


def _add(client: TrackerClient, xs, ys, stamp: int, events: dict, log, what: str) -> None:
    index = events["stamps"].index(stamp)
    response = client.add_points(xs, ys, stamp_ns=stamp)
    if not response.success:
        raise DemoError(f"add_points refused: {response.message}")
    events["added"].append({"frame": index, "ids": list(response.ids), "what": what})
    log(f"frame {index}: added {len(response.ids)} points ({what}), ids "
        f"{response.ids[0]}..{response.ids[-1]}")


def _overlay_for(client: TrackerClient, stamp: int):
    for received in reversed(client.snapshot(client.overlays)):
        if stamp_to_ns(received.msg.header.stamp) == stamp:
            return received.msg
    return None


def _record(client: TrackerClient, frames: np.ndarray, fps: float, options: DemoOptions,
            events: dict) -> dict:
    """Write the overlay video and the tracks; return the summary."""
    stamps = events["stamps"]
    index = {s: i for i, s in enumerate(stamps)}
    tracks = {}
    latencies = []
    for received in client.snapshot(client.tracks):
        stamp = stamp_to_ns(received.msg.header.stamp)
        if stamp in index:
            tracks[stamp] = unpack_tracks(received.msg)
            latencies.append(1e3 * (received.time - events["sent"][stamp]))
    overlays = {stamp_to_ns(r.msg.header.stamp): r.msg for r in client.snapshot(client.overlays)}
    video, previous, missing = [], frames[0], 0
    for stamp, frame in zip(stamps, frames):
        if stamp in overlays:
            previous = image_to_numpy(overlays[stamp])
        else:
            missing += 1  # dropped by the node (rate mode): hold the last overlay
        video.append(previous)
    write_video(options.out / "demo_overlay.mp4", video, fps)

    ids = np.array(sorted({int(i) for t in tracks.values() for i in t.ids}), np.uint32)
    column = {int(i): k for k, i in enumerate(ids)}
    xy = np.full((len(stamps), len(ids), 2), np.nan, np.float32)
    visible = np.zeros((len(stamps), len(ids)), bool)
    for stamp, t in tracks.items():
        cols = [column[int(i)] for i in t.ids]
        xy[index[stamp], cols] = np.stack((t.x, t.y), axis=1)
        visible[index[stamp], cols] = t.visible
    np.savez_compressed(options.out / "demo_tracks.npz", ids=ids, stamps_ns=np.array(stamps),
                        xy=xy, visible=visible)

    every = [diagnostics_values(r.msg) for r in client.snapshot(client.diagnostics)]
    periods = [p for p in every if float(p.get("fps", 0)) > 0]
    weights = [float(p["fps"]) for p in periods]

    def node_mean(key: str) -> float | None:
        if not periods:
            return None
        return round(float(np.average([float(p[key]) for p in periods], weights=weights)), 2)

    last = every[-1] if every else {}
    lat = np.array(latencies) if latencies else np.zeros(1)
    final = tracks.get(stamps[-1])
    return {
        "video": str(options.video), "checkpoint": str(options.checkpoint),
        "device": last.get("device"), "mode": "lockstep" if options.rate <= 0 else "rate",
        "frames_published": len(stamps), "frames_tracked": len(tracks),
        "frames_without_overlay": missing, "video_fps": fps,
        "points_added": int(sum(len(a["ids"]) for a in events["added"])),
        "points_removed": int(sum(len(r["ids"]) for r in events["removed"])),
        "points_final": len(final.ids) if final is not None else None,
        "visible_final": int(final.visible.sum()) if final is not None else None,
        "playback_seconds": round(events["seconds"], 2),
        "fps": round(len(tracks) / events["seconds"], 2) if events["seconds"] else None,
        "latency_ms": {"mean": round(float(lat.mean()), 2),
                       "p50": round(float(np.percentile(lat, 50)), 2),
                       "p95": round(float(np.percentile(lat, 95)), 2),
                       "max": round(float(lat.max()), 2)},
        "node_model_ms": node_mean("model_ms"), "node_latency_ms": node_mean("latency_ms"),
        "frames_dropped": int(last["frames_dropped"]) if last else None,
        "events": {"added": events["added"], "removed": events["removed"]},
        "outputs": {name: str(options.out / name) for name in (
            "demo_overlay.mp4", "demo_tracks.npz", "demo_summary.json", "demo_node.log")},
    }
