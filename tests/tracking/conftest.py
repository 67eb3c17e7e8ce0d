"""Fixtures for the online engine tests: the seeded random tiny network, one torch thread.
The helpers (random streams, the offline reference) are in tracking_helpers.py."""

from __future__ import annotations

import pytest

from taptr_ros.model.taptr import TAPTRv2
from tracking_helpers import make_model


@pytest.fixture(scope="session")
def tiny() -> TAPTRv2:
    """Tiny preset (96x96 input), seeded random weights, eval, CPU."""
    return make_model(0)


@pytest.fixture(autouse=True)
def _one_thread_for_every_test(one_thread) -> None:
    """Every test of this folder runs with tests/conftest.py's `one_thread`."""
