"""Fast paths of the network against their slow, obvious references."""

from __future__ import annotations

import math

import pytest
import torch

from taptr_ros.model.deform_attn import (KeyAwareDeformAttn, MSDeformAttn, key_aware_reference,
                                         ms_deform_attn_reference, sample_levels)
import taptr_ros.model.deform_gather as deform_gather
from taptr_ros.model.deform_gather import (bilinear_taps, key_aware_attn_gather,
                                           ms_deform_attn_gather, weighted_row_sum)

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
    return ms_deform_attn_reference(values, SHAPES, loc, weights)


def reference_key_aware(keys, values, loc, query):
    return key_aware_reference(keys, values, SHAPES, loc, query)


def test_reference_is_the_obvious_formula():
    """key_aware_reference = per-sample dot product, softmax over (nL, P), weighted values."""
    values, keys, loc, _, query = random_case(4)
    d = keys.shape[-1]
    k_s, v_s = sample_levels(keys, SHAPES, loc), sample_levels(values, SHAPES, loc)
    logits = (query[:, :, :, None, None, :] * k_s).sum(-1) / math.sqrt(d)
    w = logits.flatten(3).softmax(-1).view_as(logits)
    out, ref_logits = reference_key_aware(keys, values, loc, query)
    torch.testing.assert_close(ref_logits, logits, atol=1e-12, rtol=0)
    torch.testing.assert_close(out, (v_s * w[..., None]).sum(dim=(3, 4)).flatten(2), atol=1e-12, rtol=0)


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


def test_encoder_gather_gradients_match_reference():
    """d/d(values, locations, weights) of the encoder's gather as grid_sample's."""
    def grads(fn):
        values, _, loc, weights, _ = random_case(5)
        leaves = [t.requires_grad_() for t in (values, loc, weights)]
        fn(values, loc, weights).sin().sum().backward()
        return [t.grad for t in leaves]
    fast = grads(lambda v, loc, w: ms_deform_attn_gather(v, SHAPES, loc, w))
    slow = grads(reference_attn)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("needs", [(True, True), (True, False), (False, True)])
def test_weighted_row_sum_backward_equals_embedding_bag(monkeypatch, needs):
    """The CPU backward (rows sorted into bags, chunked gather) gives embedding_bag's gradients,
    with rows repeated across and within bags, table rows never read, and bags spanning chunks."""
    monkeypatch.setattr(deform_gather, "_WEIGHT_GRAD_CHUNK", 3)
    gen = torch.Generator().manual_seed(6)
    rows = torch.randint(0, 9, (10, 5), generator=gen, dtype=torch.int32)
    rows[0] = 4  # the same row 5 times in one bag
    table = torch.randn(12, 7, generator=gen, dtype=torch.float64)  # rows 9..11 never read
    weights = torch.rand(10, 5, generator=gen, dtype=torch.float64)
    grad_out = torch.randn(10, 7, generator=gen, dtype=torch.float64)

    def grads(fn):
        t = table.clone().requires_grad_(needs[0])
        w = weights.clone().requires_grad_(needs[1])
        out = fn(rows, t, w)
        out.backward(grad_out)
        return out.detach(), t.grad, w.grad
    fast = grads(weighted_row_sum)
    slow = grads(lambda r, t, w: torch.nn.functional.embedding_bag(
        r, t, per_sample_weights=w, mode="sum"))
    for a, b in zip(fast, slow):
        if b is None:
            assert a is None
        else:
            torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    if needs[0]:
        assert float(fast[1][9:].abs().max()) == 0.0


def randomized(module, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.5 if p.dim() > 1 else 0.1))
    return module


def test_modules_run_the_fast_path_and_match_the_reference(monkeypatch):
    """The modules' outputs with the gather kernels == with the grid_sample references."""
    import taptr_ros.model.deform_attn as da
    gen = torch.Generator().manual_seed(6)
    c, m, p = 12, 3, 2
    enc, cross = randomized(MSDeformAttn(c, m, 3, p), 7), randomized(KeyAwareDeformAttn(c, m, 3, p), 8)
    query = torch.randn(2, 9, c, generator=gen)
    ref = torch.rand(2, 9, 2, generator=gen)
    memory = torch.randn(2, L, c, generator=gen)
    with torch.no_grad():
        fast_enc = enc(query, ref, memory, SHAPES)
        fast = cross(query, ref, memory, SHAPES)
        monkeypatch.setattr(da, "ms_deform_attn_gather", ms_deform_attn_reference)
        monkeypatch.setattr(da, "key_aware_attn_gather", key_aware_reference)
        slow_enc = enc(query, ref, memory, SHAPES)
        slow = cross(query, ref, memory, SHAPES)
    torch.testing.assert_close(fast_enc, slow_enc, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.out, slow.out, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.logits, slow.logits, atol=1e-5, rtol=0)


