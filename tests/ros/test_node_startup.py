"""Starting and stopping taptr_tracker; its parameters (descriptors, validation, params file).

Failures at start must be one clear log line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import math
import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

from taptr_ros.ros.parameters import SPECS, check_value, declare_parameters

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- parameters


def test_params_file_documents_every_parameter_with_its_default() -> None:
    text = (REPO / "config" / "tracker.yaml").read_text()
    values = yaml.safe_load(text)["/**/taptr_tracker"]["ros__parameters"]
    assert list(values) == [spec.name for spec in SPECS] or set(values) == {s.name for s in SPECS}
    for spec in SPECS:
        expected = spec.default
        assert values[spec.name] == expected, spec.name
        assert type(values[spec.name]) is type(expected), spec.name  # typed ROS parameters
    for line in text.splitlines():  # a comment on every parameter line
        if line.startswith("    ") and ":" in line and not line.strip().startswith("#"):
            assert "#" in line, line


def test_every_parameter_has_a_description_and_its_constraints() -> None:
    for spec in SPECS:
        descriptor = spec.descriptor()
        assert len(descriptor.description) > 20, spec.name
        if isinstance(spec.default, int) and not isinstance(spec.default, bool):
            assert descriptor.integer_range, spec.name
        if isinstance(spec.default, float):
            assert descriptor.floating_point_range, spec.name
    dynamic = {s.name for s in SPECS if not s.read_only}
    assert dynamic == {"visibility_threshold", "overlay", "debug_delay_ms"}


def _current(values: dict):
    return lambda name: values.get(name)


@pytest.mark.parametrize("name, value, others, fragment", [
    ("device", "gpu", {}, "device must be"),
    ("device", "cuda:x", {}, "device must be"),
    ("precision", "fp8", {}, "precision must be one of"),
    ("mode", "sometimes", {}, "mode must be one of"),
    ("qos", "best_effort", {}, "qos must be one of"),
    ("input_transport", "theora", {}, "input_transport must be one of"),
    ("preset", "huge", {}, "preset must be one of"),
    ("checkpoint", " ", {}, "checkpoint must be"),
    ("input_height", 16, {"input_width": 64}, "at least 32"),
    ("input_width", 64, {"input_height": 0}, "set both"),
    ("window_stride", 6, {"window_size": 4}, "must not exceed window_size 4"),
    ("features_intrinsics", [1.0, 2.0, 3.0], {}, "4 finite numbers"),
    ("features_intrinsics", [500.0, -1.0, 3.0, 4.0], {}, "fx and fy must be positive"),
    ("features_intrinsics", [500.0, math.nan, 3.0, 4.0], {}, "4 finite numbers"),
])
def test_invalid_values_are_refused_with_a_reason(name, value, others, fragment) -> None:
    reason = check_value(name, value, _current(others))
    assert reason is not None and fragment in reason


@pytest.mark.parametrize("name, value, others", [
    ("device", "cuda:1", {}), ("device", "auto", {}), ("precision", "bf16", {}),
    ("input_height", 0, {"input_width": 0}), ("input_width", 320, {"input_height": 240}),
    ("window_stride", 4, {"window_size": 0}), ("window_stride", 8, {"window_size": 8}),
    ("features_intrinsics", [0.0, 0.0, 0.0, 0.0], {}),
    ("features_intrinsics", [500.0, 510.0, 320.0, 240.0], {}),
])
def test_valid_values_pass(name, value, others) -> None:
    assert check_value(name, value, _current(others)) is None


@pytest.mark.parametrize("override, error, fragment", [
    (Parameter("visibility_threshold", value=1.5), InvalidParameterValueException, "out of range"),
    (Parameter("queue_depth", value=0), InvalidParameterValueException, "out of range"),
    (Parameter("window_passes", value=9), InvalidParameterValueException, "out of range"),
    (Parameter("device", value="gpu"), InvalidParameterValueException, "device must be"),
    (Parameter("max_points", value="many"), InvalidParameterTypeException, "max_points"),
])
def test_declaring_refuses_bad_overrides(rclpy_context, override, error, fragment) -> None:
    node = Node("taptr_tracker", context=rclpy_context, parameter_overrides=[override])
    try:
        with pytest.raises(error, match=fragment):
            declare_parameters(node)
    finally:
        node.destroy_node()


def test_declared_parameters_carry_descriptors(rclpy_context) -> None:
    node = Node("taptr_tracker", context=rclpy_context,
                parameter_overrides=[Parameter("window_size", value=6), Parameter("window_passes", value=2)])
    try:
        params = declare_parameters(node)
        assert params.window_size == 6 and params.input_hw is None and params.window_passes == 2
        (descriptor,) = node.describe_parameters(["visibility_threshold"])
        assert descriptor.floating_point_range[0].to_value == 1.0 and not descriptor.read_only
        (descriptor,) = node.describe_parameters(["checkpoint"])
        assert descriptor.read_only
        refused = node.set_parameters([Parameter("visibility_threshold", value=-0.1)])[0]
        assert not refused.successful
    finally:
        node.destroy_node()


def test_window_passes_reach_the_tracker_the_node_builds() -> None:
    from taptr_ros.ros.parameters import NodeParameters
    from taptr_ros.ros.tracker_setup import build_tracker

    values = {spec.name: spec.default for spec in SPECS}
    from taptr_ros.tracking.factory import load_model

    built = {}
    for passes in (0, 3):
        tracker, info = build_tracker(NodeParameters({**values, "device": "cpu", "window_passes": passes}))
        built[passes] = tracker.model.config.window_passes
        assert f"{built[passes]} decoder pass(es) a window" in info.summary
        k = tracker.model.config.start_velocity_frames  # the checkpoint's, said in the start line
        assert (f"next frames start along the velocity of the last {k}" if k else
                "next frames start at the tail") in info.summary
        q = tracker.model.config.query_velocity_frames if built[passes] > 1 else 0  # no effect with one pass
        assert (f"a new point's far frames along its first {q}" in info.summary) == bool(q)
        gate = tracker.model.config.query_velocity_gate if q else 0
        assert (f"unless within {gate:g} px" in info.summary) == bool(gate)
    assert built == {0: load_model("default").config.window_passes, 3: 3}  # 0: the checkpoint's


# ----------------------------------------------------------------------------- process


def _run_until_exit(start_process, args: list[str], timeout: float = 90.0) -> tuple[int, str]:
    process = start_process(args, name="failing")
    try:
        rc = process.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the node did not exit within {timeout} s:\n{process.output()[-2000:]}")
    return rc, process.output()


def _assert_one_fatal_line(output: str, *fragments: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "FATAL" in lines[0] and "cannot start" in lines[0], output
    for fragment in fragments:
        assert fragment in lines[0], output


def test_missing_checkpoint_fails_with_one_line(start_process, tracker_executable, tmp_path) -> None:
    missing = tmp_path / "nowhere.pt"
    rc, output = _run_until_exit(start_process, [
        str(tracker_executable), "--ros-args", "--params-file", "config/tracker.yaml",
        "-p", f"checkpoint:={missing}"])
    assert rc != 0
    _assert_one_fatal_line(output, str(missing), "does not exist")


def test_checkpoint_of_another_preset_fails_with_one_line(start_process, tracker_executable,
                                                         tiny_checkpoint) -> None:
    rc, output = _run_until_exit(start_process, [
        str(tracker_executable), "--ros-args", "-p", f"checkpoint:={tiny_checkpoint}",
        "-p", "preset:=taptrv2", "-p", "device:=cpu"])
    assert rc != 0
    _assert_one_fatal_line(output, str(tiny_checkpoint), "'tiny' network, not preset 'taptrv2'")


def test_checkpoint_with_missing_weights_fails_with_one_line(start_process, tracker_executable,
                                                            tiny_checkpoint, tmp_path) -> None:
    import torch

    data = torch.load(tiny_checkpoint, weights_only=True)
    del data["model"]["decoder.vis_heads.0.weight"]
    broken = tmp_path / "broken.pt"
    torch.save(data, broken)
    rc, output = _run_until_exit(start_process, [
        str(tracker_executable), "--ros-args", "-p", f"checkpoint:={broken}"])
    assert rc != 0
    _assert_one_fatal_line(output, str(broken), "does not fit the model", "1 missing",
                           "decoder.vis_heads.0.weight")


def test_invalid_parameter_fails_with_one_line(start_process, tracker_executable,
                                               tiny_checkpoint) -> None:
    rc, output = _run_until_exit(start_process, [
        str(tracker_executable), "--ros-args", "-p", f"checkpoint:={tiny_checkpoint}",
        "-p", "device:=gpu0"])
    assert rc != 0
    _assert_one_fatal_line(output, "device must be auto, cpu, cuda or cuda:N")


def test_sigint_stops_the_node_cleanly(start_process, tracker_executable, tiny_checkpoint) -> None:
    process = start_process([str(tracker_executable), "--ros-args",
                             "-p", f"checkpoint:={tiny_checkpoint}", "-r", "__ns:=/t_sigint"],
                            name="sigint")
    assert process.wait_for_output("ready:", 90), process.output()
    process.popen.send_signal(signal.SIGINT)
    assert process.popen.wait(timeout=15) == 0, process.output()
    assert "Traceback" not in process.output()


def test_launch_file_declares_its_arguments_and_starts_this_node() -> None:
    """Runs without launch installed: reads launch/tracker.launch.py's syntax tree."""
    import ast

    tree = ast.parse((REPO / "launch" / "tracker.launch.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    declared = {c.args[0].value for c in calls if c.func.id == "DeclareLaunchArgument"}
    assert declared == {"image", "params_file", "namespace", "checkpoint", "device", "dds_profile"}
    (node,) = [c for c in calls if c.func.id == "Node"]
    keywords = {k.arg: k.value for k in node.keywords}
    assert {k: keywords[k].value for k in ("package", "executable", "name")} == {
        "package": "taptr_ros", "executable": "taptr_tracker", "name": "taptr_tracker"}
    remap = keywords["remappings"].elts[0].elts[0].value
    assert remap == "image"
    assert (REPO / "scripts" / "taptr_tracker").is_file()
