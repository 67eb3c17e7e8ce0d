"""No callback ends the node: exceptions escaping a callback are logged once and counted.

rclpy's executor re-raises an exception from a subscription, service or timer callback out of
``spin()``, which ends the process; the worker threads would die silently. `CallbackGuard`
wraps every callback of the node: an exception is caught, counted (``/diagnostics`` shows the
total and the last one), logged at ERROR the first time its (callback, exception type) pair is
seen, and the node goes on. A guarded service callback answers ``success=false`` with the
error as its message, so a caller is never left waiting.

Logging: one call site, always ERROR, never throttled (rclpy keys a logger's severity and
filters by call site and raises if they change between calls).
"""

from __future__ import annotations

import functools
import threading
import traceback
from collections.abc import Callable
from typing import Any


class CallbackGuard:
    """Catches, counts and logs exceptions of the callbacks it wraps. Thread-safe.

    Args:
        log_error: logs one line at ERROR (e.g. ``node.get_logger().error``).
    """

    def __init__(self, log_error: Callable[[str], Any]) -> None:
        self._log_error = log_error
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str]] = set()
        self._count = 0
        self._last = ""

    @property
    def failures(self) -> int:
        """Exceptions caught since start."""
        with self._lock:
            return self._count

    @property
    def last_failure(self) -> str:
        """``"<callback>: <ExceptionType>: <message>"`` of the latest one ('' if none)."""
        with self._lock:
            return self._last

    def report(self, where: str, exc: BaseException) -> None:
        """Count `exc` raised in callback `where`; log it if this pair is new."""
        summary = f"{where}: {type(exc).__name__}: {exc}"
        key = (where, type(exc).__name__)
        with self._lock:
            self._count += 1
            self._last = summary
            first = key not in self._seen
            self._seen.add(key)
        if first:
            frames = traceback.extract_tb(exc.__traceback__)
            origin = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
            self._log_error(f"callback failed, node goes on: {summary}{origin}; further "
                            f"{type(exc).__name__} in {where} are only counted in /diagnostics")

    def callback(self, where: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn` that never raises (a subscription, timer or thread body); returns None on failure."""
        @functools.wraps(fn)
        def guarded(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the point of the guard
                self.report(where, exc)
                return None
        return guarded

    def service(self, where: str, fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """Service callback `fn(request, response)` that, on failure, answers the response with
        ``success = False`` and the error as ``message``."""
        @functools.wraps(fn)
        def guarded(request, response):
            try:
                return fn(request, response)
            except Exception as exc:  # noqa: BLE001 - the point of the guard
                self.report(where, exc)
                try:
                    response.success = False
                    response.message = f"internal error ({type(exc).__name__}): {exc}"
                except Exception:  # noqa: BLE001 - a response without those fields
                    pass
                return response
        return guarded
