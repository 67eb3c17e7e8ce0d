"""`taptr bench engine --adds N`: points added at random frames and stamps while timed; decoder
passes per frame counted (the extra passes of points joining committed windows show)."""

from __future__ import annotations

import json

import numpy as np
import torch

from taptr_ros.bench.engine import Adds


def test_adds_are_seeded_inside_the_timed_frames_and_buffered():
    adds = Adds.random(50, 8, 16, 8, 60, 80, seed=3)
    again = Adds.random(50, 8, 16, 8, 60, 80, seed=3)
    np.testing.assert_array_equal(adds.after, again.after)
    assert adds.after.min() >= 8 and adds.after.max() <= 15
    back = adds.after - adds.start
    assert back.min() == 0 and back.max() == 7  # the latest frame up to the oldest buffered one
    assert adds.xy.shape == (50, 2) and (adds.xy >= 0).all() and (adds.xy <= [79, 59]).all()


def test_engine_bench_with_adds_counts_decoder_passes(tmp_path, capsys):
    from taptr_ros.cli import main

    threads = torch.get_num_threads()
    out = tmp_path / "engine.json"
    try:
        code = main(["bench", "engine", "--presets", "tiny", "--points", "2", "--frames", "16",
                     "--input-size", "64x64", "--image-size", "80x60", "--adds", "6", "--threads", "1",
                     "--quiet", "--json", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    text = capsys.readouterr().out
    assert "decoder passes" in text and "6 points added" in text
    cells = {c["runner"]: c for c in json.loads(out.read_text())["cells"]}
    assert set(cells) == {"offline", "committed", "immediate"}  # the naive loop cannot add at old stamps
    passes = {runner: cell["decoder_passes_per_frame"] for runner, cell in cells.items()}
    assert passes["offline"] == 0.25  # windows [4, 11], [8, 15] over the 8 timed frames
    # one pass per frame, two per 8 committed, plus the windows decoded again for joining points
    assert passes["immediate"] > 1.0 and passes["committed"] > 0.25
    # committed mode decodes again only before its next decode: the adds until then share it
    assert passes["committed"] - 0.25 <= passes["immediate"] - 1.0
