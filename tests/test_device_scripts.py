"""scripts/device_train.sh and scripts/device_bench.sh, dry-run on the CPU with tiny budgets.

On the GPU machine they run with their defaults (cuda, bf16, the official preset at 512x512);
here the same scripts run end to end with the environment knobs turned down, so a GPU session
finds them working.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taptr_ros.model.checkpoint import load_checkpoint
from taptr_ros.train.log import read_csv

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _env(**knobs: str) -> dict[str, str]:
    env = dict(os.environ, PYTHON=sys.executable, **knobs)
    env.pop("PYTHONPATH", None)
    return env


def test_device_train_writes_the_ema_checkpoint_and_logs(tmp_path, tiny_checkpoint) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "device_train.sh"), str(out)], cwd=tmp_path,
        env=_env(TRAIN_DEVICE="cpu", TRAIN_SECONDS="2", TRAIN_WORKERS="1", TRAIN_POINTS="4",
                 TRAIN_BATCH="1", TRAIN_INIT=str(tiny_checkpoint), TRAIN_PRECISION="bf16",
                 TRAIN_SIZE="80", PRETRAIN_SECONDS="1", PRETRAIN_BATCH="1", TRAIN_PRESETS="still,easy",
                 TRAIN_ISOLATED="0.5", TMPDIR=str(tmp_path)),
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert {"ema.pt", "summary.json", "train.csv", "val.csv", "pretrain.json",
            "pretrain_val.csv"} <= {p.name for p in out.iterdir()}
    pretrained = json.loads((out / "pretrain.json").read_text())
    assert pretrained["step"] >= 1 and len(read_csv(out / "pretrain_val.csv")) >= 2  # before, after
    summary = json.loads((out / "summary.json").read_text())
    steps = summary["step"]
    assert 1 <= steps < 20000  # the time budget ended it
    assert len(read_csv(out / "train.csv")) == steps
    assert [int(r["step"]) for r in read_csv(out / "val.csv")] == [steps]
    loaded = load_checkpoint(out / "ema.pt")
    model = loaded.model
    run_config = loaded.metadata["train_config"]  # the knobs reached the run
    assert list(run_config["presets"]) == ["still", "easy"] and run_config["isolated_share"] == 0.5
    assert run_config["occluded_weight"] == 0.6
    assert model.config.name == "tiny" and next(model.parameters()).dtype.is_floating_point
    assert model.config.input_hw == (80, 80)  # TRAIN_SIZE, not the checkpoint's own size


def test_device_bench_writes_the_tables(tmp_path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "device_bench.sh"), str(out)], cwd=tmp_path,
        env=_env(BENCH_DEVICE="cpu", BENCH_PRESET="tiny", BENCH_SIZE="64x64", BENCH_POINTS="2,4",
                 BENCH_PRECISIONS="fp32", BENCH_FRAMES="10"),
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = (out / "cuda_tests.log").read_text()
    assert "skipped" in log or "passed" in log, log
    table = (out / "bench_fp32.txt").read_text()
    assert "tiny" in table
    rows = json.loads((out / "bench_fp32.json").read_text())
    assert rows  # the engine's results, machine-readable
