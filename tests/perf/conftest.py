"""Fixtures of the performance tests: randomised networks of any preset."""

from __future__ import annotations


import pytest
import torch

from taptr_ros.model.config import preset
from random_weights import randomize  # noqa: F401 (tests/random_weights.py)
from taptr_ros.model.taptr import TAPTRv2


@pytest.fixture(scope="session")
def make_model():
    """make_model(name, seed=0, **overrides) -> randomised network of a preset, eval mode."""
    def build(name: str, seed: int = 0, **overrides) -> TAPTRv2:
        torch.manual_seed(seed)
        return randomize(TAPTRv2(preset(name, **overrides)), seed).eval()
    return build
