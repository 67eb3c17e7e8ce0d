"""`colcon build` builds the package the way a robot does, here from the venv alone.

The repository's files (tracked, and untracked but not ignored) are copied into a fresh
workspace; colcon-core/colcon-cmake/colcon-ros from the venv build it against the ROS 2
wheels' CMake configs (AMENT_PREFIX_PATH = CMAKE_PREFIX_PATH = the venv, no ROS install).
Then a fresh process that sources the install space's setup script imports the interfaces
and our Python package from the install space, and reads the installed config; then the
installed ``taptr_tracker`` starts from the install space's environment, outside the source
tree, with ``checkpoint: default`` (the model installed under share/taptr_ros/models), takes
frames and publishes tracks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)

pytestmark = pytest.mark.slow

# Runs in the install space's environment; prints where everything came from as JSON.
PROBE = r"""
import json, sys
import taptr_ros
from taptr_ros.msg import TrackedPoints
from taptr_ros.srv import AddPoints, RemovePoints
from taptr_ros.messages import raw_image
import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from ament_index_python.packages import get_package_share_directory

msg = TrackedPoints(width=3, height=4, ids=[7, 8])
assert deserialize_message(serialize_message(msg), TrackedPoints).ids.tolist() == [7, 8]
image = raw_image.numpy_to_image(np.zeros((4, 3, 3), np.uint8), "rgb8", step=10)
assert raw_image.image_to_numpy(image).shape == (4, 3, 3)
AddPoints.Response(ids=[1], success=True); RemovePoints.Request(all=True)

import rclpy
from rclpy.context import Context
share = get_package_share_directory("taptr_ros")
context = Context()  # the installed params file must parse (keyed /**/taptr_tracker)
rclpy.init(args=["probe", "--ros-args", "--params-file", share + "/config/tracker.yaml"],
           context=context)
rclpy.try_shutdown(context=context)

typesupport = "taptr_ros.taptr_ros_s__rosidl_typesupport_c"
with open("/proc/self/maps") as maps:
    libraries = sorted({line.split()[-1] for line in maps if "libtaptr_ros__" in line})
