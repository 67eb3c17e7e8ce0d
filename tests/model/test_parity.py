"""`taptr parity` on the official fixture (case A, shipped): every recorded stage within tolerance."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

import taptr_ros.cli.parity as parity_cli
from taptr_ros.cli import main
from taptr_ros.model import parity_check


@pytest.fixture(scope="module")
def case_a_run(parity_dir, tmp_path_factory):
    """`taptr parity` with no argument (shipped case A, our fill and check): exit code, text, our arrays."""
    saved = tmp_path_factory.mktemp("parity") / "ours.npz"
    buf = io.StringIO()  # module-scoped, so no capsys
    with contextlib.redirect_stdout(buf):
        code = main(["parity", "--save", str(saved)])
    return code, buf.getvalue(), dict(np.load(saved))


def test_parity_case_a(case_a_run, parity_dir):
    code, text, ours = case_a_run
    assert code == 0, text
    assert str(parity_dir / "taptrv2_parity_caseA.npz") in text and "weights and check: ours" in text
    for name in ("f0_backbone_l3", "f0_memory_l3", "init_query_feat", "win0_pos_apu", "win0_apu_delta",
                 "win_in_feat", "pred_boxes", "pred_xy_px", "pred_vis_logits", "pred_visible"):
        assert f"PASS  {name}" in text
    assert " 0 failed" in text and "FAIL" not in text
    fixture = dict(np.load(parity_dir / "taptrv2_parity_caseA.npz"))
    compared = {name for name in fixture if name not in parity_check.NOT_OUTPUTS}
    assert compared <= set(ours) and len(compared) == 35  # every recorded output was checked
    assert np.abs(ours["pred_boxes"] - fixture["pred_boxes"]).max() < 1e-5  # float noise, not tolerance
    assert np.array_equal(ours["pred_visible"], fixture["pred_visible"])


def test_parity_reports_failures(case_a_run, parity_dir, capsys, monkeypatch):
    """The command does fail: a 2e-4 error on one coordinate, a flipped decision and a missing stage."""
    ours = {k: v.copy() for k, v in case_a_run[2].items()}
    ours["pred_boxes"][7, 2, 0] += 2e-4
    ours["pred_visible"][11, 4] = ~ours["pred_visible"][11, 4]
    del ours["win0_hs"]
    monkeypatch.setattr(parity_cli, "build_fixture_model", lambda *args, **kwargs: None)
    monkeypatch.setattr(parity_cli, "run_fixture", lambda model, fixture, device: ours)
    code = main(["parity", str(parity_dir / "taptrv2_parity_caseA.npz")])
    text = capsys.readouterr().out
    assert code == 1
    assert "FAIL  pred_boxes" in text and "FAIL  pred_visible" in text
    assert "FAIL  win0_hs                not produced" in text
    assert "3 failed" in text


def test_parity_reports_failures_with_shared_scripts(case_a_run, shared_parity_dir, capsys, monkeypatch):
    """--shared-dir switches to the fixture folder's own check_parity.py, which fails the same errors."""
    ours = {k: v.copy() for k, v in case_a_run[2].items()}
    ours["pred_boxes"][7, 2, 0] += 2e-4
    del ours["win0_hs"]
    monkeypatch.setattr(parity_cli, "build_fixture_model", lambda *args, **kwargs: None)
    monkeypatch.setattr(parity_cli, "run_fixture", lambda model, fixture, device: ours)
    code = main(["parity", str(shared_parity_dir / "taptrv2_parity_caseA.npz"),
                 "--shared-dir", str(shared_parity_dir)])
    text = capsys.readouterr().out
    assert code == 1 and f"the files of {shared_parity_dir}" in text
    assert "FAIL  pred_boxes" in text and "FAIL  win0_hs                not produced" in text
    assert "2 failed" in text
