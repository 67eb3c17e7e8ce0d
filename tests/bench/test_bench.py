"""The benchmarks' own pieces: the naive loop is a correct baseline, the runners and tables work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from random_weights import randomize  # tests/random_weights.py

from taptr_ros.bench.common import (
    BenchError,
    Sample,
    format_table,
    median_sample,
    resolve_clock,
    resolve_dtype,
    synthetic_frames,
    timed_stages,
)
from taptr_ros.bench.naive import NaiveWindowTracker
from taptr_ros.model.config import preset
from taptr_ros.model.preprocess import pixels_to_norm, preprocess_frame
from taptr_ros.model.taptr import TAPTRv2, track_video

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def make_model():
    """make_model(name, seed=0) -> randomised network of a preset, eval mode."""
    def build(name: str, seed: int = 0) -> TAPTRv2:
        torch.manual_seed(seed)
        return randomize(TAPTRv2(preset(name)), seed).eval()
    return build


def test_naive_loop_equals_offline_on_the_cut_video(make_model):
    """Every frame's result = track_video on the video cut at that frame (the engine's
    immediate semantics), so the naive baseline does the same job as the engine."""
    model = make_model("tiny", seed=2)
    frames = synthetic_frames(14, 40, 56, seed=3)
    xy = np.array([[5.0, 7.0], [30.5, 20.0], [55.0, 39.0]])
    naive = NaiveWindowTracker(model)
    got = []
    for t, frame in enumerate(frames):
        got.append(naive.push(frame))
        if t == 0:
            naive.add_points(xy)
    video = torch.stack([preprocess_frame(f, model.config) for f in frames])
    xy_norm = torch.from_numpy(pixels_to_norm(xy, 56, 40))
    for t in range(1, len(frames)):
        with torch.no_grad():
            ref = track_video(model, video[:t + 1], xy_norm, torch.zeros(3, dtype=torch.long),
                              content_propagation_gap=1)
        expect = ref.xy_norm[t].numpy() * np.array([55, 39])
        np.testing.assert_allclose(got[t][0], expect, atol=1e-4, rtol=0)
        np.testing.assert_allclose(got[t][1], ref.vis_logits[t, :, 1].sigmoid().numpy(), atol=1e-5, rtol=0)


def test_timed_stages_splits_encoder_and_decoder(make_model):
    model = make_model("tiny", seed=1)
    ticks = iter(range(1000))
    with timed_stages(model, torch.device("cpu"), clock=lambda: float(next(ticks))) as st:
        with torch.no_grad():
            memory = model.encode_frames(torch.zeros(1, 3, 96, 96))
            model.project_memory(memory)
    assert st.encoder == 1000.0 and st.decoder == 1000.0  # one tick per timed call
    assert st.calls == {"encode_frames": 1, "project_memory": 1}
    assert "encode_frames" not in vars(model)  # wrappers removed


def test_options_refused_with_a_reason():
    with pytest.raises(BenchError, match="needs CUDA"):
        resolve_dtype("fp16", torch.device("cpu"))
    with pytest.raises(BenchError, match="choose one of"):
        resolve_clock("sundial", torch.device("cpu"))
    assert resolve_clock("auto", torch.device("cpu"))[0] == "cpu"


def test_format_table_is_markdown():
    """Right-aligned columns as wide as their widest cell; floats with 2 decimals below 100,
    none from 100 up."""
    text = format_table(["a", "bb"], [[1, 2.5], ["x", 1234.5], [12.345, 99.5]])
    assert text.splitlines() == [
        "|     a |    bb |",
        "|-------|-------|",
        "|     1 |  2.50 |",
        "|     x |  1234 |",
        "| 12.35 | 99.50 |",
    ]


def test_sample_other_is_what_the_stages_leave_and_medians_are_per_field():
    assert Sample(10.0, 2.5, 4.0).other == pytest.approx(3.5)
    median = median_sample([Sample(9.0, 1.0, 7.0), Sample(1.0, 5.0, 2.0), Sample(5.0, 3.0, 9.0)])
    assert (median.total, median.encoder, median.decoder) == (5.0, 3.0, 7.0)
    assert median.other == pytest.approx(-5.0)  # each field's own median, not one sample's split


def test_engine_bench_cli_runs_and_writes_json(tmp_path, capsys):
    from taptr_ros.cli import main
    out = tmp_path / "engine.json"
    code = main(["bench", "engine", "--presets", "tiny", "--points", "2", "--frames", "12",
                 "--input-size", "64x64", "--image-size", "80x60", "--quiet", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    for word in ("offline", "committed", "immediate", "naive", "committed / offline"):
        assert word in text
    cells = json.loads(out.read_text())["cells"]
    assert {c["runner"] for c in cells} == {"offline", "committed", "immediate", "naive"}
    assert all(c["ms_per_frame"] > 0 for c in cells)


def test_engine_bench_refuses_too_few_frames(capsys):
    from taptr_ros.cli import main
    assert main(["bench", "engine", "--presets", "tiny", "--points", "1", "--frames", "8", "--quiet"]) == 2
    assert "must exceed the window" in capsys.readouterr().err


def test_memory_verdict_takes_out_one_allocator_step_but_not_a_steady_leak():
    """Second half of 11 samples: one 9 MB step (the allocator mapping an arena once) with
    +-0.3 MB noise is flat, its rise reported; a leak of 6 MB spread over the same samples,
    or two 3 MB steps, grows."""
    from taptr_ros.bench.memory import MemoryBenchOptions, MemoryBenchResult, MemorySample

    def verdict(rss: list[float]) -> dict:
        result = MemoryBenchResult(MemoryBenchOptions(), "test")
        result.samples = [MemorySample(frame=12 * i, rss_mb=v, python_mb=None, cuda_mb=None, cuda_peak_mb=None)
                          for i, v in enumerate(rss)]
        return result.summary()["rss"]

    noise = [0.0, 0.3, -0.2, 0.1, -0.3, 0.2, 0.0, -0.1, 0.3, -0.2, 0.1]
    first_half = [650.0] * 10
    step = verdict(first_half + [659 + n + (9 if i >= 6 else 0) for i, n in enumerate(noise)])
    assert step["flat"] and step["largest_rise"] > 8.5 and abs(step["drift"]) < 1.0
    leak = verdict(first_half + [659 + n + 0.6 * i for i, n in enumerate(noise)])
    assert not leak["flat"] and leak["drift"] > 4.0
    two = verdict(first_half + [659 + n + 3 * (i >= 3) + 3 * (i >= 8) for i, n in enumerate(noise)])
    assert not two["flat"]


def test_memory_bench_cli_finds_the_engine_flat(tmp_path, capsys):
    """`taptr bench memory` on 240 frames: the second half (120 frames, 11 samples, 24 point
    churns; window 8) must show no drift beyond the tolerances (RSS 2 MB, Python heap 256 kB),
    exit 0 and print the flat verdict for both measures. A tensor of a 64x64 frame kept per
    frame (48 kB) would add ~6 MB over the second half and fail here."""
    from taptr_ros.bench.memory import TOLERANCE_MB
    from taptr_ros.cli import main
    out = tmp_path / "memory.json"
    code = main(["bench", "memory", "--frames", "240", "--sample-every", "12", "--points", "6",
                 "--churn", "2", "--churn-every", "5", "--input-size", "64x64", "--quiet",
                 "--json", str(out)])
    text = capsys.readouterr().out
    result = json.loads(out.read_text())
    summary = result["summary"]
    assert code == 0, text
    assert set(summary) == {"rss", "python"}  # no CUDA measure on the CPU
    second_half = [s for s in result["samples"] if s["frame"] >= 239 / 2]
    assert len(second_half) == 11
    for key, measure in summary.items():
        assert measure["flat"] and measure["drift"] <= TOLERANCE_MB[key], (key, measure)
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()]
    verdicts = {row[0]: row[-1] for row in rows if row[0] in ("rss", "python")}
    assert verdicts == {"rss": "flat", "python": "flat"}, text


def test_node_bench_sets_the_nodes_window_passes():
    pytest.importorskip("rclpy")
    from taptr_ros.ros.tools.bench_node import NodeBenchOptions, _node_command

    for passes in (0, 2):
        command = _node_command(NodeBenchOptions(window_passes=passes), Path("model.pt"))
        assert f"window_passes:={passes}" in command


@pytest.mark.slow
def test_node_bench_runs_the_real_node(tmp_path, capsys):
    """taptr bench node: a real taptr-tracker process answers every measured frame, without
    and with the pipeline (one node each); the latency it reports is at least the model time
    it subtracts."""
    pytest.importorskip("rclpy")
    from taptr_ros.cli import main
    out = tmp_path / "node.json"
    code = main(["bench", "node", "--frames", "30", "--warmup", "10", "--points", "4", "--quiet",
                 "--json", str(out), "--device", "cpu", "--pipeline", "off,on"])
    assert code == 0, capsys.readouterr().err
    results = json.loads(out.read_text())
    assert [r["options"]["pipeline"] for r in results] == [False, True]
    for result in results:
        assert result["answered"] == result["published"] == 30
        s = result["summary"]
        # The node's internal latency comes from /diagnostics periods, which need not cover
        # exactly the frames timed end to end, so only the slowest end-to-end frame bounds its mean.
        assert s["model_ms"] > 0 and s["e2e_mean_ms"] > 0
        assert max(result["latency_ms"]) >= s["node_internal_ms"] > 0
    printed = capsys.readouterr().out
    assert printed.count("overhead ms") == 2
    assert "pipeline off, 1 thread(s)" in printed and "pipeline on, 1 thread(s)" in printed
    assert "fps ratio to pipeline off: pipeline off 1.00x, pipeline on " in printed