def test_unmasked_self_attention_equals_an_all_allowed_mask():
    from taptr_ros.model.decoder import MaskedSelfAttention
    gen = torch.Generator().manual_seed(9)
    attn = randomized(MaskedSelfAttention(8, 2), 10)
    qk, v = torch.randn(3, 6, 8, generator=gen), torch.randn(3, 6, 8, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(attn(qk, v, None), attn(qk, v, torch.zeros(3, 6, 6, dtype=torch.bool)),
                                   atol=1e-6, rtol=0)


def test_exclusive_mask_or_none():
    from taptr_ros.model.decoder import exclusive_mask, exclusive_mask_or_none
    uniform = torch.tensor([[True, True, True], [False, False, False]])
    assert exclusive_mask_or_none(uniform) is None
    assert not exclusive_mask(uniform).any()
    mixed = torch.tensor([[True, False, True], [False, False, False]])
    assert torch.equal(exclusive_mask_or_none(mixed), exclusive_mask(mixed))


@pytest.mark.parametrize("late_start", [False, True])
def test_decoder_without_masks_matches_dense_masks(make_model, monkeypatch, late_start):
    """Windows whose masks block nothing skip them; the result is the dense-mask result."""
    import taptr_ros.model.decoder as dec
    from taptr_ros.model.windowing import point_masks
    model = make_model("tiny", seed=3)
    gen = torch.Generator().manual_seed(11)
    w, n = 5, 6
    memory = model.encode_frames(torch.randn(w, 3, 96, 96, generator=gen))
    xy = torch.rand(n, 2, generator=gen)
    start = torch.tensor([0, 0, 0, 2, 2, 4]) if late_start else torch.zeros(n, dtype=torch.long)
    with torch.no_grad():
        f0, ref0 = model.init_queries(memory[start], xy)
        content, ref = f0[None].expand(w, -1, -1), ref0[None].expand(w, -1, -1)
        tracked, update = point_masks(start, 0, w - 1)
        fast = model.decode_window(memory, content, ref, f0, tracked, update)
        monkeypatch.setattr(dec, "exclusive_mask_or_none", dec.exclusive_mask)
        dense = model.decode_window(memory, content, ref, f0, tracked, update)
    for name in ("pos", "vis_logits", "content_out", "ref_out"):
        torch.testing.assert_close(getattr(fast, name), getattr(dense, name), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_folded_backbone_matches_the_conv_then_batchnorm_reference(make_model, monkeypatch, name):
    """conv_bn (frozen BN folded into the conv, cached; NHWC input) == bn(conv(x)) in NCHW."""
    import taptr_ros.model.backbone as bb
    model = make_model(name, seed=4)
    hw = model.config.input_hw
    x = torch.randn(2, 3, *hw, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        fast = model.backbone(x)
        again = model.backbone(x)  # from the folded-weight cache
        monkeypatch.setattr(bb, "conv_bn", lambda conv, bn, inp: bn(conv(inp.contiguous())))
        slow = model.backbone(x.contiguous())
    for f, a, s in zip(fast, again, slow):
        torch.testing.assert_close(f, s, atol=1e-4, rtol=1e-5)
        assert torch.equal(f, a)


def test_folded_weights_follow_parameter_changes(make_model):
    """The cache notices in-place updates (an optimiser step, load_state_dict)."""
    model = make_model("tiny", seed=5)
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(13))
    with torch.no_grad():
        before = model.backbone(x)[0]
        model.backbone.resnet.conv1.weight.mul_(2)
        model.backbone.resnet.bn1.running_var.add_(1)
        after = model.backbone(x)[0]
        model.backbone.resnet.conv1.weight.div_(2)
        model.backbone.resnet.bn1.running_var.sub_(1)
        back = model.backbone(x)[0]
    assert not torch.allclose(before, after)
    torch.testing.assert_close(back, before, atol=1e-5, rtol=1e-5)


def test_folded_backbone_trains_like_the_reference(make_model, monkeypatch):
    """Gradients through the folded convolution equal those through conv then BN."""
    import taptr_ros.model.backbone as bb
    model = make_model("tiny", seed=6)
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(14))

    def grads():
        model.zero_grad()
        sum(f.square().mean() for f in model.backbone(x)).backward()
        return [p.grad.clone() for p in model.backbone.parameters()]
    fast = grads()
    monkeypatch.setattr(bb, "conv_bn", lambda conv, bn, inp: bn(conv(inp.contiguous())))
    slow = grads()
    for f, s in zip(fast, slow):
        torch.testing.assert_close(f, s, atol=1e-4, rtol=1e-4)


def test_encoder_static_inputs_are_cached_and_equal_positions(make_model):
    model = make_model("tiny", seed=7)
    shapes = model.level_shapes
    sine, level, ref = model.encoder.static_inputs(shapes)
    assert model.encoder.static_inputs(shapes)[0] is sine
    torch.testing.assert_close((sine + model.encoder.level_embed[level])[None],
                               model.encoder.positions(shapes), atol=0, rtol=0)


def test_fp16_autocast_keeps_tracks_within_the_stated_tolerance(make_model):
    """precision_context('fp16'): the convolutions and linear layers compute in float16 (seen by
    forward hooks), the tracks differ from fp32's (so half precision did run) but by at most
    2e-3 (normalised), visibility kept. Run on the CPU (torch's fp16 autocast exists there
    too) as a stand-in for CUDA."""
    from taptr_ros.model.inference import precision_context
    from taptr_ros.model.taptr import track_video
    if not torch.amp.autocast_mode.is_autocast_available("cpu"):
        pytest.skip("this torch has no CPU autocast")
    model = make_model("tiny", seed=3)
    gen = torch.Generator().manual_seed(1)
    video = torch.randn(16, 3, 96, 96, generator=gen)
    xy, start = torch.rand(40, 2, generator=gen), torch.randint(0, 6, (40,), generator=gen)

    def run_recording_dtypes():
        """track_video, and the output dtypes of every Conv2d and Linear layer it ran."""
        seen: dict[str, set[torch.dtype]] = {"Conv2d": set(), "Linear": set()}
        hooks = [m.register_forward_hook(lambda mod, _in, out: seen[type(mod).__name__].add(out.dtype))
                 for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        try:
            return track_video(model, video, xy, start), seen
        finally:
            for hook in hooks:
                hook.remove()

    with torch.inference_mode():
        ref, fp32_dtypes = run_recording_dtypes()
        with precision_context("cpu", "fp16"):
            half, fp16_dtypes = run_recording_dtypes()
    assert fp32_dtypes == {"Conv2d": {torch.float32}, "Linear": {torch.float32}}
    assert fp16_dtypes == {"Conv2d": {torch.float16}, "Linear": {torch.float16}}
    error = (half.xy_norm.float() - ref.xy_norm).abs().max()
    assert 0 < error < 2e-3
    assert (half.visible == ref.visible).float().mean() > 0.99
    with pytest.raises(ValueError, match="choose one of"):
        precision_context("cpu", "fp8")


@pytest.mark.slow
def test_compiled_model_matches_eager(make_model):
    """compile_model gives the eager results (the decoder only: compiling is slow on a CPU)."""
    from taptr_ros.model.inference import compile_model
    from taptr_ros.model.windowing import point_masks
    eager = make_model("tiny", seed=8)
    compiled = compile_model(make_model("tiny", seed=8), parts=("decoder",))
    with pytest.raises(ValueError, match="cannot compile"):
        compile_model(eager, parts=("heads",))
    gen = torch.Generator().manual_seed(15)
    images = torch.randn(4, 3, 96, 96, generator=gen)
    xy, start = torch.rand(7, 2, generator=gen), torch.tensor([0, 0, 0, 1, 1, 2, 3])
    results = []
    with torch.inference_mode():
        for model in (eager, compiled):
            memory = model.encode_frames(images)
            f0, ref0 = model.init_queries(memory[start], xy)
            tracked, update = point_masks(start, 0, 3)
            out = model.decode_window(memory, f0[None].expand(4, -1, -1), ref0[None].expand(4, -1, -1),
                                      f0, tracked, update)
            results.append((memory, out))
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-4, rtol=1e-4)
    for name in ("pos", "vis_logits", "content_out"):
        torch.testing.assert_close(getattr(results[1][1], name), getattr(results[0][1], name),
                                   atol=1e-4, rtol=1e-4)


def test_key_aware_gather_reads_frames_in_place():
    """frames= maps each batch entry to a frame of a larger table: == indexing the table."""
    values, keys, loc, _, query = random_case(16, b=3)
    gen = torch.Generator().manual_seed(17)
    ring_k = torch.randn(5, *keys.shape[1:], generator=gen, dtype=keys.dtype)
    ring_v = torch.randn(5, *values.shape[1:], generator=gen, dtype=values.dtype)
    frames = torch.tensor([4, 0, 2])
    out, logits = key_aware_attn_gather(ring_k, ring_v, SHAPES, loc, query, frames=frames)
    ref_out, ref_logits = reference_key_aware(ring_k[frames], ring_v[frames], loc, query)
    torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=0)
    torch.testing.assert_close(logits, ref_logits, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="pass frames="):
        key_aware_attn_gather(ring_k, ring_v, SHAPES, loc, query)


