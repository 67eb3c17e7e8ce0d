"""``taptr bench transport``: camera frames delivered between two processes, with and without
the shipped Fast DDS profile.

For each image size, two fresh processes on a ROS domain of their own (localhost): a
subscriber (sensor-data QoS, best effort, like the node's default) that counts the frames it
receives, and a publisher that sends ``frames`` rgb8 images at ``rate`` Hz best effort once it
is matched. Run once with the profile variables set to config/fastdds_shm.xml and once with
Fast DDS's defaults (both variables unset, ``TAPTR_NO_DDS_PROFILE`` set). Each run needs fresh
processes: Fast DDS reads the profile once, when a process's first context starts.

Result: frames received / frames sent per (size, profile). Measured on this machine it is the
whole reason for the profile (see the README's "Whole frames between processes").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from taptr_ros.resources import (
    DDS_PROFILE_OPT_OUT,
    DDS_PROFILE_VARIABLES,
    set_dds_profile,
)
from taptr_ros.ros.tools.child_node import isolate_ros_domain, stop_node

TOPIC = "/taptr_bench_transport/image"


@dataclass(frozen=True)
class TransportRun:
    """Frames sent and received for one image size (width x height pixels) and profile."""

    width: int
    height: int
    rate_hz: float
    profile: bool
    sent: int
    received: int

    @property
    def delivered(self) -> float:
        return self.received / self.sent if self.sent else 0.0


def _env(profile: bool) -> dict[str, str]:
    env = dict(os.environ)
    for name in (*DDS_PROFILE_VARIABLES, DDS_PROFILE_OPT_OUT):
        env.pop(name, None)
    if profile:
        set_dds_profile(env)
    else:
        env[DDS_PROFILE_OPT_OUT] = "1"
    return env


def run_transport(width: int, height: int, *, rate_hz: float = 30.0, frames: int = 150,
                  profile: bool = True, timeout_s: float = 60.0) -> TransportRun:
    """One publisher/subscriber pair of fresh processes (see the module docstring)."""
    isolate_ros_domain()
    env = _env(profile)
    with tempfile.TemporaryDirectory(prefix="taptr_transport_") as tmp:
        count_file = Path(tmp) / "count"
        ready_file = Path(tmp) / "ready"
        me = [sys.executable, "-m", "taptr_ros.ros.tools.bench_transport"]
        with open(Path(tmp) / "sub.log", "wb") as log:
            sub = subprocess.Popen([*me, "--subscribe", str(count_file), str(ready_file)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout_s
            while not ready_file.exists():
                if sub.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the subscriber did not start: "
                                       + (Path(tmp) / "sub.log").read_text(errors="replace")[-2000:])
                time.sleep(0.05)
            pub = subprocess.run([*me, "--publish", str(width), str(height), str(rate_hz), str(frames)],
                                 env=env, capture_output=True, text=True, timeout=timeout_s + frames / rate_hz)
            if pub.returncode != 0:
                raise RuntimeError(f"the publisher failed: {pub.stderr[-2000:]}")
            sent = int(pub.stdout.strip().splitlines()[-1])
            time.sleep(1.0)  # frames in flight
        finally:
            stop_node(sub)
        received = int(count_file.read_text()) if count_file.exists() else 0
    return TransportRun(width, height, rate_hz, profile, sent, received)


def _subscribe(count_file: Path, ready_file: Path) -> None:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("transport_sink")
    count = [0]

    def on_image(raw: bytes) -> None:
        count[0] += 1
        count_file.write_text(str(count[0]))  # kept even if the process must be killed at the end

    node.create_subscription(Image, TOPIC, on_image, qos_profile_sensor_data, raw=True)
    ready_file.write_text("1")
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        count_file.write_text(str(count[0]))
        rclpy.try_shutdown()


def _publish(width: int, height: int, rate_hz: float, frames: int) -> int:
    import numpy as np
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("transport_source")
    pub = node.create_publisher(Image, TOPIC, qos_profile_sensor_data)
    deadline = time.monotonic() + 30.0
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # discovery of the other direction settles
    msg = Image(width=width, height=height, encoding="rgb8", step=3 * width)
    msg.data = np.random.default_rng(0).integers(0, 255, 3 * width * height, dtype=np.uint8).tobytes()
    start = time.monotonic()
    for i in range(frames):
        while time.monotonic() < start + i / rate_hz:
            time.sleep(0.001)
        msg.header.stamp.nanosec = i
        pub.publish(msg)
    node.destroy_node()
    rclpy.try_shutdown()
    return frames


def format_transport(runs: list[TransportRun]) -> str:
    """A table: one row per size, delivered frames without and with the profile."""
    lines = ["| image | rate | without profile | with config/fastdds_shm.xml |", "|---|---|---|---|"]
    sizes = sorted({(r.width, r.height) for r in runs})
    for w, h in sizes:
        cells = {r.profile: f"{r.received}/{r.sent} ({100 * r.delivered:.0f}%)"
                 for r in runs if (r.width, r.height) == (w, h)}
        rate = next(r.rate_hz for r in runs if (r.width, r.height) == (w, h))
        lines.append(f"| {w}x{h} rgb8 | {rate:g} Hz | {cells.get(False, '-')} | {cells.get(True, '-')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Child entry points (``--subscribe COUNT READY``, ``--publish W H RATE N``)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribe", nargs=2, metavar=("COUNT_FILE", "READY_FILE"))
    parser.add_argument("--publish", nargs=4, metavar=("W", "H", "RATE", "FRAMES"))
    args = parser.parse_args(argv)
    if args.subscribe:
        _subscribe(Path(args.subscribe[0]), Path(args.subscribe[1]))
        return 0
    if args.publish:
        w, h, rate, n = args.publish
        print(_publish(int(w), int(h), float(rate), int(n)), flush=True)
        return 0
    parser.error("give --subscribe or --publish (or use `taptr bench transport`)")
    return 2


def runs_to_json(runs: list[TransportRun]) -> str:
    """The runs as indented JSON, each with its delivered share."""
    return json.dumps([{**asdict(r), "delivered": r.delivered} for r in runs], indent=1)


if __name__ == "__main__":
    raise SystemExit(main())