print(json.dumps({
    "version": getattr(taptr_ros, "__version__", None),
    "msg": sys.modules["taptr_ros.msg._tracked_points"].__file__,
    "srv": sys.modules["taptr_ros.srv._add_points"].__file__,
    "raw_image": raw_image.__file__,
    "typesupport": sys.modules[typesupport].__file__,
    "libraries": libraries,
    "share": share,
}))
"""


def _copy_sources(destination: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for relative in filter(None, listed):
        source = REPO_ROOT / relative
        if source.is_file():  # listed but deleted in the working tree: skip
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def test_colcon_build_installs_interfaces_executables_launch_config(tmp_path: Path, ros_isolation) -> None:
    if shutil.which("colcon", path=str(VENV / "bin")) is None:
        pytest.fail(f"colcon is missing from {VENV}/bin: run `make setup`")
    workspace = tmp_path / "ws"
    _copy_sources(workspace / "src" / "taptr_ros")
    env = dict(os.environ)
    env.update(AMENT_PREFIX_PATH=str(VENV), CMAKE_PREFIX_PATH=str(VENV), VIRTUAL_ENV=str(VENV),
               PATH=f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
               COLCON_HOME=str(tmp_path / "colcon_home"))
    build = subprocess.run(
        [str(VENV / "bin" / "colcon"), "--log-base", "log", "build", "--event-handlers",
         "console_direct+"],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, (build.stdout + build.stderr)[-6000:]

    prefix = workspace / "install" / "taptr_ros"
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = prefix / "lib" / python / "site-packages"
    for path in ("taptr_ros/msg/_tracked_points.py", "taptr_ros/srv/_add_points.py",
                 "taptr_ros/srv/_remove_points.py", "taptr_ros/__init__.py",
                 "taptr_ros/messages/raw_image.py", "taptr_ros/messages/tracks.py"):
        assert (site / path).is_file(), path
    for executable in ("taptr_tracker", "taptr"):
        path = prefix / "lib" / "taptr_ros" / executable
        assert path.is_file() and os.access(path, os.X_OK), path
    share = prefix / "share" / "taptr_ros"
    assert (share / "launch" / "tracker.launch.py").is_file()
    assert (share / "config" / "tracker.yaml").is_file()
    assert (share / "msg" / "TrackedPoints.msg").is_file()
    index = prefix / "share" / "ament_index" / "resource_index"
    assert (index / "packages" / "taptr_ros").is_file()
    assert (index / "rosidl_interfaces" / "taptr_ros").is_file()

    # A fresh process in the install space's environment, as on a robot after
    # `. install/setup.sh`. The venv holds its own build of our interfaces (`make setup`):
    # everything must come from the install space instead.
    probe_env = dict(env)
    probe_env.pop("PYTHONPATH", None)
    probe = subprocess.run(
        ["bash", "-c", f'. "{workspace}/install/setup.sh" && exec "{sys.executable}" -c "$0"',
         PROBE],
        cwd=tmp_path, env=probe_env, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert found["version"] is not None, "our __init__.py was replaced by rosidl's"
    for key in ("msg", "srv", "raw_image", "typesupport"):
        assert Path(found[key]).is_relative_to(site), (key, found[key])
    assert found["libraries"], "no libtaptr_ros__*.so was loaded"
    for library in found["libraries"]:
        assert Path(library).is_relative_to(prefix / "lib"), library
    assert Path(found["share"]) == share

    # The installed node, started as a robot would after sourcing the install space, from a
    # directory outside any source tree, on the default model: it must find
    # share/taptr_ros/models/default.pt and track.
    assert (share / "models" / "default.pt").is_file()
    node_env = dict(probe_env)
    node_env.pop("TAPTR_DEFAULT_CHECKPOINT", None)
    node_env["PYTHONUNBUFFERED"] = "1"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    command = (f'. "{workspace}/install/setup.sh" && exec "{prefix}/lib/taptr_ros/taptr_tracker" '
               "--ros-args -p checkpoint:=default -p device:=cpu -p qos:=reliable -p cpu_threads:=1 "
               "-r __ns:=/colcon -r image:=/colcon/image")
    log_path = tmp_path / "installed_node.log"
    with open(log_path, "wb") as log:
        node = subprocess.Popen(["bash", "-c", command], cwd=outside, env=node_env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _track_through(node, log_path)
        assert f"from {share / 'models' / 'default.pt'}" in log_path.read_text(), log_path.read_text()
    finally:
        from taptr_ros.ros.tools.child_node import stop_node
        stop_node(node)


def _track_through(node: subprocess.Popen, log_path: Path) -> None:
    """Feed the node 3 frames, add 2 points, feed 3 more: tracks for each frame, with the points."""
    import numpy as np

    from taptr_ros.messages.tracks import unpack_tracks
    from taptr_ros.ros.tools.client import RELIABLE, TrackerClient

    client = TrackerClient(tracker="/colcon/taptr_tracker", image_topic="/colcon/image",
                           image_qos=RELIABLE, node_name="colcon_client")
    try:
        client.wait_until_ready(180, is_alive=lambda: node.poll() is None)
        frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
        ids: list[int] = []
        for i in range(6):
            stamp = 1_000_000_000 + i * 50_000_000
            client.publish_frame(frame, stamp)
            assert client.wait_for(lambda: client.tracks_for(stamp) is not None, 60), \
                log_path.read_text()[-3000:]
            assert sorted(unpack_tracks(client.tracks_for(stamp)).ids.tolist()) == sorted(ids)
            if i == 2:
                response = client.add_points([40.0, 100.0], [30.0, 80.0])
                assert response.success, response.message
                ids = list(response.ids)
    finally:
        client.close()
