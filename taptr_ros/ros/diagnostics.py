"""Counters of the node and the /diagnostics message built from them (no diagnostic_updater).

`NodeStats` is written by the image callback (received, dropped) and the inference worker
(results, timings) and read by the diagnostics timer; one lock guards it. Each
`NodeStats.snapshot` closes a period: rates and means are over the period since the last
snapshot, counters are totals since start.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

STALE_AFTER_S = 5.0
"""No tracks for this long while images arrive (or no images at all) -> WARN."""


@dataclass(frozen=True)
class StatsSnapshot:
    """One diagnostics period (rates and means) plus totals since start."""

    period_s: float
    input_fps: float
    fps: float
    model_ms: float
    latency_ms: float
    latency_max_ms: float
    received_total: int
    processed_total: int
    published_total: int
    dropped_total: int
    dropped_period: int
    skipped_total: int
    points: int
    seconds_since_image: float | None
    seconds_since_result: float | None


class NodeStats:
    """Thread-safe counters and timing sums."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received = self._processed = self._published = self._dropped = self._skipped = 0
        self._points = 0
        self._last_image = self._last_result = None
        self._period_start = time.monotonic()
        self._reset_period()

    def _reset_period(self) -> None:
        self._p_received = self._p_published = self._p_dropped = 0
        self._p_model_ms = self._p_latency_ms = self._p_latency_max = 0.0

    def image_received(self, dropped_previous: bool) -> None:
        """An image was converted and queued; ``dropped_previous``: it replaced an unprocessed one."""
        with self._lock:
            self._received += 1
            self._p_received += 1
            self._last_image = time.monotonic()
            if dropped_previous:
                self._dropped += 1
                self._p_dropped += 1

    def frame_dropped_after_encoding(self, dropped: bool) -> None:
        """The pipeline's encoder handed a frame on; ``dropped``: it replaced an encoded frame
        the tracker never took (counted with the images dropped before encoding)."""
        if dropped:
            with self._lock:
                self._dropped += 1
                self._p_dropped += 1

    def image_skipped(self) -> None:
        """An image could not be read (malformed, unknown encoding) and was skipped."""
        with self._lock:
            self._skipped += 1
            self._last_image = time.monotonic()

    def frame_processed(self) -> None:
        """A frame went through the tracker (its tracks may come later: committed mode)."""
        with self._lock:
            self._processed += 1

    def tracks_published(self, model_ms: float, latency_ms: float, points: int) -> None:
        """One frame's tracks were published: tracker time and image-in to tracks-out time."""
        with self._lock:
            self._published += 1
            self._p_published += 1
            self._p_model_ms += model_ms
            self._p_latency_ms += latency_ms
            self._p_latency_max = max(self._p_latency_max, latency_ms)
            self._points = points
            self._last_result = time.monotonic()

    def snapshot(self, points: int | None = None) -> StatsSnapshot:
        """Close the current period and return its figures.

        Args:
            points: the tracker's current point count; None = the count of the last published
                frame (stale after a reset or removal while no frames come).
        """
        with self._lock:
            now = time.monotonic()
            period = max(now - self._period_start, 1e-9)
            n = self._p_published
            snap = StatsSnapshot(
                period_s=period,
                input_fps=self._p_received / period,
                fps=n / period,
                model_ms=self._p_model_ms / n if n else 0.0,
                latency_ms=self._p_latency_ms / n if n else 0.0,
                latency_max_ms=self._p_latency_max,
                received_total=self._received,
                processed_total=self._processed,
                published_total=self._published,
                dropped_total=self._dropped,
                dropped_period=self._p_dropped,
                skipped_total=self._skipped,
                points=self._points if points is None else int(points),
                seconds_since_image=None if self._last_image is None else now - self._last_image,
                seconds_since_result=None if self._last_result is None else now - self._last_result,
            )
            self._period_start = now
            self._reset_period()
            return snap


def build_diagnostics(snap: StatsSnapshot, *, stamp, name: str, hardware_id: str,
                      extra: dict[str, str]) -> DiagnosticArray:
    """A DiagnosticArray with one status ``name`` describing ``snap``.

    Level: OK while tracks flow; WARN when no image arrived for `STALE_AFTER_S` (or none yet),
    or when images arrive but no tracks were published for that long.
    """
    level, message = DiagnosticStatus.OK, "tracking"
    if snap.seconds_since_image is None or snap.seconds_since_image > STALE_AFTER_S:
        level, message = DiagnosticStatus.WARN, "no images received"
    elif snap.seconds_since_result is None or snap.seconds_since_result > STALE_AFTER_S:
        level, message = DiagnosticStatus.WARN, "images arrive but no tracks are published"
    elif snap.dropped_period:
        message = f"tracking, dropping frames ({snap.dropped_period} in {snap.period_s:.1f} s)"
    values = {
        "fps": f"{snap.fps:.2f}",
        "input_fps": f"{snap.input_fps:.2f}",
        "model_ms": f"{snap.model_ms:.2f}",
        "latency_ms": f"{snap.latency_ms:.2f}",
        "latency_max_ms": f"{snap.latency_max_ms:.2f}",
        "frames_received": str(snap.received_total),
        "frames_processed": str(snap.processed_total),
        "tracks_published": str(snap.published_total),
        "frames_dropped": str(snap.dropped_total),
        "frames_dropped_period": str(snap.dropped_period),
        "images_skipped": str(snap.skipped_total),
        "points": str(snap.points),
        "device": hardware_id,
        **extra,
    }
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array


def diagnostics_values(array: DiagnosticArray) -> dict[str, str]:
    """The key/values of the first status (for tests and tools)."""
    return {kv.key: kv.value for kv in array.status[0].values} if array.status else {}
