"""CallbackGuard: nothing escapes, each failure is counted, each kind logged once; no `.warn(`."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from taptr_ros.ros.callback_guard import CallbackGuard

PACKAGE = Path(__file__).resolve().parents[2] / "taptr_ros"


def test_exceptions_are_counted_and_each_kind_logged_once() -> None:
    logged: list[str] = []
    guard = CallbackGuard(logged.append)
    calls = []

    def flaky(value):
        calls.append(value)
        if value < 0:
            raise ValueError(f"negative {value}")
        if value == 0:
            raise ZeroDivisionError("zero")
        return value * 2

    wrapped = guard.callback("image", flaky)
    assert wrapped(3) == 6
    assert wrapped(-1) is None and wrapped(-2) is None and wrapped(0) is None
    assert calls == [3, -1, -2, 0]
    assert guard.failures == 3
    assert guard.last_failure == "image: ZeroDivisionError: zero"
    assert len(logged) == 2  # ValueError once, ZeroDivisionError once
    assert "image: ValueError: negative -1" in logged[0] and "test_callback_guard.py" in logged[0]
    guard.callback("timer", flaky)(-7)  # same type, another callback: logged
    assert len(logged) == 3 and guard.failures == 4


def test_a_failing_service_answers_success_false() -> None:
    guard = CallbackGuard(lambda _: None)

    def handler(request, response):
        raise RuntimeError(f"broken by {request}")

    response = guard.service("add_points", handler)("req", SimpleNamespace(success=True, message=""))
    assert response.success is False
    assert "RuntimeError" in response.message and "broken by req" in response.message
    ok = guard.service("add_points", lambda req, resp: resp)("r", SimpleNamespace(success=True))
    assert ok.success is True and guard.failures == 1


def test_no_deprecated_warn_calls_in_the_package() -> None:
    # rclpy's deprecated .warn() wraps .warning(): every .warn() of a process shares one call
    # site, so a throttled and a plain one raise ValueError (Kilted)
    offenders = [f"{path.relative_to(PACKAGE)}:{n}"
                 for path in PACKAGE.rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if re.search(r"\.warn\(", line)]
    assert offenders == []
