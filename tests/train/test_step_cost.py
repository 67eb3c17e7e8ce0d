"""taptr bench train: the training step's stages timed side by side for several track counts."""

from __future__ import annotations

import json

import pytest
import torch

from taptr_ros.cli import main
from taptr_ros.train.step_cost import STAGES, StepCostOptions, format_step_cost, measure_step_cost

TINY = dict(points=(4, 12), frames=8, size=64, repeats=1, threads=1)


def test_rows_time_every_stage_and_count_tracks_per_second():
    options = StepCostOptions(**TINY)
    rows, table = measure_step_cost(options)
    assert [r.points for r in rows] == [4, 12]
    for row in rows:
        assert set(row.ms) == set(STAGES)
        assert all(v > 0 for v in row.ms.values())
        assert row.total_ms == sum(row.ms.values())
        assert row.tracks_per_s == 1000.0 * row.points / row.total_ms
    assert table is None
    text = format_step_cost(rows, options)
    lines = text.splitlines()
    assert lines[2].split()[0] == "4" and lines[2].split()[-1] == "1.00"
    ratio = rows[1].tracks_per_s / rows[0].tracks_per_s
    assert lines[3].split()[-1] == f"{ratio:.2f}"


def test_cli_writes_json_and_profile_table(tmp_path, capsys):
    out = tmp_path / "cost.json"
    assert main(["bench", "train", "--points", "4", "--frames", "8", "--size", "64", "--repeats", "1",
                 "--threads", "1", "--profile", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tracks/s" in printed and "Self CPU" in printed  # the torch.profiler table
    data = json.loads(out.read_text())
    assert data["rows"][0]["points"] == 4 and set(data["rows"][0]["ms"]) == set(STAGES)


def test_gather_backwards_side_by_side_run_the_backward_they_name(monkeypatch):
    """Rows for both CPU backwards of the deformable gather; only "fast" runs _WeightedRowSum's."""
    from taptr_ros.model import deform_gather

    calls = []
    fast_backward = deform_gather._WeightedRowSum.backward

    def counted(ctx, grad):
        calls.append(grad.shape)
        return fast_backward(ctx, grad)

    monkeypatch.setattr(deform_gather._WeightedRowSum, "backward", staticmethod(counted))
    options = StepCostOptions(**{**TINY, "points": (4,)}, gather_backwards=("embedding_bag",))
    rows, _ = measure_step_cost(options)
    assert [r.gather_backward for r in rows] == ["embedding_bag"] and not calls
    options = StepCostOptions(**{**TINY, "points": (4,)}, gather_backwards=("fast", "embedding_bag"))
    rows, _ = measure_step_cost(options)
    assert [(r.gather_backward, r.points) for r in rows] == [("fast", 4), ("embedding_bag", 4)]
    assert calls  # the fast rows' backward went through it
    text = format_step_cost(rows, options)
    assert [line.split()[1] for line in text.splitlines()[2:]] == ["fast", "embedding_bag"]


def test_memory_formats_side_by_side_lay_out_weights_and_frames(monkeypatch):
    """A row per layout; the channels_last rows run the backbone on NHWC weights and frames."""
    from taptr_ros.model.taptr import TAPTRv2

    seen = []
    encode = TAPTRv2.encode_frames

    def spy(self, images):
        conv = next(m for m in self.modules() if isinstance(m, torch.nn.Conv2d))
        seen.append((images.is_contiguous(memory_format=torch.channels_last),
                     conv.weight.is_contiguous(memory_format=torch.channels_last)))
        return encode(self, images)

    monkeypatch.setattr(TAPTRv2, "encode_frames", spy)
    options = StepCostOptions(**{**TINY, "points": (4,)}, memory_formats=("contiguous", "channels_last"))
    rows, _ = measure_step_cost(options)
    assert [r.memory_format for r in rows] == ["contiguous", "channels_last"]
    assert (False, False) in seen and (True, True) in seen
    with pytest.raises(ValueError, match="memory formats"):
        measure_step_cost(StepCostOptions(**TINY, memory_formats=("nhwc",)))