def test_decode_window_reads_a_ring_buffer_in_place(make_model):
    """decode_window(memory_kv=ring, kv_frames=slots) == with the window's keys/values copied out."""
    from taptr_ros.model.windowing import point_masks
    model = make_model("tiny", seed=9)
    gen = torch.Generator().manual_seed(18)
    with torch.no_grad():
        ring_memory = model.encode_frames(torch.randn(6, 3, 96, 96, generator=gen))
        ring_k, ring_v = model.project_memory(ring_memory)  # (nD, 6, L, C)
        slots = torch.tensor([3, 4, 5, 0, 1])  # a window wrapping around the ring
        xy, start = torch.rand(5, 2, generator=gen), torch.tensor([0, 0, 1, 1, 3])
        f0, ref0 = model.init_queries(ring_memory[slots[start]], xy)
        tracked, update = point_masks(start, 0, 4)
        content, ref = f0[None].expand(5, -1, -1), ref0[None].expand(5, -1, -1)
        in_place = model.decode_window(None, content, ref, f0, tracked, update, memory_kv=(ring_k, ring_v),
                                       kv_frames=slots)
        copied = model.decode_window(ring_memory[slots], content, ref, f0, tracked, update)
    for name in ("pos", "vis_logits", "content_out", "ref_out"):
        torch.testing.assert_close(getattr(in_place, name), getattr(copied, name), atol=1e-5, rtol=0)


