"""`TrackerOptions` (how the online engine runs) and `FrameResult` (what it publishes per frame)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from taptr_ros.model.config import TaptrConfig
from taptr_ros.tracking.errors import OptionsError

MODES = ("immediate", "committed")


@dataclass(frozen=True)
class TrackerOptions:
    """Options of `taptr_ros.tracking.tracker.OnlineTracker` (all keyword, all validated).

    Attributes:
        window: frames per decoding window; None = the model config's ``window_size`` (8).
        stride: frames between committed windows; None = the config's ``window_stride`` (4).
        mode: ``"immediate"``: every push returns that frame's result (one decoder pass per
            frame; the result for frame t equals the offline reference on the video cut at t).
            ``"committed"``: only the committed windows are decoded (one decoder pass per
            ``stride`` frames); a push at a publish frame t (t = window - 1 mod stride) returns
            the results of every frame since the previous publish, each equal to the offline
            reference on the video cut at t; up to ``stride - 1`` frames of latency.
        max_points: most real points tracked at once; per-point state is preallocated for this
            many, so memory does not depend on how many points come and go.
        pad_queries_to: when fewer real points than this are tracked, every decoded window
            adds dummy points up to this count (spatial attention was trained with ~800
            points; the official demo pads to 800). 0 = no padding. See `pad_seed`.
        pad_seed: seed of the dummy positions: ``torch.rand`` of a generator seeded with it,
            (pad_queries_to, 2) uniform in [0, 1] normalised (x, y); a window with N real
            points uses the first pad_queries_to - N. Dummies start at the window's first frame
            (feature sampled from its memory), are tracked through that window only, and never
            appear in results.
        content_propagation_gap: content is carried to future frames only after committed
            windows whose index k (first frame = k * stride) is a multiple of this gap; position
            and visibility always are. 1 (default) = every window = the official rule for
            streams shorter than 48 frames; the official rule for longer videos
            (max(1, T // 24)) needs the video length T and cannot run online.
        visibility_threshold: visible <=> sigmoid(logit[1]) > threshold; None = the config's.
        bgr: frames are in OpenCV's BGR order (reversed to RGB before the network).
        independent_points: decode every point alone (no spatial attention between points):
            the TAP-Vid protocol. One batched decoder pass in which spatial attention lets each
            point see only itself (equal to N one-point passes, tested).
        cache_projections: keep each frame's cross-attention keys and values of every decoder
            layer in the ring buffer (`TAPTRv2.project_memory`, once per frame) instead of
            projecting the window's memory in every window (W times per frame in immediate
            mode). Costs 2 x dec_layers x the memory of a frame per buffered frame (taptrv2:
            ~220 MB per frame, 1.8 GB for W = 8; small: ~4 MB per frame). Same results to float
            rounding.

    Memory: the encoder memory of W + ceil(W / S) S - 1 frames, 2W - 1 = 15 by default (taptrv2
    ~22 MB a frame, 334 MB; small 0.7 MB, 10 MB): W buffered, the others so that committed
    windows can be decoded again when a point joins them (`taptr_ros.tracking.windows`);
    keys/values of W frames when cached; per point ((ceil(W / S) + 1) W + 1) states of dim + 7
    floats (taptrv2: 26 kB, 27 MB for 1024 points).
    """

    window: int | None = None
    stride: int | None = None
    mode: str = "immediate"
    max_points: int = 1024
    pad_queries_to: int = 0
    pad_seed: int = 0
    content_propagation_gap: int = 1
    visibility_threshold: float | None = None
    bgr: bool = False
    independent_points: bool = False
    cache_projections: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in MODES:
            problems.append(f"mode {self.mode!r} must be one of {MODES}")
        if self.window is not None and self.window < 1:
            problems.append(f"window {self.window} must be >= 1")
        if self.stride is not None and self.stride < 1:
            problems.append(f"stride {self.stride} must be >= 1")
        if self.window is not None and self.stride is not None and self.stride > self.window:
            problems.append(f"stride {self.stride} must not exceed window {self.window}")
        if self.max_points < 1:
            problems.append(f"max_points {self.max_points} must be >= 1")
        if self.pad_queries_to < 0:
            problems.append(f"pad_queries_to {self.pad_queries_to} must be >= 0 (0 = no padding)")
        if self.content_propagation_gap < 1:
            problems.append(f"content_propagation_gap {self.content_propagation_gap} must be >= 1")
        thr = self.visibility_threshold
        if thr is not None and not (math.isfinite(thr) and 0.0 <= thr <= 1.0):
            problems.append(f"visibility_threshold {thr} must lie in [0, 1]")
        if problems:
            raise OptionsError("invalid TrackerOptions: " + "; ".join(problems))

    def resolved(self, config: TaptrConfig) -> "TrackerOptions":
        """A copy with window, stride and threshold taken from `config` where None.

        Raises:
            OptionsError: the resulting stride exceeds the window.
        """
        return dataclasses.replace(
            self, window=config.window_size if self.window is None else self.window,
            stride=config.window_stride if self.stride is None else self.stride,
            visibility_threshold=(config.visibility_threshold if self.visibility_threshold is None
                                  else self.visibility_threshold))


@dataclass(frozen=True)
class FrameTimings:
    """Milliseconds spent on one frame, per stage.

    preprocess: resize + normalise + upload; encode: backbone + encoder + ring buffer;
    decode: the windows decoded during the push that published this frame (in committed mode
    shared by the frames published together); post: results to numpy. On CUDA each stage ends
    with a synchronisation so the numbers are device time.
    """

    preprocess: float = 0.0
    encode: float = 0.0
    decode: float = 0.0
    post: float = 0.0

    @property
    def total(self) -> float:
        return self.preprocess + self.encode + self.decode + self.post


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class FrameResult:
    """Tracks of every known point in one frame, in that frame's pixels.

    Attributes:
        stamp: the stamp the frame was pushed with.
        frame_index: frames pushed since construction or the last reset, 0-based.
        width, height: size of the pushed frame in pixels (x, y below are its pixels).
        ids: (N,) uint32, ascending (= order of addition); points whose start frame is after
            this frame are left out.
        xy: (N, 2) float32 pixels (x right, y down, 0 = centre of the first column/row),
            normalised position * (width - 1, height - 1).
        visible: (N,) bool, visibility > threshold.
        visibility: (N,) float32 probability sigmoid(logit[1]) in [0, 1].
        timings: `FrameTimings` in milliseconds.
    Arrays are read-only.
    """

    stamp: Any
    frame_index: int
    width: int
    height: int
    ids: np.ndarray
    xy: np.ndarray
    visible: np.ndarray
    visibility: np.ndarray
    timings: FrameTimings

    def __post_init__(self) -> None:
        for name in ("ids", "xy", "visible", "visibility"):
            _frozen(getattr(self, name))

    @property
    def num_points(self) -> int:
        return int(self.ids.shape[0])
