"""Shared fixtures: ROS isolation, rclpy contexts, node processes.

Every test session talks ROS only to itself: a random ``ROS_DOMAIN_ID`` and
``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` are set in ``os.environ`` before any rclpy
context is initialised, and child processes inherit them.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

_ROS_ISOLATION = {
    "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
    # Domain ids 1..101 stay inside the ephemeral-port-safe range on Linux.
    "ROS_DOMAIN_ID": str(random.SystemRandom().randint(1, 101)),
}
_ROS_UNSET = ("ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY")


@pytest.fixture(scope="session", autouse=True)
def ros_isolation() -> Iterator[dict[str, str]]:
    """Sets the isolating ROS variables for the whole session; yields them."""
    saved = {key: os.environ.get(key) for key in (*_ROS_ISOLATION, *_ROS_UNSET)}
    os.environ.update(_ROS_ISOLATION)
    for key in _ROS_UNSET:
        os.environ.pop(key, None)
    try:
        yield dict(_ROS_ISOLATION)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch intra-op thread for a module's tests, the previous count restored after.

    Small tensors on a 2-core machine shared with other runs: one thread is several times
    faster. Not autouse: a module asks with ``pytestmark = pytest.mark.usefixtures("one_thread")``
    (a folder with an autouse fixture of its conftest that requests it). Module scope, so that
    module-scoped fixtures of those modules (models, evaluated bags) run on one thread too.
    """
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@pytest.fixture
def rclpy_context(ros_isolation: dict[str, str]) -> Iterator[Any]:
    """A fresh, initialised rclpy Context of its own (not the global one), shut down after."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)  # returns None before Kilted: no `with rclpy.init()`
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


def _spin_until(executor: Any, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Spin ``executor`` until ``predicate()`` is true or ``timeout`` seconds pass.

    Returns the last value of ``predicate()``.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        executor.spin_once(timeout_sec=0.05)
    return True


@pytest.fixture
def spin_until() -> Callable[..., bool]:
    """``spin_until(executor, predicate, timeout=10.0) -> bool`` (spins until true)."""
    return _spin_until


@dataclass
class NodeProcess:
    """A child process started by :func:`start_process`; output goes to ``log_path``."""

    popen: subprocess.Popen
    log_path: Path
    args: list[str] = field(default_factory=list)

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> bool:
        """Wait until ``text`` appears in the output; False on timeout or exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if self.popen.poll() is not None:
                return text in self.output()
            time.sleep(0.1)
        return False

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (rclpy catches SIGTERM), then SIGKILL after ``timeout`` s; returns the rc."""
        return stop_process(self.popen, timeout=timeout)


def stop_process(popen: subprocess.Popen, timeout: float = 10.0) -> int:
    """Stop a child: SIGINT, wait ``timeout`` s, then SIGKILL its process group."""
    if popen.poll() is None:
        try:
            popen.send_signal(signal.SIGINT)
            return popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(popen.pid, signal.SIGKILL)  # started with start_new_session=True
        except (ProcessLookupError, PermissionError):
            popen.kill()
    return popen.wait()


@pytest.fixture
def start_process(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., NodeProcess]]:
    """Factory: ``start_process([...args], env={...}, name="node")`` starts a child process.

    The child inherits ``os.environ`` (so the session's ROS isolation and the ROS wheels'
    ``LD_LIBRARY_PATH``) updated with ``env``; ``args[0] == "python"`` means this
    interpreter. Output goes to ``tmp_path/<name>.log``. At teardown every process still
    running is stopped with SIGINT, then SIGKILL; if the test failed, the logs are printed.
    """
    started: list[NodeProcess] = []

    def start(args: list[str], *, env: dict[str, str] | None = None, name: str = "process",
              cwd: Path | str = REPO_ROOT) -> NodeProcess:
        args = [sys.executable, *args[1:]] if args and args[0] == "python" else list(args)
        child_env = dict(os.environ)
        child_env["PYTHONUNBUFFERED"] = "1"
        child_env.update(env or {})
        log_path = tmp_path / f"{name}-{len(started)}.log"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=child_env,
                                     cwd=cwd, start_new_session=True)
        process = NodeProcess(popen, log_path, args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for process in started:
            print(f"--- {' '.join(process.args)} (rc {process.popen.returncode}) ---")
            print(process.output()[-4000:])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[Any]:
    """Keeps each phase's report on the item (``item.rep_call``) for fixtures' teardown."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# --- node tests (tests/ros/test_node_*.py) -------------------------------------------------


def _spawn(args: list[str], env: dict[str, str] | None, log_path: Path,
           cwd: Path | str) -> NodeProcess:
    """Start a child like ``start_process`` does (own session, output to ``log_path``)."""
    args = [sys.executable, *args[1:]] if args and args[0] == "python" else list(args)
    child_env = dict(os.environ)
    child_env["PYTHONUNBUFFERED"] = "1"
    child_env.update(env or {})
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=child_env,
                                 cwd=cwd, start_new_session=True)
    return NodeProcess(popen, log_path, args)


@pytest.fixture(scope="module")
def start_module_process(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
                         ) -> Iterator[Callable[..., NodeProcess]]:
    """``start_process`` for a process shared by the tests of one module.

    Stopped (SIGINT, then SIGKILL) when the module ends; if any test failed meanwhile, the
    tail of each process's output is printed.
    """
    log_dir = tmp_path_factory.mktemp("processes")
    started: list[NodeProcess] = []
    failed_before = request.session.testsfailed

    def start(args: list[str], *, env: dict[str, str] | None = None, name: str = "process",
              cwd: Path | str = REPO_ROOT) -> NodeProcess:
        process = _spawn(args, env, log_dir / f"{name}-{len(started)}.log", cwd)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
    if request.session.testsfailed > failed_before:
        for process in started:
            print(f"--- {' '.join(process.args)} (rc {process.popen.returncode}) ---")
            print(process.output()[-6000:])


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A taptr_ros checkpoint of the ``tiny`` preset with seeded random weights."""
    import torch

    from taptr_ros.model.checkpoint import save_checkpoint
    from taptr_ros.model.config import preset
    from taptr_ros.model.taptr import TAPTRv2

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("checkpoints") / "tiny.pt"
    save_checkpoint(path, TAPTRv2(preset("tiny")), metadata={"note": "random weights, tests"})
    return path


@pytest.fixture(scope="session")
def tracker_executable() -> Path:
    """The venv's ``taptr-tracker`` console script (the node as users start it)."""
    path = Path(sys.executable).parent / "taptr-tracker"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make setup` (pip install -e . creates it)")
    return path
