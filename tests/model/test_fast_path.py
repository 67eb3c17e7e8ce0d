"""Fast paths of the network against their slow, obvious references."""

from __future__ import annotations

import math

import pytest
import torch

from taptr_ros.model.deform_attn import sample_levels
from taptr_ros.model.deform_gather import (bilinear_taps, key_aware_attn_gather,
                                           ms_deform_attn_gather)

SHAPES = [(5, 6), (3, 2), (1, 1)]
L = sum(h * w for h, w in SHAPES)


def random_case(seed: int, *, b=2, q=7, m=3, p=4, d=5, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    nl = len(SHAPES)
    values = torch.randn(b, L, m, d, generator=gen, dtype=dtype)
    keys = torch.randn(b, L, m, d, generator=gen, dtype=dtype)
    # a margin outside [0, 1] on both sides exercises the zero padding, corner by corner
    loc = torch.rand(b, q, m, nl, p, 2, generator=gen, dtype=dtype) * 1.6 - 0.3
    weights = torch.rand(b, q, m, nl, p, generator=gen, dtype=dtype)
    query = torch.randn(b, q, m, d, generator=gen, dtype=dtype)
    return values, keys, loc, weights, query


def reference_attn(values, loc, weights):
    return (sample_levels(values, SHAPES, loc) * weights[..., None]).sum(dim=(3, 4)).flatten(2)


def reference_key_aware(keys, values, loc, query):
    d = keys.shape[-1]
    k_s, v_s = sample_levels(keys, SHAPES, loc), sample_levels(values, SHAPES, loc)
    logits = (query[:, :, :, None, None, :] * k_s).sum(-1) / math.sqrt(d)
    w = logits.flatten(3).softmax(-1).view_as(logits)
    return (v_s * w[..., None]).sum(dim=(3, 4)).flatten(2), logits


def test_taps_reproduce_grid_sample_exactly_in_float64():
    values, _, loc, _, _ = random_case(0)
    rows, w = bilinear_taps(loc, SHAPES, L)
    assert rows.dtype == torch.int32 and rows.shape == (*loc.shape[:-1], 4)
    assert float(w.min()) >= 0 and float(w.sum(-1).max()) <= 1 + 1e-12
    table = values.reshape(-1, values.shape[-1])
    sampled = (table[rows.long()] * w[..., None]).sum(-2)
    torch.testing.assert_close(sampled, sample_levels(values, SHAPES, loc), atol=1e-12, rtol=0)


def test_taps_at_pixel_centres_and_outside():
    values = torch.arange(L * 2, dtype=torch.float32).view(1, L, 1, 2)
    # level 0 pixel (i=2, j=4) centre; half way between (2,4) and (2,5); fully outside
    loc = torch.tensor([[(4.5) / 6, 2.5 / 5], [5 / 6, 2.5 / 5], [-0.5, 0.5]])
    loc = loc.view(1, 3, 1, 1, 1, 2).expand(1, 3, 1, 3, 1, 2).contiguous()
    out = ms_deform_attn_gather(values, SHAPES, loc, torch.tensor([1.0, 0, 0]).view(1, 1, 1, 3, 1)
                                .expand(1, 3, 1, 3, 1))
    lvl0 = values[0, :30, 0].view(5, 6, 2)
    torch.testing.assert_close(out[0, 0], lvl0[2, 4])
    torch.testing.assert_close(out[0, 1], (lvl0[2, 4] + lvl0[2, 5]) / 2)
    assert torch.all(out[0, 2] == 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ms_deform_attn_gather_matches_reference(dtype):
    values, _, loc, weights, _ = random_case(1, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(ms_deform_attn_gather(values, SHAPES, loc, weights),
                               reference_attn(values, loc, weights), atol=tol, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_key_aware_gather_matches_reference(dtype):
    values, keys, loc, _, query = random_case(2, dtype=dtype)
    out, logits = key_aware_attn_gather(keys, values, SHAPES, loc, query)
    ref_out, ref_logits = reference_key_aware(keys, values, loc, query)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(logits, ref_logits, atol=tol, rtol=0)
    torch.testing.assert_close(out, ref_out, atol=tol, rtol=0)


def test_gradients_match_reference():
    """Training goes through the fast path: d/d(keys, values, locations, query) as grid_sample's."""
    def grads(fn):
        values, keys, loc, _, query = random_case(3)
        leaves = [t.requires_grad_() for t in (values, keys, loc, query)]
        out, logits = fn(keys, values, loc, query)
        (out.sin().sum() + logits.cos().sum()).backward()
        return [t.grad for t in leaves]
    fast = grads(lambda k, v, loc, q: key_aware_attn_gather(k, v, SHAPES, loc, q))
    slow = grads(reference_key_aware)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)
