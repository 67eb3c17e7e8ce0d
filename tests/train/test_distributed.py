"""`taptr train` under torchrun: 2 CPU processes (gloo) end with identical weights."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def test_two_cpu_ranks_end_with_identical_weights(tmp_path):
    bindir = Path(sys.executable).parent
    taptr = shutil.which("taptr", path=str(bindir)) or shutil.which("taptr")
    if taptr is None:
        pytest.skip("the taptr console script is not installed")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--no-python", taptr, "train", "--preset", "tiny", "--size", "64", "--steps", "3",
           "--frames", "8", "--points", "4", "--warmup", "1", "--val-every", "0", "--threads", "1",
           "--no-progress", "--out", str(tmp_path / "run")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TAPTR_DIST_BACKEND": "gloo", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert sorted(s["rank"] for s in summaries) == [0, 1]
    assert all(s["world_size"] == 2 and s["step"] == 3 and s["clips"] == 6 for s in summaries)
    # the ranks trained on different clips (different local losses) ...
    assert summaries[0]["total"] != summaries[1]["total"]
    # ... and still hold the same weights: gradients were averaged
    assert summaries[0]["weights_sha1"] == summaries[1]["weights_sha1"]
    assert (tmp_path / "run" / "last.pt").exists() and (tmp_path / "run" / "train.csv").exists()
