"""`TaptrConfig`: every number of the TAPTRv2 network in one frozen dataclass, plus named presets.

Presets (see `PRESETS`, `preset()`):

* ``taptrv2``: the official network (IDEA-Research/TAPTR branch v2, ``config/TAPTRv2.py``):
  ResNet-50 C2..C5, 4 levels, 256 channels, 2 encoder / 5 decoder layers, 8 heads, 4 points,
  FFN 2048, windows of 8 frames with stride 4, 512x512 input, ImageNet mean/std. Loads the
  official ``taptrv2.pth`` through `taptr_ros.model.checkpoint`.
* ``small``: the CPU preset we train (shipped as ``models/default.pt``): ResNet-18 C2..C4
  (3 levels, strides 4/8/16; layer4 is not built, which keeps the checkpoint under 20 MB),
  128 channels, 1 encoder / 3 decoder layers, 4 heads, FFN 512, 128x128 input (chosen so a
  2-core CPU makes progress in ~1.5 h of training).
* ``tiny``: for fast tests: ResNet-18 C3..C5, 64 channels, 1 encoder / 2 decoder layers, 96x96.

Sizes are (height, width) in pixels of the network input. Level shapes follow the ResNet's
strides with the convolution arithmetic of each stride-2 step (ceil(h/2)), so any input size
works, not only multiples of 32.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

RESNET_DEPTHS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3)}
"""Blocks per stage (layer1..layer4) of each supported ResNet."""

RESNET_CHANNELS = {"resnet18": (64, 128, 256, 512), "resnet34": (64, 128, 256, 512),
                   "resnet50": (256, 512, 1024, 2048)}
"""Output channels of C2..C5 of each supported ResNet."""


class ConfigError(ValueError):
    """A `TaptrConfig` (or a preset name) that cannot describe a network."""


@dataclass(frozen=True)
class TaptrConfig:
    """Architecture, input and inference numbers of a TAPTRv2 network.

    Attributes:
        name: preset name this config came from (informative).
        backbone: "resnet18", "resnet34" or "resnet50" (frozen BatchNorm everywhere).
        feature_stages: which ResNet outputs feed the levels, 0..3 = C2..C5 (strides 4..32).
        hidden_dim: channels C of every token and query.
        num_heads: attention heads (deformable and self-attention); C % num_heads == 0.
        num_points: sampling points per head and level in deformable attention.
        enc_layers: deformable encoder layers.
        dec_layers: decoder layers (each with its own position and visibility head).
        ffn_dim: hidden width of the encoder and decoder FFNs.
        gn_groups: GroupNorm groups of the per-level input projections.
        map_pos_temperature: temperature of the sine embedding of the feature maps (official 10).
        query_pos_temperature: temperature of the sine embedding of references and APU deltas
            (official 10).
        window_size: frames per decoding window (official 8).
        window_stride: frames between window starts (official 4).
        window_passes: decoder passes per window (ours; official 1). Pass k+1 decodes the
            same window again from pass k's positions (content, masks and memory unchanged),
            so a point far from where its frame started is refined further; the last pass is
            the window's result. Costs one decoder pass more per window and per extra pass.
        start_velocity_frames: ours; official 0. After a window, the next frames start at
            the tail's position (0) or continue its velocity measured over the window's last
            this many frames (`windowing.commit_window`): a point moving steadily starts the
            next window where it is going, not where it was.
        query_velocity_frames: ours; official 0. In a window that holds a point's start frame
            s, after the first of `window_passes` passes, the point's frames after s + this
            restart along the velocity of the first pass from s to s + this
            (`windowing.restart_from_query_velocity`): frames far from the query start near
            where a steady point is, not at the query. No effect with one pass.
        query_velocity_gate: ours; with `query_velocity_frames`, a far frame the first pass
            put within this many input pixels of its restart keeps the pass's position
            (0 = every far frame restarts).
        input_hw: network input (height, width) in pixels; frames are resized to it.
        mean, std: per RGB channel normalisation of [0,1] images.
        visibility_threshold: visible <=> sigmoid(logit[1]) > threshold.
        num_vis_classes: visibility logits per point (official 3; index 1 = visible).
        init_wh: dummy box size of the reference's (w, h) channels in sigmoid space.
        logit_eps: clamp of `inverse_sigmoid` (official 1e-3).
        content_propagation_frames: official long-video rule: content is propagated to future
            frames only on windows whose index is a multiple of max(1, T // this).
        quirk_init_sample_hw_swap: official quirk: query init scales x by (h_l - 1) and y by
            (w_l - 1). Same as the correct rule on square maps.
        quirk_apu_hw_swap: official quirk: the APU divides offset x by h_l and y by w_l.
            Same as the correct rule on square maps.
    """

    name: str = "custom"
    backbone: str = "resnet50"
    feature_stages: tuple[int, ...] = (0, 1, 2, 3)
    hidden_dim: int = 256
    num_heads: int = 8
    num_points: int = 4
    enc_layers: int = 2
    dec_layers: int = 5
    ffn_dim: int = 2048
    gn_groups: int = 32
    map_pos_temperature: float = 10.0
    query_pos_temperature: float = 10.0
    window_size: int = 8
    window_stride: int = 4
    window_passes: int = 1
    start_velocity_frames: int = 0
    query_velocity_frames: int = 0
    query_velocity_gate: float = 0.0
    input_hw: tuple[int, int] = (512, 512)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    visibility_threshold: float = 0.5
    num_vis_classes: int = 3
    init_wh: float = 0.5
    logit_eps: float = 1e-3
    content_propagation_frames: int = 24
    quirk_init_sample_hw_swap: bool = True
    quirk_apu_hw_swap: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature_stages", tuple(int(s) for s in self.feature_stages))
        object.__setattr__(self, "input_hw", tuple(int(s) for s in self.input_hw))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        problems = []
        if self.backbone not in RESNET_DEPTHS:
            problems.append(f"backbone {self.backbone!r} not in {sorted(RESNET_DEPTHS)}")
        if not self.feature_stages or any(s not in (0, 1, 2, 3) for s in self.feature_stages) \
                or list(self.feature_stages) != sorted(set(self.feature_stages)):
            problems.append(f"feature_stages {self.feature_stages} must be increasing values in 0..3")
        if self.hidden_dim % self.num_heads or self.hidden_dim % 2:
            problems.append(f"hidden_dim {self.hidden_dim} must be even and divisible by num_heads {self.num_heads}")
        if self.hidden_dim % self.gn_groups:
            problems.append(f"hidden_dim {self.hidden_dim} must be divisible by gn_groups {self.gn_groups}")
        if not 1 <= self.window_stride <= self.window_size:
            problems.append(f"window_stride {self.window_stride} must be in 1..window_size {self.window_size}")
        if not isinstance(self.window_passes, int) or self.window_passes < 1:
            problems.append(f"window_passes {self.window_passes!r} must be an integer >= 1")
        if not isinstance(self.start_velocity_frames, int) or not 0 <= self.start_velocity_frames < self.window_size:
            problems.append(f"start_velocity_frames {self.start_velocity_frames!r} must be an integer in "
                            f"0..window_size - 1 ({self.window_size - 1})")
        if not isinstance(self.query_velocity_frames, int) or not 0 <= self.query_velocity_frames < self.window_size - 1:
            problems.append(f"query_velocity_frames {self.query_velocity_frames!r} must be an integer in "
                            f"0..window_size - 2 ({self.window_size - 2})")
        if not isinstance(self.query_velocity_gate, (int, float)) or not self.query_velocity_gate >= 0:
            problems.append(f"query_velocity_gate {self.query_velocity_gate!r} must be a number >= 0 (input px)")
        if min(self.input_hw) < 32:
            problems.append(f"input_hw {self.input_hw} must be at least 32 px per side")
        if problems:
            raise ConfigError("invalid TaptrConfig: " + "; ".join(problems))

    @property
    def num_levels(self) -> int:
        """Number of feature levels (len(feature_stages))."""
        return len(self.feature_stages)

    @property
    def level_strides(self) -> tuple[int, ...]:
        """Nominal stride in input pixels of each level (4, 8, 16, 32 for C2..C5)."""
        return tuple(4 * 2**s for s in self.feature_stages)

    @property
    def level_channels(self) -> tuple[int, ...]:
        """ResNet channels entering each level's projection."""
        return tuple(RESNET_CHANNELS[self.backbone][s] for s in self.feature_stages)

    def level_shapes(self, input_hw: tuple[int, int] | None = None) -> tuple[tuple[int, int], ...]:
        """(h_l, w_l) of each level for an input of `input_hw` (default: the preset's).

        Each stride-2 step (stem conv, max-pool, first block of stages 2-4) maps n -> ceil(n/2).
        """
        h, w = self.input_hw if input_hw is None else input_hw
        shapes = []
        for stage in range(4):
            steps = 2 + stage  # stem conv + max-pool, then one per stage after the first
            hs, ws = h, w
            for _ in range(steps):
                hs, ws = math.ceil(hs / 2), math.ceil(ws / 2)
            if stage in self.feature_stages:
                shapes.append((hs, ws))
        return tuple(shapes)

    def num_tokens(self, input_hw: tuple[int, int] | None = None) -> int:
        """Tokens of one frame's memory: sum over levels of h_l * w_l."""
        return sum(h * w for h, w in self.level_shapes(input_hw))

    def replace(self, **changes) -> "TaptrConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain dict (lists, numbers, strings) for checkpoints and YAML."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "TaptrConfig":
        """Inverse of `to_dict`; unknown keys raise `ConfigError` naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown TaptrConfig fields {unknown}; known: {sorted(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


PRESETS: dict[str, TaptrConfig] = {
    "taptrv2": TaptrConfig(name="taptrv2"),
    "small": TaptrConfig(
        name="small", backbone="resnet18", feature_stages=(0, 1, 2), hidden_dim=128, num_heads=4,
        num_points=4, enc_layers=1, dec_layers=3, ffn_dim=512, input_hw=(128, 128),
        quirk_init_sample_hw_swap=False, quirk_apu_hw_swap=False),
    "tiny": TaptrConfig(
        name="tiny", backbone="resnet18", feature_stages=(1, 2, 3), hidden_dim=64, num_heads=4,
        num_points=2, enc_layers=1, dec_layers=2, ffn_dim=128, input_hw=(96, 96),
        quirk_init_sample_hw_swap=False, quirk_apu_hw_swap=False),
}
"""Named presets. Only ``taptrv2`` keeps the official x/y quirks (needed to run its weights)."""


def preset(name: str, **overrides) -> TaptrConfig:
    """The preset `name`, with optional field overrides (e.g. ``input_hw=(128, 128)``).

    Raises:
        ConfigError: unknown preset name or invalid override.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]
