"""Deformable attention: sampler conventions, fast path == reference, layouts vs a naive loop."""

from __future__ import annotations

import math

import pytest
import torch

from taptr_ros.model.deform_attn import (KeyAwareDeformAttn, MSDeformAttn, sample_keys_values,
                                         sample_levels)

SHAPES = [(5, 6), (3, 2)]


def naive_bilinear(fmap: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """fmap (h, w, D) at normalised (x, y), align_corners=False, zeros outside."""
    h, w, d = fmap.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(d, dtype=torch.float64)
    for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
        for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                out += wy * wx * fmap[yy, xx].double()
    return out


def random_map(gen, d=3, m=2):
    return torch.randn(1, sum(h * w for h, w in SHAPES), m, d, generator=gen)


def test_sampler_conventions():
    gen = torch.Generator().manual_seed(0)
    values = random_map(gen)
    lvl0 = values[0, :30].view(5, 6, 2, 3)
    # pixel centre (i=2, j=4) of level 0, a point half way between two pixels, a point outside
    locs = torch.tensor([[(4 + 0.5) / 6, (2 + 0.5) / 5], [5 / 6, 2.5 / 5], [-0.5, 0.5]])
    loc = locs.view(1, 3, 1, 1, 1, 2).expand(1, 3, 2, 2, 1, 2)
    out = sample_levels(values, SHAPES, loc)  # (1, Q, M, nL, P, D)
    torch.testing.assert_close(out[0, 0, :, 0, 0], lvl0[2, 4])
    torch.testing.assert_close(out[0, 1, :, 0, 0], (lvl0[2, 4] + lvl0[2, 5]) / 2)
    assert torch.all(out[0, 2] == 0)


def test_fused_key_value_sampling_matches_reference():
    gen = torch.Generator().manual_seed(1)
    keys, values = random_map(gen, d=4), random_map(gen, d=4)
    loc = torch.rand(1, 7, 2, 2, 3, 2, generator=gen) * 1.4 - 0.2
    k_s, v_s = sample_keys_values(keys, values, SHAPES, loc)
    torch.testing.assert_close(k_s, sample_levels(keys, SHAPES, loc), atol=1e-5, rtol=0)
    torch.testing.assert_close(v_s, sample_levels(values, SHAPES, loc), atol=1e-5, rtol=0)


def randomized(module, gen):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.5 if p.dim() > 1 else 0.1))
    return module


def test_key_aware_attention_matches_naive_loop():
    gen = torch.Generator().manual_seed(2)
    c, m, nl, p = 8, 2, 2, 3
    d = c // m
    attn = randomized(KeyAwareDeformAttn(c, m, nl, p), gen)
    memory = torch.randn(1, 36, c, generator=gen)
    query = torch.randn(1, 2, c, generator=gen)
    ref = torch.tensor([[[0.3, 0.6], [0.9, 0.1]]])
    res = attn(query, ref, memory, SHAPES)
    with torch.no_grad():
        keys, vals = attn.key_proj(memory)[0], attn.value_proj(memory)[0]
        offsets, qp = attn.sampling_offsets(query)[0], attn.query_proj(query)[0]
        maps_k = [keys[:30].view(5, 6, c), keys[30:].view(3, 2, c)]
        maps_v = [vals[:30].view(5, 6, c), vals[30:].view(3, 2, c)]
        for qi in range(2):
            heads = []
            for h in range(m):
                logits, samples = [], []
                for lvl, (hl, wl) in enumerate(SHAPES):
                    for pt in range(p):
                        idx = ((h * nl + lvl) * p + pt) * 2  # documented offset layout
                        x = ref[0, qi, 0] + offsets[qi, idx] / wl
                        y = ref[0, qi, 1] + offsets[qi, idx + 1] / hl
                        k = naive_bilinear(maps_k[lvl][..., h * d:(h + 1) * d], x.item(), y.item())
                        samples.append(naive_bilinear(maps_v[lvl][..., h * d:(h + 1) * d], x.item(), y.item()))
                        logits.append((qp[qi, h * d:(h + 1) * d].double() * k).sum() / math.sqrt(d))
                logits = torch.stack(logits)
                assert torch.allclose(res.logits[0, qi, h].flatten().double(), logits, atol=1e-5)
                heads.append((logits.softmax(0)[:, None] * torch.stack(samples)).sum(0))
            expect = attn.output_proj(torch.cat(heads).float())
            torch.testing.assert_close(res.out[0, qi], expect, atol=1e-5, rtol=1e-5)
    assert res.offsets.shape == (1, 2, m, nl, p, 2)


def test_encoder_attention_with_zero_offsets_reads_the_reference():
    gen = torch.Generator().manual_seed(3)
    attn = randomized(MSDeformAttn(8, 2, 1, 2), gen)  # one level: (6, 5) map
    with torch.no_grad():
        attn.sampling_offsets.weight.zero_()
        attn.sampling_offsets.bias.zero_()
        src = torch.randn(1, 30, 8, generator=gen)
        ref = torch.tensor([[[(1 + 0.5) / 6, (2 + 0.5) / 5]]])  # centre of pixel row 2, column 1
        out = attn(torch.randn(1, 1, 8, generator=gen), ref, src, SHAPES[:1])
        expect = attn.output_proj(attn.value_proj(src[0, 2 * 6 + 1]))
    # every sample sits on the same pixel centre, so any attention weights give its value
    torch.testing.assert_close(out[0, 0], expect, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(4)
    values = random_map(gen, d=4)
    loc = torch.rand(1, 5, 2, 2, 3, 2, generator=gen)
    torch.testing.assert_close(sample_levels(values.cuda(), SHAPES, loc.cuda()).cpu(),
                               sample_levels(values, SHAPES, loc), atol=1e-5, rtol=1e-5)


def test_fast_attention_core_matches_reference():
    from taptr_ros.model.deform_attn import ms_deform_attn, ms_deform_attn_reference
    gen = torch.Generator().manual_seed(5)
    values = random_map(gen, d=4, m=3)
    loc = torch.rand(2, 9, 3, 2, 4, 2, generator=gen) * 1.2 - 0.1
    weights = torch.rand(2, 9, 3, 2, 4, generator=gen)
    values = torch.cat((values, values.flip(1)))  # batch of 2
    fast = ms_deform_attn(values, SHAPES, loc, weights)
    assert fast.shape == (2, 9, 12)
    torch.testing.assert_close(fast, ms_deform_attn_reference(values, SHAPES, loc, weights), atol=1e-5, rtol=0)
