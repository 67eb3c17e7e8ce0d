"""``taptr bench engine``: per-frame cost of the online engine against the offline reference
and a naive online loop, side by side in one run.

For each preset and point count, four runners process the same synthetic stream (frames of
`image_hw` pixels, every point queried at frame 0; with ``adds`` > 0, that many more points
added one at a time at random frames of the timed part, each at a random buffered stamp, so
the engine's cost of points joining committed windows, `taptr_ros.tracking.windows`, shows):

* ``offline``: `taptr_ros.model.taptr.track_video` on the preprocessed video (the reference).
* ``committed`` / ``immediate``: `OnlineTracker` in that mode, frames pushed one by one.
* ``naive``: `bench_naive.NaiveWindowTracker`, immediate semantics, re-encoding the window.

Steady state: the engine runners are timed over frames [W, T) (the first W frames fill the
window and are not timed); the offline reference's per-frame cost is
(time(T frames) - time(W frames)) / (T - W), the same frames and the same committed windows
when T - W is a multiple of the stride. The naive loop costs the same every frame (W encodes,
one window decode), so it is primed without decoding and timed over `naive_frames` frames.
Each runner's time is split into encoder (`encode_frames`), decoder (`decode_window`,
`project_memory`, `init_queries`) and other (preprocessing, state bookkeeping, results to
numpy). Decoder passes per frame (`decode_window` calls) are counted too. Repeats alternate
the runners; figures are medians.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from taptr_ros.bench.common import (
    BenchError,
    Sample,
    build_model,
    format_table,
    machine_summary,
    median_sample,
    query_pixels,
    resolve_clock,
    resolve_device,
    resolve_dtype,
    synchronize,
    synthetic_frames,
    timed_stages,
)
from taptr_ros.bench.naive import NaiveWindowTracker
from taptr_ros.model.inference import compile_model, precision_context
from taptr_ros.model.preprocess import pixels_to_norm, preprocess_frame
from taptr_ros.model.taptr import TAPTRv2, track_video
from taptr_ros.tracking.options import TrackerOptions
from taptr_ros.tracking.tracker import OnlineTracker

RUNNERS = ("offline", "committed", "immediate", "naive")

TARGETS = {
    "committed / offline": 1.1,
    "immediate / offline": 2.5,
    "naive / immediate (min)": 3.0,
    "5000 / 800 (official)": 4.0,
}
"""The performance targets (README, Performance), as ratios measured in one run."""


@dataclass(frozen=True)
class EngineBenchOptions:
    """What ``taptr bench engine`` measures.

    Attributes:
        presets: network presets (default: the official one and the small CPU one).
        points: point counts.
        modes: engine modes timed (``immediate``, ``committed``).
        frames: T, frames per run; T - window must be > 0 (a multiple of the stride keeps the
            offline and committed runs on the same windows).
        input_hw: network input (height, width) for every preset; None = each preset's own.
        image_hw: (height, width) of the camera frames pushed (resized by the engine).
        repeats: runs per runner (medians reported).
        naive: also time the naive re-encoding loop.
        naive_frames: frames the naive loop is timed over (its frames all cost the same; it is
            primed with the first W frames without decoding them, see `run_naive`).
        naive_max_points: skip the naive loop above this many points (it decodes exactly like
            ``immediate``; above a few hundred points the decoder dominates both).
        device: "auto", "cpu", "cuda", ...
        precision: fp32, or fp16 / bf16 autocast (`model.inference.precision_context`; CUDA
            only).
        compile: `model.inference.compile_model` first (every runner runs once untimed).
        threads: torch CPU threads (0 = torch's default).
        cache_projections: the engine caches each frame's cross-attention keys/values.
        clock: "auto" (process CPU time on the CPU, wall time on CUDA), "wall" or "cpu"; see
            `bench_common.resolve_clock`.
        adds: points added during the timed frames, one per add call, at random frames (seeded),
            each at the stamp of the latest frame or of one up to window - 1 frames older
            (uniform); the offline reference queries them at those frames; the naive loop,
            which cannot add points at older frames, is skipped.
        seed: weights, frames and points.
    """

    presets: tuple[str, ...] = ("taptrv2", "small")
    points: tuple[int, ...] = (1, 50, 800, 5000)
    modes: tuple[str, ...] = ("immediate", "committed")
    frames: int = 16
    input_hw: tuple[int, int] | None = None
    image_hw: tuple[int, int] = (480, 640)
    repeats: int = 1
    naive: bool = True
    naive_frames: int = 2
    naive_max_points: int = 100_000
    device: str = "auto"
    precision: str = "fp32"
    threads: int = 0
    cache_projections: bool = True
    clock: str = "auto"
    compile: bool = False
    adds: int = 0
    seed: int = 0


@dataclass
class Cell:
    """Median per-frame figures of one runner for one (preset, points)."""

    preset: str
    points: int
    runner: str
    sample: Sample
    runs: int
    passes: float = 0.0
    """Decoder passes (`decode_window` calls) per frame."""


@dataclass
class EngineBenchResult:
    """Every measured cell of one ``taptr bench engine`` run, with the options and the machine."""
    options: EngineBenchOptions
    machine: str
    cells: list[Cell] = field(default_factory=list)

    def get(self, preset: str, points: int, runner: str) -> Sample | None:
        """The median sample (ms per frame) of one (preset, points, runner) cell; None if not run."""
        for c in self.cells:
            if (c.preset, c.points, c.runner) == (preset, points, runner):
                return c.sample
        return None

    def to_dict(self) -> dict:
        """Plain JSON-ready dict: options, machine, one entry per cell (milliseconds per frame)."""
        return {"options": asdict(self.options), "machine": self.machine,
                "cells": [{"preset": c.preset, "points": c.points, "runner": c.runner, "runs": c.runs,
                           "ms_per_frame": c.sample.total, "encoder_ms": c.sample.encoder,
                           "decoder_ms": c.sample.decoder, "other_ms": c.sample.other,
                           "decoder_passes_per_frame": c.passes} for c in self.cells]}


# ---------------------------------------------------------------------- runners
@dataclass(frozen=True)
class Adds:
    """Points added during a run: add i is made right after frame ``after[i]`` was pushed, at
    frame ``start[i]`` (= after[i] - back), at pixel ``xy[i]``."""

    after: np.ndarray
    start: np.ndarray
    xy: np.ndarray

    @classmethod
    def none(cls) -> "Adds":
        """No adds at all."""
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2)))

    @classmethod
    def random(cls, count: int, first: int, frames: int, window: int, height: int, width: int,
               seed: int) -> "Adds":
        """`count` adds at frames first..frames-1, each at a stamp 0..window-1 frames back."""
        rng = np.random.default_rng([seed, 16])
        after = np.sort(rng.integers(first, frames, count))
        start = after - rng.integers(0, window, count)
        return cls(after, start, query_pixels(count, height, width, seed=seed + 1))


def _offline_run(model: TAPTRv2, frames: Sequence[np.ndarray], xy_px: np.ndarray, device, clock,
                 start: np.ndarray | None = None) -> tuple[Sample, int]:
    """Time of preprocessing + `track_video` + results to pixels, for all `frames` (points
    starting at `start`, default 0); and the decoder passes."""
    h, w = frames[0].shape[:2]
    start = np.zeros(len(xy_px), np.int64) if start is None else start
    with timed_stages(model, device, clock) as st, torch.inference_mode():
        synchronize(device)
        begin = clock()
        video = torch.stack([preprocess_frame(f, model.config) for f in frames])
        xy = torch.from_numpy(pixels_to_norm(xy_px, w, h))
        result = track_video(model, video, xy, torch.from_numpy(start), content_propagation_gap=1)
        _ = (result.xy_norm.float().cpu().numpy() * np.array([w - 1, h - 1], np.float32),
             result.vis_logits[..., 1].sigmoid().float().cpu().numpy())
        synchronize(device)
        total = 1e3 * (clock() - begin)
    return Sample(total, st.encoder, st.decoder), st.calls.get("decode_window", 0)


def run_offline(model, frames, xy_px, window: int, device, clock,
                adds: Adds = Adds.none()) -> tuple[Sample, float]:
    """Steady-state per-frame cost: (run(T) - run(W)) / (T - W); the added points start at
    their frames (all after the first W)."""
    every = np.concatenate([xy_px, adds.xy]) if len(adds.xy) else xy_px
    start = np.concatenate([np.zeros(len(xy_px), np.int64), adds.start])
    full, full_passes = _offline_run(model, frames, every, device, clock, start)
    head, head_passes = _offline_run(model, frames[:window], xy_px, device, clock)
    n = len(frames) - window
    return (Sample((full.total - head.total) / n, (full.encoder - head.encoder) / n,
                   (full.decoder - head.decoder) / n), (full_passes - head_passes) / n)


def _timed_pushes(model, push: Callable[[int, np.ndarray], object], frames, device, clock,
                  finish: Callable[[], object] | None = None) -> tuple[Sample, float]:
    """Per-frame time of pushing `frames` (push(i, frame), then `finish`), split by
    `timed_stages`; and the decoder passes per frame."""
    with timed_stages(model, device, clock) as st:
        synchronize(device)
        start = clock()
        for i, frame in enumerate(frames):
            push(i, frame)
        if finish is not None:
            finish()
        synchronize(device)
        total = 1e3 * (clock() - start)
    n = len(frames)
    return Sample(total / n, st.encoder / n, st.decoder / n), st.calls.get("decode_window", 0) / n


def run_engine(model, frames, xy_px, window: int, device, clock, *, mode: str,
               cache_projections: bool, adds: Adds = Adds.none()) -> tuple[Sample, float]:
    """Frames [0, W) fill the window (points added after frame 0), frames [W, T) are timed,
    with the `adds` made after their frames."""
    options = TrackerOptions(mode=mode, max_points=max(1, len(xy_px) + len(adds.xy)),
                             cache_projections=cache_projections)
    tracker = OnlineTracker(model, options)
    for i, frame in enumerate(frames[:window]):
        tracker.push(frame, stamp=i)
        if i == 0:
            tracker.add_points(xy_px)

    def push(i: int, frame: np.ndarray) -> None:
        t = window + i
        tracker.push(frame, stamp=t)
        for k in np.flatnonzero(adds.after == t):
            tracker.add_points(adds.xy[k:k + 1], stamp=int(adds.start[k]))

    return _timed_pushes(model, push, frames[window:], device, clock, finish=tracker.flush)


def run_naive(model, frames, xy_px, window: int, device, clock, *, timed: int) -> tuple[Sample, float]:
    """The naive loop primed with the first W frames (`NaiveWindowTracker.prime`: its per-frame
    cost does not depend on the state), then `timed` frames timed (every frame costs the same:
    W encodes and one window decode)."""
    naive = NaiveWindowTracker(model)
    naive.prime(frames[:window], xy_px)
    return _timed_pushes(model, lambda i, frame: naive.push(frame), frames[window:window + timed], device,
                         clock)


# ---------------------------------------------------------------------- the benchmark
def run_engine_bench(options: EngineBenchOptions, *, log: Callable[[str], None] = print) -> EngineBenchResult:
    """Run the grid; `log` gets a line per timed run.

    Raises:
        BenchError: options that cannot run (device, precision, frames).
    """
    if options.adds < 0:
        raise BenchError(f"--adds {options.adds} must be >= 0")
    if options.threads:
        torch.set_num_threads(options.threads)
    device = resolve_device(options.device)
    resolve_dtype(options.precision, device)  # validates: half precisions need CUDA
    clock_name, clock = resolve_clock(options.clock, device)
    result = EngineBenchResult(options, machine_summary(device) + f", {options.precision}"
                               + (" autocast" if options.precision != "fp32" else "")
                               + (", torch.compile" if options.compile else "") + f", {clock_name} clock")
    frames = synthetic_frames(options.frames, *options.image_hw, seed=options.seed)
    for name in options.presets:
        model = build_model(name, input_hw=options.input_hw, device=device, seed=options.seed)
        if options.compile:
            compile_model(model)
        window, stride = model.config.window_size, model.config.window_stride
        if options.frames <= window:
            raise BenchError(f"--frames {options.frames} must exceed the window ({window}): the first "
                             f"{window} frames fill it and are not timed; try {window + 2 * stride}")
        hw = model.config.input_hw
        adds = Adds.random(options.adds, window, options.frames, window, *options.image_hw,
                           seed=options.seed) if options.adds else Adds.none()
        for n in options.points:
            xy = query_pixels(n, *options.image_hw, seed=options.seed)
            runners: dict[str, Callable[[], tuple[Sample, float]]] = {
                "offline": lambda: run_offline(model, frames, xy, window, device, clock, adds)}
            for mode in ("committed", "immediate"):
                if mode in options.modes:
                    runners[mode] = (lambda m=mode: run_engine(
                        model, frames, xy, window, device, clock, mode=m,
                        cache_projections=options.cache_projections, adds=adds))
            if options.naive and n <= options.naive_max_points and not options.adds:
                runners["naive"] = lambda: run_naive(model, frames, xy, window, device, clock,
                                                     timed=min(options.naive_frames, options.frames - window))
            samples: dict[str, list[Sample]] = {k: [] for k in runners}
            passes: dict[str, list[float]] = {k: [] for k in runners}
            if options.compile:  # compile every shape first, untimed
                for key, run in runners.items():
                    with precision_context(device, options.precision):
                        run()
            for rep in range(options.repeats):
                for key, run in runners.items():
                    with precision_context(device, options.precision):
                        s, p = run()
                    samples[key].append(s)
                    passes[key].append(p)
                    log(f"{name} {hw[1]}x{hw[0]} N={n} {key} run {rep + 1}/{options.repeats}: "
                        f"{s.total:.1f} ms/frame (enc {s.encoder:.1f}, dec {s.decoder:.1f}, "
                        f"{p:.2f} decoder passes/frame)")
            for key, ss in samples.items():
                result.cells.append(Cell(name, n, key, median_sample(ss), len(ss),
                                         float(np.median(passes[key]))))
    return result


# ---------------------------------------------------------------------- tables
def _ratio(a: Sample | None, b: Sample | None) -> float | None:
    return None if a is None or b is None or b.total <= 0 else a.total / b.total


def _fmt_ratio(r: float | None, target: float | None = None, *, at_least: bool = False) -> str:
    if r is None:
        return "-"
    if target is None:
        return f"{r:.2f}x"
    ok = r >= target if at_least else r <= target
    return f"{r:.2f}x {'ok' if ok else 'MISS'}"


def format_engine_tables(result: EngineBenchResult) -> str:
    """The per-runner table, the ratios against the targets, the 5000/800 scaling."""
    opts = result.options
    lines = [f"# taptr bench engine: {result.machine}",
             f"frames {opts.frames} (those after the first window timed; offline = "
             f"run(T) - run(W)), camera {opts.image_hw[1]}x{opts.image_hw[0]}, network input "
             f"{'preset default' if opts.input_hw is None else f'{opts.input_hw[1]}x{opts.input_hw[0]}'}, "
             f"repeats {opts.repeats} (medians), kv cache {'on' if opts.cache_projections else 'off'}"
             + (f", {opts.adds} points added at random frames and stamps while timed" if opts.adds else ""),
             ""]
    rows = []
    for c in result.cells:
        off = result.get(c.preset, c.points, "offline")
        imm = result.get(c.preset, c.points, "immediate")
        vs_off = "-" if c.runner == "offline" else _fmt_ratio(_ratio(c.sample, off))
        naive_col = _fmt_ratio(_ratio(c.sample, imm)) if c.runner == "naive" else ""
        s = c.sample
        rows.append([c.preset, c.points, c.runner, s.total, s.encoder, s.decoder, s.other,
                     1e3 / s.total if s.total > 0 else 0.0, c.passes, vs_off, naive_col])
    lines.append(format_table(["preset", "points", "runner", "ms/frame", "encoder", "decoder", "other",
                               "fps", "decoder passes", "x offline", "naive / immediate"], rows))
    lines += ["", "Targets (ratios of per-frame cost in this run):", ""]
    trows = []
    for name in opts.presets:
        for n in opts.points:
            off = result.get(name, n, "offline")
            com, imm = result.get(name, n, "committed"), result.get(name, n, "immediate")
            nai = result.get(name, n, "naive")
            trows.append([name, n, _fmt_ratio(_ratio(com, off), TARGETS["committed / offline"]),
                          _fmt_ratio(_ratio(imm, off), TARGETS["immediate / offline"]),
                          _fmt_ratio(_ratio(nai, imm), TARGETS["naive / immediate (min)"], at_least=True),
                          _fmt_ratio(_ratio(nai, com), TARGETS["naive / immediate (min)"], at_least=True)])
    lines.append(format_table(["preset", "points", "committed / offline (<= 1.1)",
                               "immediate / offline (<= 2.5)", "naive / immediate (>= 3)",
                               "naive / committed (>= 3)"], trows))
    if 800 in opts.points and 5000 in opts.points:
        lines += ["", "Scaling, 5000 points / 800 points (target <= 4x on the official preset):", ""]
        srows = []
        for name in opts.presets:
            for runner in RUNNERS:
                r = _ratio(result.get(name, 5000, runner), result.get(name, 800, runner))
                if r is not None:
                    srows.append([name, runner, _fmt_ratio(r, TARGETS["5000 / 800 (official)"]
                                                           if name == "taptrv2" else None)])
        lines.append(format_table(["preset", "runner", "5000 / 800"], srows))
    return "\n".join(lines)
