"""``taptr bench memory``: the engine's memory over a long stream must be flat.

An `OnlineTracker` runs over `frames` synthetic frames while points come and go (every
`churn_every` frames `churn` points are added at the latest frame and as many of the oldest
removed, around `points` alive). Every `sample_every` frames we record:

* RSS of the process (``/proc/self/statm``; what the OS sees: torch's CPU tensors included);
* the Python heap (``tracemalloc``: objects that pile up, e.g. a list that grows per frame),
  without the benchmark's own records;
* on CUDA, ``torch.cuda.memory_allocated`` and the peak since the previous sample.

Steady = the median over the second half of the stream; drift = the least-squares growth over
the second half, extrapolated to the second half's length, after taking out its largest
single rise between two samples (`without_largest_rise`). Flat means no measure grows by
more than its tolerance (RSS 2 MB, Python heap 256 kB, CUDA 1 MB; a fall, the allocator handing
pages back, is not a leak): a per-frame leak of a few hundred bytes over 5000 frames already
exceeds them. A leak grows between every pair of samples, so it loses only one interval's
share to the rise taken out; the allocator mapping one more arena once (a single step of a
few MB, seen in a long pytest process) is not growth and no longer reads as a drift. The
rise taken out is reported beside the drift (``largest_rise``).
"""

from __future__ import annotations

import os
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from taptr_ros.bench.common import (
    build_model,
    format_table,
    machine_summary,
    query_pixels,
    resolve_device,
    resolve_dtype,
    synthetic_frames,
)
from taptr_ros.model.inference import precision_context
from taptr_ros.tracking.options import TrackerOptions
from taptr_ros.tracking.tracker import OnlineTracker

TOLERANCE_MB = {"rss": 2.0, "python": 0.25, "cuda": 1.0}
"""Largest drift over the second half of the stream that still counts as flat."""


@dataclass(frozen=True)
class MemoryBenchOptions:
    """What ``taptr bench memory`` runs.

    Attributes:
        preset: network preset (a small one: 10,000 frames must run in minutes on a CPU).
        input_hw: network input (height, width); None = the preset's.
        image_hw: camera frame (height, width).
        frames: stream length.
        points: points alive at a time (about).
        churn, churn_every: points added and removed every `churn_every` frames.
        mode: engine mode.
        sample_every: frames between samples.
        python_heap: trace the Python heap with tracemalloc (slows Python code a little).
        device, precision, threads, seed: as ``taptr bench engine``.
    """

    preset: str = "tiny"
    input_hw: tuple[int, int] | None = (64, 64)
    image_hw: tuple[int, int] = (120, 160)
    frames: int = 10_000
    points: int = 32
    churn: int = 4
    churn_every: int = 10
    mode: str = "immediate"
    sample_every: int = 100
    python_heap: bool = True
    device: str = "auto"
    precision: str = "fp32"
    threads: int = 0
    seed: int = 0


@dataclass
class MemorySample:
    """Memory after ``frame`` frames, in MB; None where not measured (no tracemalloc, no CUDA)."""
    frame: int
    rss_mb: float
    python_mb: float | None
    cuda_mb: float | None
    cuda_peak_mb: float | None


