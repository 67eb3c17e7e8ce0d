"""taptr bench train: the training step's stages timed side by side for several track counts."""

from __future__ import annotations

import json

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
