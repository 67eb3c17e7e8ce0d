"""Inference off the executor thread: one worker thread, a one-slot mailbox, newest wins.

The image callback calls `LatestWorker.submit` and returns at once. The worker thread takes
the newest item from the slot and processes it; an item replaced before the worker took it is
dropped (``submit`` says so, the node counts it). So the queue never holds more than one
frame, whatever the camera rate and the model's speed, and the frame processed next is always
the newest one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestWorker(Generic[T]):
    """Processes the newest submitted item on a thread of its own.

    Args:
        process: called on the worker thread with each item taken from the slot.
        on_error: called on the worker thread with any exception ``process`` raised; the
            worker goes on with the next item.
        name: the thread's name.
    """

    def __init__(self, process: Callable[[T], None], *,
                 on_error: Callable[[Exception], None], name: str = "inference") -> None:
        self._process = process
        self._on_error = on_error
        self._cond = threading.Condition()
        self._item: T | None = None
        self._stopping = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def submit(self, item: T) -> bool:
        """Put ``item`` in the slot; returns True if it replaced an item never processed."""
        with self._cond:
            dropped = self._item is not None
            self._item = item
            self._cond.notify()
        return dropped

    @property
    def busy(self) -> bool:
        """True while an item is being processed."""
        with self._cond:
            return self._busy

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end after the current item and wait up to ``timeout`` s for it."""
        with self._cond:
            self._stopping = True
            self._item = None
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._item is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                item, self._item = self._item, None
                self._busy = True
            try:
                self._process(item)
            except Exception as exc:  # noqa: BLE001 - reported, the worker goes on
                self._on_error(exc)
            finally:
                with self._cond:
                    self._busy = False
