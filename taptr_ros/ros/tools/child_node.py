"""The taptr_tracker node as a child process, on a ROS domain of its own (``taptr bag play --start-node``)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from taptr_ros.resources import set_dds_profile


def isolate_ros_domain() -> dict[str, str]:
    """Put this process (and its children) on a random ROS domain, localhost only, with
    the shipped config/fastdds_shm.xml as the Fast DDS profile (both Fast DDS 2.x's and 3.x's
    variable) unless the user set one (`taptr_ros.resources.set_dds_profile`); returns the ROS
    vars. Call it before this process initialises rclpy.

    The new domain is never the one this process is on: a tool that starts its own node
    (``taptr demo``, ``taptr bag play --start-node``, ``taptr bench node``) from a shell or test
    session that already has a tracker on a random domain would otherwise share it one time
    in 101, and its requests could reach the other tracker. Fast DDS on localhost takes
    domains 0..101 (232 is the upper limit of the spec; ports run out far earlier).
    """
    current = os.environ.get("ROS_DOMAIN_ID", "0")
    choices = [d for d in range(1, 102) if str(d) != current.strip()]
    env = {
        "ROS_DOMAIN_ID": str(random.SystemRandom().choice(choices)),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
    }
    os.environ.update(env)
    for key in ("ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY"):
        os.environ.pop(key, None)
    set_dds_profile(os.environ)
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
