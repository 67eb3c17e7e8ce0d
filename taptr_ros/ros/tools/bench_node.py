"""``taptr bench node``: the node's own cost, end-to-end latency minus model time.

Starts the real ``taptr-tracker`` process (isolated like ``taptr demo``: random ROS_DOMAIN_ID,
localhost, Fast DDS shared memory for whole frames) on a checkpoint of seeded random weights
of the chosen preset, publishes synthetic 640x480 rgb8 frames at 30 Hz from this process,
adds points through ``~/add_points`` and records when each frame's ``~/tracks`` arrive.

* end-to-end latency = tracks received - image published, per frame (perf_counter, same host);
* model time = the node's ``model_ms`` in /diagnostics (the engine's push: preprocessing,
  encoder, decoder, results), averaged over the measured frames;
* node overhead = mean end-to-end latency - mean model time: DDS both ways, image
  conversion, the hand-over to the inference thread, TrackedPoints packing, publishing.

By default at most one frame is in flight (the next one is published on the 30 Hz clock, or
as soon as the previous frame's tracks are back if the model is slower): no frame then waits
in the node for the previous one, so the overhead is not inflated by queueing. ``open_loop``
publishes on the clock regardless (the node drops frames when the model is slower; their
wait is then part of the latency, and drops are reported).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from taptr_ros.bench.common import (
    BenchError,
    build_model,
    format_table,
    synthetic_frames,
)
from taptr_ros.model.checkpoint import save_checkpoint
from taptr_ros.ros.diagnostics import diagnostics_values
from taptr_ros.ros.services import stamp_to_ns
from taptr_ros.ros.tools.child_node import isolate_ros_domain
from taptr_ros.ros.tools.client import ClientError, TrackerClient
from taptr_ros.ros.tools.demo import _stop, grid_points

NAMESPACE = "/taptr_bench"
IMAGE_TOPIC = f"{NAMESPACE}/camera/image"
START_NS = 1_000_000_000
OVERHEAD_TARGET_MS = 5.0
DIAGNOSTICS_PERIOD_S = 0.5  # the node's model time comes from /diagnostics, this often


@dataclass(frozen=True)
class NodeBenchOptions:
    """What ``taptr bench node`` runs.

    Attributes:
        preset: network preset (a small one keeps the model time under the 33 ms frame period).
        input_hw: network input (height, width); None = the preset's.
        image_hw: camera frame (height, width) published.
        rate: frames per second published.
        frames: frames measured (after `warmup` frames).
        warmup: frames published first and not measured (window fill, allocations).
        points: points added at the first frame (a grid).
        mode: the node's mode.
        open_loop: publish on the clock even if the previous frame is not answered yet.
        device: the node's device parameter.
        threads: the node's cpu_threads parameter (0 = torch's default).
        pipeline: the node's pipeline parameter (encode the next frame while one is decoded;
            raises the fps only in open loop, where the next frame does not wait for the answer).
        window_passes: the node's window_passes parameter (decoder passes per window; 0 = the
            checkpoint's).
        ready_timeout: seconds to wait for the node to come up.
        checkpoint: weights to load; None = seeded random weights of `preset` (saved to a
            temporary file).
    """

    preset: str = "tiny"
    input_hw: tuple[int, int] | None = (64, 64)
    image_hw: tuple[int, int] = (480, 640)
    rate: float = 30.0
    frames: int = 300
    warmup: int = 20
    points: int = 49
    mode: str = "immediate"
    open_loop: bool = False
    device: str = "auto"
    threads: int = 1
    pipeline: bool = True
    window_passes: int = 0
    ready_timeout: float = 180.0
    checkpoint: Path | None = None


@dataclass
class NodeBenchResult:
    """What ``taptr bench node`` measured: frames published/answered, end-to-end latencies (ms),
    the model's own time per frame (ms) and the node's share beyond it."""
    options: NodeBenchOptions
    published: int = 0
    answered: int = 0
    seconds: float = 0.0
    latency_ms: list[float] = field(default_factory=list)
    model_ms: float | None = None
    node_latency_ms: float | None = None
    dropped: int | None = None
    node_log_tail: str = ""

    def summary(self) -> dict[str, float | None]:
        """Means and percentiles in ms and the fps; None where nothing was measured."""
        lat = self.latency_ms
        mean = statistics.fmean(lat) if lat else None
        return {
            "e2e_mean_ms": mean,
            "e2e_p50_ms": float(np.percentile(lat, 50)) if lat else None,
            "e2e_p95_ms": float(np.percentile(lat, 95)) if lat else None,
            "model_ms": self.model_ms,
            "node_internal_ms": self.node_latency_ms,
            "overhead_ms": None if mean is None or self.model_ms is None else mean - self.model_ms,
            "fps": self.answered / self.seconds if self.seconds else None,
        }

    def to_dict(self) -> dict:
        """Plain JSON-ready dict with the `summary`."""
        out = asdict(self)
        out["options"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in out["options"].items()}
        out["summary"] = self.summary()
        return out


def _node_command(options: NodeBenchOptions, checkpoint: Path) -> list[str]:
    script = Path(sys.executable).parent / "taptr-tracker"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "taptr_ros.ros.node"]
    params = {"checkpoint": str(checkpoint), "device": options.device, "mode": options.mode,
              "max_points": max(1, options.points), "overlay": "false",
              "diagnostics_period": str(DIAGNOSTICS_PERIOD_S),
              "cpu_threads": options.threads, "pipeline": str(options.pipeline).lower(),
              "window_passes": options.window_passes}
    if options.input_hw is not None:
        params["input_height"], params["input_width"] = options.input_hw
    command += ["--ros-args"]
    for key, value in params.items():
        command += ["-p", f"{key}:={value}"]
    return command + ["-r", f"__ns:={NAMESPACE}", "-r", f"image:={IMAGE_TOPIC}"]


def run_node_bench(options: NodeBenchOptions, *, log: Callable[[str], None] = print) -> NodeBenchResult:
    """Run the node, play the stream, measure.

    Raises:
        BenchError: the node does not start, or answers no frame.
    """
    result = NodeBenchResult(options)
    isolate_ros_domain()
    with tempfile.TemporaryDirectory(prefix="taptr_bench_node_") as tmp:
        checkpoint = options.checkpoint
        if checkpoint is None:
            checkpoint = Path(tmp) / f"{options.preset}_random.pt"
            save_checkpoint(checkpoint, build_model(options.preset, device=torch.device("cpu")),
                            metadata={"note": "seeded random weights for taptr bench node"})
        node_log = Path(tmp) / "node.log"
        with open(node_log, "wb") as sink:
            process = subprocess.Popen(_node_command(options, checkpoint), stdout=sink,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        client = None
        try:
            client = TrackerClient(tracker=f"{NAMESPACE}/taptr_tracker", image_topic=IMAGE_TOPIC,
                                   diagnostics=True, node_name="taptr_bench_player")
            try:
                client.wait_until_ready(options.ready_timeout, is_alive=lambda: process.poll() is None)
            except ClientError as exc:
                raise BenchError(f"{exc}; the node said: {_tail(node_log)}") from exc
            log("node ready; playing")
            _play(client, options, result, log)
        finally:
            if client is not None:
                client.close()
            _stop(process)
            result.node_log_tail = _tail(node_log, 5)
    if not result.latency_ms:
        raise BenchError(f"no frame was answered; the node said: {result.node_log_tail}")
    return result


def _play(client: TrackerClient, options: NodeBenchOptions, result: NodeBenchResult, log) -> None:
    h, w = options.image_hw
    frames = synthetic_frames(32, h, w)
    period_ns = int(round(1e9 / options.rate))
    total = options.warmup + options.frames
    stamps = [START_NS + i * period_ns for i in range(total)]
    sent: dict[int, float] = {}

    def answered(stamp: int) -> Callable[[], bool]:
        return lambda: client.tracks_for(stamp) is not None

    # first frame, then the points (a grid) at it
    for attempt in range(20):  # best effort QoS: the very first frames may precede matching
        sent[stamps[0]] = client.publish_frame(frames[0], stamps[0])
        if client.wait_for(answered(stamps[0]), 3.0):
            break
    else:
        raise BenchError("the node answered none of the first frames")
    if options.points:
        side = max(1, int(round(options.points ** 0.5)))
        xs, ys = grid_points(w, h, side)
        response = client.add_points(xs[:options.points], ys[:options.points])
        if not response.success:
            raise BenchError(f"add_points refused: {response.message}")
    measured_from = None
    t0 = time.perf_counter()
    for i in range(1, total):
        if i == options.warmup:
            measured_from = time.perf_counter()
            t0 = measured_from - i / options.rate
        time.sleep(max(0.0, t0 + i / options.rate - time.perf_counter()))
        count = len(client.tracks)
        sent[stamps[i]] = client.publish_frame(frames[i % len(frames)], stamps[i])
        if not options.open_loop:
            # cheap poll (a length, no scan, GIL released between polls): the receiving thread
            # stamps the arrival time itself, this loop only waits for it
            client.wait_for(lambda: len(client.tracks) > count, 5.0, 0.0002)
    end = time.perf_counter()
    client.wait_for(answered(stamps[-1]), 5.0)
    time.sleep(1.2)  # one more diagnostics period
    measured = set(stamps[options.warmup:])
    arrivals = {}
    for received in client.snapshot(client.tracks):
        stamp = stamp_to_ns(received.msg.header.stamp)
        if stamp in measured and stamp not in arrivals:
            arrivals[stamp] = received.time
    result.published = len(measured)
    result.answered = len(arrivals)
    result.seconds = end - measured_from
    result.latency_ms = [1e3 * (arrivals[s] - sent[s]) for s in sorted(arrivals)]
    # /diagnostics periods that saw frames: those starting after the warm-up if any (a short
    # stream, faster than one period, may have none), else those ending after it
    received = [(r.time, diagnostics_values(r.msg)) for r in client.snapshot(client.diagnostics)
                if r.time > measured_from]
    received = [(t, p) for t, p in received if float(p.get("fps", 0)) > 0]
    periods = [p for t, p in received if t > measured_from + DIAGNOSTICS_PERIOD_S] or [p for _, p in received]
    if periods:
        weights = [float(p["fps"]) for p in periods]
        result.model_ms = float(np.average([float(p["model_ms"]) for p in periods], weights=weights))
        result.node_latency_ms = float(np.average([float(p["latency_ms"]) for p in periods], weights=weights))
        result.dropped = int(periods[-1]["frames_dropped"])
    log(f"{result.answered}/{result.published} frames answered in {result.seconds:.1f} s")


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return "(no log)"
    return " / ".join(text) or "(nothing)"


def format_node_tables(result: NodeBenchResult) -> str:
    """The terminal tables of a node benchmark (latencies in ms, fps, node overhead)."""
    o = result.options
    s = result.summary()
    hw = "preset default" if o.input_hw is None else f"{o.input_hw[1]}x{o.input_hw[0]}"
    lines = [f"# taptr bench node: {o.preset} at {hw}, camera {o.image_hw[1]}x{o.image_hw[0]} rgb8 at "
             f"{o.rate:g} Hz ({'open loop' if o.open_loop else 'at most one frame in flight'}), "
             f"{o.points} points, mode {o.mode}, pipeline {'on' if o.pipeline else 'off'}, "
             f"{o.threads or 'default'} thread(s), device {o.device}, "
             f"window passes {o.window_passes or 'of the checkpoint'}",
             f"{result.answered}/{result.published} measured frames answered, {s['fps']:.1f} fps, "
             f"node dropped {result.dropped if result.dropped is not None else '?'} frames in total", ""]
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    verdict = "-" if s["overhead_ms"] is None else \
        ("ok" if s["overhead_ms"] <= OVERHEAD_TARGET_MS else "MISS")
    lines.append(format_table(
        ["e2e mean ms", "e2e p50", "e2e p95", "model ms (node)", "in-node ms", "overhead ms (e2e - model)",
         f"target <= {OVERHEAD_TARGET_MS:g} ms"],
        [[fmt(s["e2e_mean_ms"]), fmt(s["e2e_p50_ms"]), fmt(s["e2e_p95_ms"]), fmt(s["model_ms"]),
          fmt(s["node_internal_ms"]), fmt(s["overhead_ms"]), verdict]]))
    lines += ["", "in-node ms: image callback entered -> tracks published (the node's /diagnostics "
                  "latency_ms); e2e - in-node = DDS transport both ways and deserialisation."]
    return "\n".join(lines)