@dataclass
class MemoryBenchResult:
    """The samples of one ``taptr bench memory`` run, its options, machine and duration (s)."""
    options: MemoryBenchOptions
    machine: str
    seconds: float = 0.0
    samples: list[MemorySample] = field(default_factory=list)

    def series(self, name: str) -> np.ndarray | None:
        """One `MemorySample` field over the run as (S,) float64 MB; None if it was not measured."""
        values = [getattr(s, name) for s in self.samples]
        return None if not values or values[0] is None else np.asarray(values, np.float64)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per measure: first, peak, steady (median of the second half), drift over the second
        half (fitted, MB, without its largest single rise), that rise (MB) and whether the
        drift is within tolerance."""
        frames = np.asarray([s.frame for s in self.samples], np.float64)
        half = frames >= frames[-1] / 2
        out = {}
        for key, name in (("rss", "rss_mb"), ("python", "python_mb"), ("cuda", "cuda_mb")):
            values = self.series(name)
            if values is None:
                continue
            x, (y, rise) = frames[half], without_largest_rise(values[half])
            slope = float(np.polyfit(x, y, 1)[0]) if len(x) > 1 else 0.0
            drift = slope * float(x[-1] - x[0]) if len(x) > 1 else 0.0
            peak = self.series("cuda_peak_mb") if key == "cuda" else values
            out[key] = {"first": float(values[0]), "peak": float(np.max(peak)), "steady": float(np.median(y)),
                        "drift": drift, "largest_rise": rise,
                        # growth is the failure; the allocator handing pages back (RSS falling
                        # a few MB) is not a leak
                        "flat": drift <= TOLERANCE_MB[key]}
        return out

    def to_dict(self) -> dict:
        """Plain JSON-ready dict: options, machine, seconds, samples and `summary`."""
        return {"options": asdict(self.options), "machine": self.machine, "seconds": self.seconds,
                "samples": [asdict(s) for s in self.samples], "summary": self.summary()}


def without_largest_rise(values: np.ndarray) -> tuple[np.ndarray, float]:
    """(S,) samples with their largest rise between two consecutive samples taken out (every
    later sample lowered by it), and that rise (0 when the series never rises)."""
    if len(values) < 2:
        return values, 0.0
    steps = np.diff(values)
    at = int(np.argmax(steps))
    rise = max(0.0, float(steps[at]))
    out = values.copy()
    out[at + 1:] -= rise
    return out, rise


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def python_heap_mb() -> float:
    """Python heap traced by tracemalloc in MB, leaving out this module's own allocations (the
    growing list of samples would otherwise read as a leak of ~0.7 kB per sample)."""
    snapshot = tracemalloc.take_snapshot().filter_traces((tracemalloc.Filter(False, __file__),))
    return sum(stat.size for stat in snapshot.statistics("filename")) / 2**20


def run_memory_bench(options: MemoryBenchOptions, *, log: Callable[[str], None] = print) -> MemoryBenchResult:
    """Run the stream; `log` gets a line per sample."""
    if options.threads:
        torch.set_num_threads(options.threads)
    device = resolve_device(options.device)
    resolve_dtype(options.precision, device)  # validates: half precisions need CUDA
    model = build_model(options.preset, input_hw=options.input_hw, device=device, seed=options.seed)
    tracker = OnlineTracker(model, TrackerOptions(mode=options.mode,
                                                  max_points=options.points + options.churn))
    # a short loop of frames keeps the stream itself out of the measurement
    frames = synthetic_frames(64, *options.image_hw, seed=options.seed)
    result = MemoryBenchResult(options, machine_summary(device) + f", {options.precision}")
    if options.python_heap:
        tracemalloc.start()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    try:
        with precision_context(device, options.precision):
            _stream(tracker, options, frames, result, device, log)
    finally:
        if options.python_heap:
            tracemalloc.stop()
    result.seconds = time.perf_counter() - start
    return result


def _stream(tracker: OnlineTracker, options: MemoryBenchOptions, frames, result: MemoryBenchResult,
            device: torch.device, log: Callable[[str], None]) -> None:
    """Push `options.frames` frames (cycling `frames`), churn points, sample memory."""
    h, w = options.image_hw
    cuda = device.type == "cuda"
    for t in range(options.frames):
        tracker.push(frames[t % len(frames)], t)
        if t == 0:
            tracker.add_points(query_pixels(options.points, h, w, seed=options.seed))
        elif t % options.churn_every == 0:
            tracker.remove_points(tracker.ids[:options.churn])
            tracker.add_points(query_pixels(options.churn, h, w, seed=options.seed + t))
        if t % options.sample_every == 0 or t == options.frames - 1:
            s = MemorySample(
                frame=t, rss_mb=rss_mb(),
                python_mb=python_heap_mb() if options.python_heap else None,
                cuda_mb=torch.cuda.memory_allocated(device) / 2**20 if cuda else None,
                cuda_peak_mb=torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None)
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            result.samples.append(s)
            log(f"frame {t}: rss {s.rss_mb:.1f} MB" + (f", python heap {s.python_mb:.2f} MB"
                                                       if s.python_mb is not None else "")
                + (f", cuda {s.cuda_mb:.1f} MB (peak {s.cuda_peak_mb:.1f})" if cuda else "")
                + f", {tracker.num_points} points")


def format_memory_tables(result: MemoryBenchResult, *, rows: int = 11) -> str:
    """Samples at evenly spaced frames, and the summary with the flatness verdict."""
    o = result.options
    hw = o.input_hw or build_model(o.preset, device=torch.device("cpu")).config.input_hw
    lines = [f"# taptr bench memory: {result.machine}",
             f"preset {o.preset} at {hw[1]}x{hw[0]}, camera {o.image_hw[1]}x{o.image_hw[0]}, "
             f"{o.frames} frames in {result.seconds:.0f} s, mode {o.mode}, ~{o.points} points, "
             f"{o.churn} added and removed every {o.churn_every} frames", ""]
    picks = np.unique(np.linspace(0, len(result.samples) - 1, rows).round().astype(int))
    table = []
    for i in picks:
        s = result.samples[i]
        table.append([s.frame, s.rss_mb, "-" if s.python_mb is None else f"{s.python_mb:.3f}",
                      "-" if s.cuda_mb is None else s.cuda_mb,
                      "-" if s.cuda_peak_mb is None else s.cuda_peak_mb])
    lines.append(format_table(["frame", "RSS MB", "Python heap MB", "CUDA MB", "CUDA peak MB"], table))
    lines += ["", "Summary (steady = median of the second half; drift = fitted growth over the second "
                  "half without its largest single rise, shown beside it):", ""]
    srows = []
    for key, v in result.summary().items():
        srows.append([key, f"{v['first']:.2f}", f"{v['peak']:.2f}", f"{v['steady']:.2f}",
                      f"{v['drift']:+.3f}", f"{v['largest_rise']:.3f}", f"{TOLERANCE_MB[key]:g}",
                      "flat" if v["flat"] else "GROWS"])
    lines.append(format_table(["measure", "first MB", "peak MB", "steady MB", "drift MB", "largest rise MB",
                               "tolerance MB", "verdict"], srows))
    return "\n".join(lines)