def test_query_features_read_one_frame_once(make_model, monkeypatch):
    """init_queries on an expanded view of one frame, or on F frames with frames=, equals the
    per-point materialised memory, without materialising it (5000 points of a 512x512 frame
    would be 111 GB)."""
    model = make_model("tiny", seed=10)
    gen = torch.Generator().manual_seed(19)
    with torch.no_grad():
        memory = model.encode_frames(torch.randn(3, 3, 96, 96, generator=gen))
        xy = torch.rand(9, 2, generator=gen)
        frames = torch.tensor([2, 0, 0, 1, 2, 2, 0, 1, 1])
        per_point = memory[frames].clone()
        reference = model.init_queries(per_point, xy)
        by_index = model.init_queries(memory, xy, frames=frames)
        one = memory[1:2]
        expanded = model.init_queries(one.expand(9, -1, -1), xy)
        one_ref = model.init_queries(one.repeat(9, 1, 1), xy)
        sizes = []
        real_maps = model.level_maps
        monkeypatch.setattr(model, "level_maps", lambda m: sizes.append(m.shape[0]) or real_maps(m))
        model.init_queries(one.expand(9, -1, -1), xy)
    assert sizes == [1]  # the expanded view was read as one frame
    for got, want in ((by_index, reference), (expanded, one_ref)):
        torch.testing.assert_close(got[0], want[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(got[1], want[1], atol=0, rtol=0)


@pytest.mark.parametrize("grad", [False, True])
def test_weighted_row_sum_takes_float32_weights_for_a_half_table(grad):
    """Under autocast the table (projected values) is bf16 while the attention weights leave the
    softmax in float32: the sum casts them (on CUDA this failed the first GPU training burst)."""
    torch.manual_seed(0)
    table = torch.randn(20, 8, dtype=torch.bfloat16, requires_grad=grad)
    rows = torch.randint(0, 20, (5, 4))
    weights = torch.rand(5, 4)
    out = weighted_row_sum(rows, table, weights)
    assert out.dtype == torch.bfloat16
    want = (weights[..., None] * table.detach().float()[rows]).sum(1)
    torch.testing.assert_close(out.float(), want, atol=0.1, rtol=0.02)
