"""`taptr bench transport`: fresh publisher/subscriber processes count delivered frames."""

from __future__ import annotations

import pytest

from taptr_ros.ros.tools.bench_transport import (
    TransportRun,
    format_transport,
    run_transport,
)

pytestmark = pytest.mark.slow


def test_small_frames_arrive_with_and_without_the_profile(monkeypatch) -> None:
    import os
    monkeypatch.setattr(os, "environ", dict(os.environ))  # the run moves to a domain of its own
    runs = [run_transport(64, 48, rate_hz=20, frames=20, profile=p) for p in (False, True)]
    for run in runs:
        assert run.sent == 20
        assert 10 <= run.received <= 20, run  # 9 kB frames fit in any transport
    table = format_transport(runs)
    assert "| 64x48 rgb8 | 20 Hz |" in table and f"{runs[1].received}/20" in table


def test_delivered_share() -> None:
    assert TransportRun(640, 480, 30.0, True, 40, 30).delivered == 0.75
    assert TransportRun(640, 480, 30.0, True, 0, 0).delivered == 0.0
