"""Parameters of the taptr_tracker node: one table, declared with descriptors, validated on set.

`SPECS` is the single source of truth: name, default, range or choices, whether changing it
needs a restart (``read_only``), and the description that ``ros2 param describe`` shows and
the README's table repeats. `declare_parameters` declares them all, after registering
`make_validator`'s on-set callback, so a bad value in the params file or on the command line
fails at start with the reason, and a bad ``ros2 param set`` is refused with the reason.

Only ``overlay``, ``visibility_threshold`` and ``debug_delay_ms`` may change while running; the
node reads them per frame.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.node import Node
from rclpy.parameter import Parameter

PRESET_CHOICES = ("", "taptrv2", "small", "tiny")


@dataclass(frozen=True)
class Spec:
    """One parameter: default (its type is the parameter's type), constraints, description."""

    name: str
    default: Any
    description: str
    read_only: bool = True
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    constraints: str = ""

    def descriptor(self) -> ParameterDescriptor:
        """The ROS descriptor: description, ranges, read_only, constraints text."""
        constraints = self.constraints
        if self.choices is not None:
            listed = " | ".join(repr(c) for c in self.choices)
            constraints = f"one of {listed}" + (f"; {constraints}" if constraints else "")
        descriptor = ParameterDescriptor(description=self.description, read_only=self.read_only,
                                         additional_constraints=constraints)
        if self.int_range is not None:
            descriptor.integer_range = [IntegerRange(from_value=self.int_range[0],
                                                     to_value=self.int_range[1], step=1)]
        if self.float_range is not None:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=self.float_range[0], to_value=self.float_range[1], step=0.0)]
        return descriptor


SPECS: tuple[Spec, ...] = (
    Spec("checkpoint", "default",
         "Model weights: 'default' (the shipped small model, models/default.pt), a taptr_ros "
         "checkpoint file, or the official taptrv2.pth (loaded into the taptrv2 network)."),
    Spec("preset", "", "Network preset: for the official taptrv2.pth the network to load it "
         "into (empty = taptrv2); for a taptr_ros checkpoint a check that it holds this preset "
         "(empty = no check).",
         choices=PRESET_CHOICES),
    Spec("device", "auto", "Torch device: auto (cuda if available, else cpu), cpu, cuda, cuda:N.",
         constraints="auto | cpu | cuda | cuda:N"),
    Spec("precision", "fp32", "Inference precision: the network's weights and activations in this dtype "
         "(fp16 needs CUDA).",
         choices=("fp32", "fp16", "bf16")),
    Spec("input_height", 0, "Network input height in pixels (frames are resized to it); "
         "0 = the preset's.", int_range=(0, 4096), constraints="0 or >= 32"),
    Spec("input_width", 0, "Network input width in pixels; 0 = the preset's.",
         int_range=(0, 4096), constraints="0 or >= 32"),
    Spec("window_size", 0, "Frames per decoding window; 0 = the preset's (official 8).",
         int_range=(0, 64)),
    Spec("window_stride", 0, "Frames between window starts; 0 = the preset's (official 4).",
         int_range=(0, 64), constraints="<= window_size (as resolved)"),
    Spec("window_passes", 0, "Decoder passes per window, each from the previous pass's "
         "positions: 2 follows faster motion at about one more decoder pass of cost per frame; "
         "0 = the checkpoint's (official 1).", int_range=(0, 8)),
    Spec("mode", "immediate", "immediate: answer every frame at once (a provisional window per "
         "frame); committed: publish only when a window commits (cheaper, up to stride-1 frames "
         "late).", choices=("immediate", "committed")),
    Spec("pipeline", True, "Encode the next frame on a second thread while the current one is "
         "decoded: up to twice the frames per second on a CPU with two or more cores, the same "
         "results and latency; cpu_threads 0 then gives each stage half of torch's threads."),
    Spec("max_points", 1024, "Most points tracked at once; add_points beyond it is refused.",
         int_range=(1, 100000)),
    Spec("pad_queries_to", 0, "Pad the point queries with dummy points to this count (the "
         "official demo uses 800: spatial attention was trained with ~800 points); 0 = off.",
         int_range=(0, 100000)),
    Spec("visibility_threshold", 0.5, "A point is visible when its visibility probability "
         "exceeds this.", read_only=False, float_range=(0.0, 1.0)),
    Spec("overlay", True, "Publish ~/overlay (the image with tracks and ids drawn); drawn only "
         "while it has subscribers, on a thread of its own (newest frame wins: when drawing is "
         "slower than tracking, overlay frames are skipped, tracks are not).", read_only=False),
    Spec("publish_features", False, "Publish ~/features, a VINS-style sensor_msgs/PointCloud "
         "(channels id, u, v, velocity_x, velocity_y) of the visible points."),
    Spec("features_intrinsics", [0.0, 0.0, 0.0, 0.0], "fx, fy, cx, cy of the camera for "
         "~/features: points and velocities in normalised camera coordinates (no "
         "undistortion); fx = 0 keeps pixels.", constraints="4 values; fx, fy > 0 or fx = 0"),
    Spec("input_transport", "raw", "raw: subscribe sensor_msgs/Image on 'image'; compressed: "
         "sensor_msgs/CompressedImage on '<image>/compressed' (as image_transport names it: "
         "remapping 'image' moves both).", choices=("raw", "compressed")),
    Spec("qos", "sensor_data", "QoS of the image subscription: sensor_data (best effort) or "
         "reliable.", choices=("sensor_data", "reliable")),
    Spec("queue_depth", 2, "History depth of the image subscription (the newest frame wins "
         "anyway).", int_range=(1, 1000)),
    Spec("bgr", False, "Swap red and blue of colour images: for cameras that label BGR data "
         "rgb8 (correctly labelled bgr8 images need nothing)."),
    Spec("cpu_threads", 0, "torch CPU threads for inference (per stage with pipeline); 0 = "
         "torch's default (half of it per stage with pipeline).",
         int_range=(0, 1024)),
    Spec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.",
         float_range=(0.1, 60.0)),
    Spec("debug_delay_ms", 0, "Testing aid: sleep this long after each inference to imitate a "
         "slow model; keep 0.", read_only=False, int_range=(0, 10000)),
)
SPEC_BY_NAME = {spec.name: spec for spec in SPECS}

