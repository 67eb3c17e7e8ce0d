"""Our synthetic-weight fill against the fixture's checksums (case A) and the fixture's own script."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from taptr_ros.model import parity_weights as pw

SEED_A = 20240716


@pytest.fixture(scope="module")
def shapes(parity_dir):
    return pw.read_shapes_tsv(parity_dir / "taptrv2_state_dict_keys.tsv")


@pytest.fixture(scope="module")
def filled(shapes):
    return pw.fill_official(shapes, SEED_A)


def test_splitmix64_reference_values():
    # SplitMix64 (Steele, Lea, Flood 2014; Vigna's splitmix64.c) started at state 0
    assert hex(int(pw.splitmix64(0, 1)[0])) == "0xe220a8397b1dcdaf"
    assert pw.splitmix64(0, 3)[2] == pw.splitmix64(2 * 0x9E3779B97F4A7C15, 1)[0]  # counter-based


def test_fill_matches_every_checksum_of_case_a(parity_dir, shapes, filled):
    checksums = pw.read_checksums_tsv(parity_dir / "weights_checksum_caseA.tsv")
    assert list(checksums) == list(shapes) and len(shapes) == 614
    assert all(a.dtype == np.float32 and a.shape == shapes[k] for k, a in filled.items())
    assert pw.verify_checksums(filled, checksums) == []
    # the check can fail: one value changed by a relative 1e-6, another seed, a missing key
    changed = dict(filled, **{"transformer.level_embed": filled["transformer.level_embed"] * np.float32(1 + 1e-6)})
    assert pw.verify_checksums(changed, checksums) == ["transformer.level_embed"]
    other = pw.fill_official({"class_embed.0.weight": shapes["class_embed.0.weight"]}, SEED_A + 1)
    assert "class_embed.0.weight" in pw.verify_checksums(dict(filled, **other), checksums)
    assert pw.verify_checksums({k: v for k, v in filled.items() if k != "bbox_embed.0.layers.0.bias"},
                               checksums) == ["bbox_embed.0.layers.0.bias"]


def test_aliases_and_rules(shapes, filled):
    aliases = [k for k in shapes
               if k.startswith(("transformer.decoder.bbox_embed.", "transformer.decoder.class_embed."))]
    assert len(aliases) == 40
    assert all(np.array_equal(filled[k], filled[k[len("transformer.decoder."):]]) for k in aliases)
    assert pw.canonical_name("transformer.decoder.layers.0.norm1.weight") == "transformer.decoder.layers.0.norm1.weight"
    var = [a for k, a in filled.items() if k.endswith("running_var")]
    assert var and all((a >= 1).all() for a in var)
    w = filled["class_embed.2.weight"]  # gain 6 / sqrt(256): std about 0.375
    assert 0.3 < w.std() < 0.45
    with pytest.raises(KeyError, match="num_batches_tracked"):
        pw.fill_value("backbone.0.body.bn1.num_batches_tracked", (), SEED_A)


def test_fill_equals_the_fixture_folders_script(shared_parity_dir, parity_dir, shapes, filled):
    """With ../shared/parity beside the checkout: bit-identical to its fill_weights.py, same data files."""
    for name in ("taptrv2_parity_caseA.npz", "taptrv2_state_dict_keys.tsv", "weights_checksum_caseA.tsv"):
        assert (parity_dir / name).read_bytes() == (shared_parity_dir / name).read_bytes(), name
    spec = importlib.util.spec_from_file_location("_shared_fill_weights", shared_parity_dir / "fill_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    theirs = module.fill_state_dict(shapes, SEED_A)
    assert all(np.array_equal(filled[k], theirs[k].numpy()) for k in shapes)
