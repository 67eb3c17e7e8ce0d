"""Decoder on one window: attention masks, update mask, outputs (tiny preset, random weights)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from taptr_ros.model.decoder import MaskedSelfAttention, WindowOutput
from taptr_ros.model.windowing import point_masks

W, N = 6, 4
QUERY_T = torch.tensor([0, 0, 2, 4])  # point 3 starts late: untracked on frames 0..3


@pytest.fixture(scope="module")
def window(tiny_model):
    gen = torch.Generator().manual_seed(5)
    c, nl = tiny_model.config.hidden_dim, tiny_model.config.num_tokens()
    memory = torch.randn(W, nl, c, generator=gen)
    content = torch.randn(W, N, c, generator=gen)
    ref = torch.logit(0.2 + 0.6 * torch.rand(N, 2, generator=gen))
    ref = torch.cat((ref, torch.zeros(N, 2)), -1)[None].repeat(W, 1, 1)
    init = torch.randn(N, c, generator=gen)
    tracked, update = point_masks(QUERY_T, 0, W - 1)
    return dict(window_memory=memory, content_in=content, ref_in=ref, init_content=init,
                tracked=tracked, update=update)


def decode(model, **kw) -> WindowOutput:
    with torch.no_grad():
        return model.decode_window(**kw)


def test_output_shapes(tiny_model, window):
    out = decode(tiny_model, **window)
    layers, c = tiny_model.config.dec_layers, tiny_model.config.hidden_dim
    assert out.pos_apu.shape == out.pos.shape == (layers, W, N, 4)
    assert out.vis_logits.shape == (layers, W, N, 3) and out.apu_delta.shape == (layers, W, N, 2)
    assert out.layer_feat.shape == out.hs.shape == (layers, W, N, c)
    assert out.ref_out.shape == (W, N, 4) and out.content_out.shape == (W, N, c)
    torch.testing.assert_close(out.ref_out.sigmoid(), out.pos[-1])


def test_update_mask_freezes_position_and_content(tiny_model, window):
    out = decode(tiny_model, **window)
    upd = window["update"]
    start = window["ref_in"].sigmoid()
    assert torch.all(out.apu_delta[:, ~upd] == 0)
    assert torch.equal(out.pos_apu[0][~upd], start[~upd])
    torch.testing.assert_close(out.pos[:, ~upd], start[~upd].expand(out.pos.shape[0], -1, -1), atol=1e-6, rtol=0)
    assert torch.equal(out.content_out[~upd], window["content_in"][~upd])
    # where updated, the network does move things
    assert out.apu_delta[:, upd].abs().min() > 0
    assert (out.content_out[upd] - window["content_in"][upd]).abs().max() > 1e-3


def test_untracked_entries_do_not_leak_into_tracked_ones(tiny_model, window):
    base = decode(tiny_model, **window)
    tracked = window["tracked"]
    noisy = dict(window)
    noise = torch.randn(window["content_in"].shape, generator=torch.Generator().manual_seed(9))
    noisy["content_in"] = torch.where(tracked[..., None], window["content_in"], window["content_in"] + noise)
    noisy["ref_in"] = torch.where(tracked[..., None], window["ref_in"], window["ref_in"] + 0.5)
    out = decode(tiny_model, **noisy)
    torch.testing.assert_close(out.pos[:, tracked], base.pos[:, tracked], atol=1e-6, rtol=0)
    torch.testing.assert_close(out.hs[:, tracked], base.hs[:, tracked], atol=1e-5, rtol=0)
    assert (out.hs[:, ~tracked] - base.hs[:, ~tracked]).abs().max() > 1e-2


def test_tracked_points_and_frames_do_attend_each_other(tiny_model, window):
    base = decode(tiny_model, **window)
    changed = dict(window)
    content = window["content_in"].clone()
    content[3, 0] += 1.0  # point 0 at frame 3 (tracked)
    changed["content_in"] = content
    out = decode(tiny_model, **changed)
    diff = (out.hs - base.hs).abs().amax(dim=(0, 3))  # (W, N)
    assert diff[3, 1] > 1e-4  # spatial attention: another point of the same frame
    assert diff[5, 0] > 1e-4  # temporal attention: the same point at another frame


def test_masked_attention_matches_torch_multihead_attention():
    gen = torch.Generator().manual_seed(6)
    ours, ref = MaskedSelfAttention(8, 2), nn.MultiheadAttention(8, 2, batch_first=True)
    with torch.no_grad():
        for p in list(ours.parameters()):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        ref.in_proj_weight.copy_(ours.in_proj_weight)
        ref.in_proj_bias.copy_(ours.in_proj_bias)
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)
    qk, v = torch.randn(3, 5, 8, generator=gen), torch.randn(3, 5, 8, generator=gen)
    tracked = torch.rand(3, 5, generator=gen) > 0.5
    blocked = tracked[:, :, None] != tracked[:, None, :]
    with torch.no_grad():
        expect, _ = ref(qk, qk, v, attn_mask=blocked.repeat_interleave(2, 0))
        got = ours(qk, v, blocked)
        torch.testing.assert_close(got, expect, atol=1e-5, rtol=1e-5)
        # a fully blocked row stays finite and attends to itself only
        blocked[0, 2] = True
        got = ours(qk, v, blocked)
        alone = ours(qk[:1, 2:3], v[:1, 2:3], torch.zeros(1, 1, 1, dtype=torch.bool))
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got[0, 2], alone[0, 0], atol=1e-6, rtol=0)


def test_cached_per_frame_projections_give_the_same_window(tiny_model, window):
    base = decode(tiny_model, **window)
    with torch.no_grad():
        per_frame = [tiny_model.project_memory(window["window_memory"][t:t + 1]) for t in range(W)]
    keys = torch.cat([k for k, _ in per_frame], 1)
    values = torch.cat([v for _, v in per_frame], 1)
    assert keys.shape == (tiny_model.config.dec_layers, W, tiny_model.config.num_tokens(),
                          tiny_model.config.hidden_dim)
    cached = decode(tiny_model, **{**window, "window_memory": None}, memory_kv=(keys, values))
    for a, b in ((cached.pos, base.pos), (cached.vis_logits, base.vis_logits), (cached.content_out, base.content_out)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_between_window_delta_is_dropped_in_training_only(tiny_model, window):
    """Official recipe: the content delta is dropped with p = 0.6 in training; eval is exact."""
    from taptr_ros.model.decoder import WINDOW_UPDATE_DROPOUT

    upd = window["update"]
    exact = decode(tiny_model, **window)
    delta = (exact.content_out - window["content_in"])[upd]
    try:
        tiny_model.train()
        torch.manual_seed(0)
        dropped = decode(tiny_model, **window)
    finally:
        tiny_model.eval()
    # layer outputs do not depend on the dropout; only the content handed to the next window
    torch.testing.assert_close(dropped.pos, exact.pos)
    kept = (dropped.content_out - window["content_in"])[upd]
    zero = kept == 0
    assert 0.4 < float(zero.float().mean()) < 0.8
    torch.testing.assert_close(kept[~zero], delta[~zero] / (1 - WINDOW_UPDATE_DROPOUT))
    again = decode(tiny_model, **window)
    assert torch.equal(again.content_out, exact.content_out)