_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


@dataclass(frozen=True)
class NodeParameters:
    """The values read at start (the read-only ones stay these for the node's life)."""

    values: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def input_hw(self) -> tuple[int, int] | None:
        """(height, width) override of the network input, None = the preset's."""
        h, w = self.values["input_height"], self.values["input_width"]
        return (h, w) if h and w else None


def check_value(name: str, value: Any, other: Callable[[str], Any]) -> str | None:
    """Why ``value`` is not acceptable for parameter ``name`` (None if it is).

    Ranges and types are checked by rclpy from the descriptors; this checks the rest.
    ``other(name)`` gives another parameter's current value (for cross checks).
    """
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        return None
    if spec.choices is not None and value not in spec.choices:
        return f"{name} must be one of {list(spec.choices)}, got {value!r}"
    if name == "checkpoint" and not str(value).strip():
        return "checkpoint must be 'default' or a file path, got an empty string"
    if name == "device" and not _DEVICE.match(str(value)):
        return f"device must be auto, cpu, cuda or cuda:N (N a GPU index), got {value!r}"
    if name in ("input_height", "input_width") and 0 < value < 32:
        return f"{name} must be 0 (the preset's) or at least 32 pixels, got {value}"
    if name in ("input_height", "input_width"):
        partner = other("input_width" if name == "input_height" else "input_height")
        if partner is not None and (value == 0) != (partner == 0):
            return "set both input_height and input_width, or leave both 0 (the preset's)"
    if name == "window_stride" and value:
        size = other("window_size")
        if size and value > size:
            return f"window_stride {value} must not exceed window_size {size}"
    if name == "features_intrinsics":
        values = list(value)
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            return f"features_intrinsics must be 4 finite numbers fx, fy, cx, cy, got {values}"
        if values[0] != 0.0 and (values[0] <= 0.0 or values[1] <= 0.0):
            return f"features_intrinsics: fx and fy must be positive (or fx = 0), got {values}"
    return None


def make_validator(node: Node) -> Callable[[Sequence[Parameter]], SetParametersResult]:
    """The on-set callback: refuses the first invalid parameter with its reason."""

    def current(name: str) -> Any:
        return node.get_parameter(name).value if node.has_parameter(name) else None

    def validate(parameters: Sequence[Parameter]) -> SetParametersResult:
        pending = {p.name: p.value for p in parameters}

        def other(name: str) -> Any:
            return pending[name] if name in pending else current(name)

        for parameter in parameters:
            reason = check_value(parameter.name, parameter.value, other)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    return validate


def declare_parameters(node: Node) -> NodeParameters:
    """Declare every parameter of `SPECS` on ``node`` (validator first) and read them.

    Raises:
        rclpy.exceptions.InvalidParameterValueException: a value (params file, ``-p``) is out
            of range or refused by the validator; the message gives the reason.
        rclpy.exceptions.InvalidParameterTypeException: a value of the wrong type.
    """
    node.add_on_set_parameters_callback(make_validator(node))
    for spec in SPECS:  # one at a time, in table order, so cross checks see earlier values
        node.declare_parameter(spec.name, spec.default, spec.descriptor())
    return NodeParameters({spec.name: node.get_parameter(spec.name).value for spec in SPECS})
