"""Presets and level arithmetic of TaptrConfig."""

from __future__ import annotations

import pytest
import torch

from taptr_ros.model.backbone import Backbone
from taptr_ros.model.config import ConfigError, TaptrConfig, preset


def test_official_preset_numbers():
    cfg = preset("taptrv2")
    assert (cfg.backbone, cfg.feature_stages, cfg.hidden_dim) == ("resnet50", (0, 1, 2, 3), 256)
    assert (cfg.enc_layers, cfg.dec_layers, cfg.num_heads, cfg.num_points, cfg.ffn_dim) == (2, 5, 8, 4, 2048)
    assert (cfg.window_size, cfg.window_stride, cfg.input_hw) == (8, 4, (512, 512))
    assert cfg.mean == (0.485, 0.456, 0.406) and cfg.std == (0.229, 0.224, 0.225)
    assert cfg.visibility_threshold == 0.5 and cfg.map_pos_temperature == cfg.query_pos_temperature == 10
    assert cfg.quirk_init_sample_hw_swap and cfg.quirk_apu_hw_swap
    assert cfg.level_shapes() == ((128, 128), (64, 64), (32, 32), (16, 16))
    assert cfg.num_tokens() == 21760  # per frame at 512x512
    assert cfg.level_channels == (256, 512, 1024, 2048) and cfg.level_strides == (4, 8, 16, 32)


@pytest.mark.parametrize("name", ["small", "tiny"])
def test_small_presets_are_smaller_and_quirk_free(name):
    cfg = preset(name)
    assert cfg.backbone == "resnet18" and cfg.hidden_dim < 256 and cfg.dec_layers < 5
    assert not cfg.quirk_init_sample_hw_swap and not cfg.quirk_apu_hw_swap


@pytest.mark.parametrize("name,hw", [("tiny", (96, 96)), ("tiny", (100, 150)), ("taptrv2", (70, 45))])
def test_level_shapes_match_the_backbone(name, hw):
    cfg = preset(name, input_hw=hw)
    with torch.no_grad():
        feats = Backbone(cfg).eval()(torch.zeros(1, 3, *hw))
    assert tuple(tuple(f.shape[-2:]) for f in feats) == cfg.level_shapes()
    assert all(f.shape[1] == cfg.hidden_dim for f in feats)


def test_dict_round_trip_and_errors():
    cfg = preset("small", input_hw=(200, 240))
    assert TaptrConfig.from_dict(cfg.to_dict()) == cfg
    assert isinstance(cfg.to_dict()["input_hw"], list)
    with pytest.raises(ConfigError, match="bogus"):
        TaptrConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        preset("nope")
    with pytest.raises(ConfigError, match="divisible by num_heads"):
        preset("tiny", hidden_dim=66)
    with pytest.raises(ConfigError, match="feature_stages"):
        preset("tiny", feature_stages=(2, 1))
    with pytest.raises(ConfigError, match="window_passes"):
        preset("tiny", window_passes=0)
    assert preset("taptrv2").window_passes == 1  # the official network decodes a window once
    twice = preset("small", window_passes=2)
    assert TaptrConfig.from_dict(twice.to_dict()).window_passes == 2
    assert preset("taptrv2").start_velocity_frames == 0  # official: the next frames start at the tail
    for bad in (-1, 8, 2.0):  # 0..window_size - 1
        with pytest.raises(ConfigError, match="start_velocity_frames"):
            preset("tiny", start_velocity_frames=bad)
    assert TaptrConfig.from_dict(preset("small", start_velocity_frames=4).to_dict()).start_velocity_frames == 4
    assert preset("taptrv2").query_velocity_frames == 0  # official: every frame starts at the query
    for bad in (-1, 7, 3.0):  # 0..window_size - 2: a frame after the anchor must exist
        with pytest.raises(ConfigError, match="query_velocity_frames"):
            preset("tiny", query_velocity_frames=bad)
    assert TaptrConfig.from_dict(preset("small", query_velocity_frames=3).to_dict()).query_velocity_frames == 3
    for bad in (-1.0, float("nan"), "2"):
        with pytest.raises(ConfigError, match="query_velocity_gate"):
            preset("tiny", query_velocity_gate=bad)
    gated = TaptrConfig.from_dict(preset("small", query_velocity_frames=3, query_velocity_gate=4.0).to_dict())
    assert gated.query_velocity_gate == 4.0
