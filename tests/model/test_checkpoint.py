"""Official key map (on the fixture's key list), official layout loading, our checkpoints."""

from __future__ import annotations

import pytest
import torch

from taptr_ros.model.checkpoint import (CheckpointError, load_checkpoint, load_official,
                                        map_official_state_dict, official_to_ours, save_checkpoint)
from taptr_ros.model.config import preset
from taptr_ros.model.taptr import TAPTRv2


def read_tsv(path):
    shapes = {}
    for line in path.read_text().splitlines():
        if line.strip():
            key, shape = line.split("\t")
            shapes[key] = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
    return shapes


@pytest.fixture(scope="module")
def official_shapes(parity_dir):
    return read_tsv(parity_dir / "taptrv2_state_dict_keys.tsv")


@pytest.fixture(scope="module")
def official_model():
    return TAPTRv2(preset("taptrv2", input_hw=(64, 64)))


def test_every_official_key_maps_onto_the_model(official_shapes, official_model):
    assert len(official_shapes) == 614
    own = official_model.state_dict()
    mapped = {k: official_to_ours(k) for k in official_shapes}
    assert set(mapped.values()) == set(own)  # a bijection up to the aliases
    assert len(official_shapes) - len(set(mapped.values())) == 40
    for key, ours in mapped.items():
        assert tuple(own[ours].shape) == official_shapes[key], key
    aliases = [k for k in official_shapes if k.startswith(("transformer.decoder.bbox_embed.",
                                                            "transformer.decoder.class_embed."))]
    assert len(aliases) == 40
    assert all(mapped[k] == mapped[k[len("transformer.decoder."):]] for k in aliases)
    assert mapped["transformer.decoder.layers.3.caupdate_weight_regressor.0.weight"] == \
        "decoder.layers.3.apu_weights.4.weight"
    assert mapped["input_proj.2.1.bias"] == "backbone.proj.2.norm.bias"


def test_unknown_key_is_refused():
    with pytest.raises(CheckpointError, match="transformer.tgt_embed.weight"):
        official_to_ours("transformer.tgt_embed.weight")


def random_official(shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(s, generator=gen) for k, s in shapes.items() if not k.startswith("transformer.decoder.")
          or not k.startswith(("transformer.decoder.bbox_embed", "transformer.decoder.class_embed"))}
    for k in shapes:
        if k.startswith(("transformer.decoder.bbox_embed.", "transformer.decoder.class_embed.")):
            sd[k] = sd[k[len("transformer.decoder."):]].clone()
    return sd


def test_load_official_layout_with_module_prefix(official_shapes, official_model):
    sd = random_official(official_shapes)
    load_official(official_model, {"ema_model": {"module." + k: v for k, v in sd.items()}})
    own = official_model.state_dict()
    for key in ("backbone.0.body.layer4.2.bn3.running_var", "transformer.level_embed",
                "transformer.decoder.layers.4.temp_self_attn.in_proj_weight", "class_embed.2.weight",
                "query_between_window_updater.2.bias"):
        assert torch.equal(own[official_to_ours(key)], sd[key]), key


def test_key_problems_are_listed_in_one_error(official_shapes, official_model):
    sd = random_official(official_shapes, seed=1)
    del sd["transformer.decoder.layers.0.norm3.weight"]
    sd["input_proj.0.0.bias"] = torch.zeros(7)
    with pytest.raises(CheckpointError) as err:
        load_official(official_model, sd)
    msg = str(err.value)
    assert "1 missing: decoder.layers.0.norm_ffn.weight" in msg
    assert "1 mis-shaped: backbone.proj.0.conv.bias (7,) != (256,)" in msg
    sd = random_official(official_shapes, seed=1)
    sd["class_embed.1.bias"] = sd["class_embed.1.bias"] + 1  # alias now differs
    sd["transformer.enc_out_bbox_embed.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        map_official_state_dict(sd)
    msg = str(err.value)
    assert "conflicting aliases" in msg and "class_embed.1.bias" in msg
    assert "1 unexpected: transformer.enc_out_bbox_embed.weight" in msg


def test_our_checkpoint_round_trip(tiny_model, tmp_path):
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, tiny_model, metadata={"step": 3})
    loaded = load_checkpoint(path)
    assert loaded.config == tiny_model.config and loaded.metadata == {"step": 3}
    frames = torch.randn(2, 3, *tiny_model.config.input_hw)
    with torch.no_grad():
        assert torch.equal(loaded.model.encode_frames(frames), tiny_model.encode_frames(frames))
    for a, b in zip(loaded.model.state_dict().values(), tiny_model.state_dict().values()):
        assert torch.equal(a, b)


def test_our_loader_refuses_other_files(tiny_model, tmp_path):
    torch.save({"ema_model": {}}, tmp_path / "official.pth")
    with pytest.raises(CheckpointError, match="load_official"):
        load_checkpoint(tmp_path / "official.pth")
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "broken.pt")
    save_checkpoint(tmp_path / "tiny.pt", tiny_model)
    data = torch.load(tmp_path / "tiny.pt", weights_only=True)
    data["config"]["hidden_dim"] = 32
    torch.save(data, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="mis-shaped"):
        load_checkpoint(tmp_path / "other.pt")
