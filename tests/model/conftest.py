"""Fixtures for the model tests: a randomised tiny network, the parity folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from taptr_ros.model.config import preset
from random_weights import randomize  # noqa: F401 (tests/random_weights.py)
from taptr_ros.model.taptr import TAPTRv2

REPO_ROOT = Path(__file__).resolve().parents[2]
PARITY_DIR = REPO_ROOT.parent / "shared" / "parity"


@pytest.fixture(scope="session")
def tiny_model() -> TAPTRv2:
    """Tiny preset with random weights, eval mode, CPU."""
    torch.manual_seed(0)
    return randomize(TAPTRv2(preset("tiny"))).eval()


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    """../shared/parity relative to the repository root; skips when absent."""
    if not (PARITY_DIR / "taptrv2_parity_caseA.npz").is_file():
        pytest.skip(f"parity fixture not found at {PARITY_DIR} (expected next to the repository)")
    return PARITY_DIR


@pytest.fixture(scope="session")
def make_model():
    """make_model(name, seed=0, **overrides) -> randomised network of a preset, eval mode."""
    def build(name: str, seed: int = 0, **overrides) -> TAPTRv2:
        torch.manual_seed(seed)
        return randomize(TAPTRv2(preset(name, **overrides)), seed).eval()
    return build
