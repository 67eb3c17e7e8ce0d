"""Shared pieces of the benchmarks (``taptr bench``): models, streams, timers, tables.

Benchmarks report ratios measured side by side in one run on one machine, because absolute
times on a shared CPU are noise; every figure here is a median over repeats.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from taptr_ros.model.config import preset as config_preset
from taptr_ros.model.taptr import TAPTRv2

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class BenchError(RuntimeError):
    """A benchmark that cannot run as asked; the message says what to change."""


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu.

    Raises:
        BenchError: CUDA asked for but not available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"device {device!r} asked for but CUDA is not available: use --device cpu or auto")
    return dev


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """fp32 everywhere; fp16 / bf16 only on CUDA (the CPU keeps fp32).

    Raises:
        BenchError: unknown precision, or half precision on the CPU.
    """
    if precision not in PRECISIONS:
        raise BenchError(f"precision {precision!r}: choose one of {sorted(PRECISIONS)}")
    if precision != "fp32" and device.type != "cuda":
        raise BenchError(f"precision {precision} needs CUDA (on {device} the network runs fp32): "
                         "use --precision fp32")
    return PRECISIONS[precision]


def build_model(preset: str, *, input_hw: tuple[int, int] | None = None, device: torch.device,
                dtype: torch.dtype = torch.float32, seed: int = 0) -> TAPTRv2:
    """A network of `preset` with seeded default-initialised weights (timing does not depend on
    trained weights), in eval mode on `device` in `dtype`."""
    overrides = {} if input_hw is None else {"input_hw": tuple(input_hw)}
    torch.manual_seed(seed)
    return TAPTRv2(config_preset(preset, **overrides)).to(device, dtype).eval()


def synthetic_frames(count: int, height: int, width: int, *, seed: int = 0) -> list[np.ndarray]:
    """`count` (H, W, 3) uint8 RGB frames: a random texture panning 2 px per frame."""
    rng = np.random.default_rng(seed)
    pad = 2 * count + 2
    base = rng.integers(0, 256, size=(height + pad, width + pad, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[2 * t:2 * t + height, t:t + width]) for t in range(count)]


def query_pixels(count: int, height: int, width: int, *, seed: int = 0) -> np.ndarray:
    """(count, 2) float64 pixel (x, y) uniformly inside a width x height frame."""
    rng = np.random.default_rng(seed + 1)
    return rng.uniform((0, 0), (width - 1, height - 1), size=(count, 2))


CLOCKS = ("auto", "wall", "cpu")


def resolve_clock(clock: str, device: torch.device) -> tuple[str, Callable[[], float]]:
    """(name, seconds function) of a clock.

    ``wall`` is `time.perf_counter`; ``cpu`` is this process's CPU time (`time.process_time`,
    summed over its threads), which on a shared CPU leaves out the time other processes held
    the cores, so ratios stay stable under load; ``auto`` = cpu on the CPU, wall on CUDA.

    Raises:
        BenchError: unknown clock, or the cpu clock on CUDA (it would miss device time).
    """
    if clock not in CLOCKS:
        raise BenchError(f"clock {clock!r}: choose one of {CLOCKS}")
    if clock == "auto":
        clock = "wall" if device.type == "cuda" else "cpu"
    if clock == "cpu" and device.type == "cuda":
        raise BenchError("the cpu clock misses GPU time: use --clock wall (or auto) on CUDA")
    return clock, (time.process_time if clock == "cpu" else time.perf_counter)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class StageTimes:
    """Milliseconds accumulated per stage while a `timed_stages` block ran."""

    encoder: float = 0.0
    decoder: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)


ENCODER_METHODS = ("encode_frames",)
DECODER_METHODS = ("decode_window", "project_memory", "init_queries")
"""Model methods timed as encoder or decoder work. The decoder includes the cross-attention
key/value projection (per window offline, per frame when the engine caches it) and the
query initialisation; everything else in a run (preprocessing, state bookkeeping, results
to numpy) is "other"."""


@contextmanager
def timed_stages(model: TAPTRv2, device: torch.device,
                 clock: Callable[[], float] = time.perf_counter) -> Iterator[StageTimes]:
    """Time the model's encoder and decoder methods (instance-level wrappers, removed after).

    Nested calls are counted once (the outermost). On CUDA each timed call synchronises
    before and after, so the figures are device time.
    """
    times = StageTimes()
    depth = [0]

    def wrap(name: str, stage: str, method: Callable) -> Callable:
        def timed(*args, **kwargs):
            if depth[0]:
                return method(*args, **kwargs)
            depth[0] += 1
            synchronize(device)
            start = clock()
            try:
                return method(*args, **kwargs)
            finally:
                synchronize(device)
                setattr(times, stage, getattr(times, stage) + 1e3 * (clock() - start))
                times.calls[name] = times.calls.get(name, 0) + 1
                depth[0] -= 1
        return timed

    names = [(n, "encoder") for n in ENCODER_METHODS] + [(n, "decoder") for n in DECODER_METHODS]
    for name, stage in names:
        setattr(model, name, wrap(name, stage, getattr(model, name)))
    try:
        yield times
    finally:
        for name, _ in names:
            delattr(model, name)


@dataclass
class Sample:
    """One timed run: wall milliseconds per frame and its split."""

    total: float
    encoder: float
    decoder: float

    @property
    def other(self) -> float:
        return self.total - self.encoder - self.decoder


def median_sample(samples: Sequence[Sample]) -> Sample:
    """Per-field medians (each field's own median)."""
    fields = ("total", "encoder", "decoder")
    return Sample(*(statistics.median(getattr(s, f) for s in samples) for f in fields))


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text (also valid markdown) table; floats with 3 significant decimals."""
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)
    body = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in body)])


def machine_summary(device: torch.device) -> str:
    """One line naming the device, torch version and CPU threads."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = "CPU"
    return f"{name}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
