"""Fixtures for the model tests: a randomised tiny network, the parity folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from taptr_ros.model.config import preset
from random_weights import randomize  # noqa: F401 (tests/random_weights.py)
from taptr_ros.model.taptr import TAPTRv2

REPO_ROOT = Path(__file__).resolve().parents[2]
PARITY_DIR = REPO_ROOT / "tests" / "fixtures" / "parity"  # case A, shipped
SHARED_PARITY_DIR = REPO_ROOT.parent / "shared" / "parity"  # the fixture's own folder, if beside the checkout


@pytest.fixture(scope="session")
def tiny_model() -> TAPTRv2:
    """Tiny preset with random weights, eval mode, CPU."""
    torch.manual_seed(0)
    return randomize(TAPTRv2(preset("tiny"))).eval()


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    """tests/fixtures/parity: parity case A's data files, shipped with the repository (never skips)."""
    assert (PARITY_DIR / "taptrv2_parity_caseA.npz").is_file(), f"{PARITY_DIR} lacks the case A fixture"
    return PARITY_DIR


@pytest.fixture(scope="session")
def shared_parity_dir() -> Path:
    """../shared/parity relative to the repository root (with its scripts); skips when absent."""
    if not (SHARED_PARITY_DIR / "fill_weights.py").is_file():
        pytest.skip(f"parity folder not found at {SHARED_PARITY_DIR} (expected next to the repository)")
    return SHARED_PARITY_DIR


@pytest.fixture(scope="session")
def make_model():
    """make_model(name, seed=0, **overrides) -> randomised network of a preset, eval mode."""
    def build(name: str, seed: int = 0, **overrides) -> TAPTRv2:
        torch.manual_seed(seed)
        return randomize(TAPTRv2(preset(name, **overrides)), seed).eval()
    return build
