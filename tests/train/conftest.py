"""Fixtures for the training tests: a tiny, fast network and a fixed synthetic clip."""

from __future__ import annotations

import pytest

from taptr_ros.model.config import preset
from taptr_ros.train.data import synthetic_clips

#: tiny preset at 64x64: a training step takes well under a second on one CPU thread
TINY = preset("tiny", input_hw=(64, 64))


@pytest.fixture(autouse=True)
def _one_thread_for_every_test(one_thread) -> None:
    """Every test of this folder runs with tests/conftest.py's `one_thread`."""


@pytest.fixture
def tiny():
    return TINY


@pytest.fixture(scope="module")
def clip():
    return next(synthetic_clips(TINY, num_frames=12, num_points=6, seed=3))
