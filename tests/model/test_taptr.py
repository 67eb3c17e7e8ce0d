"""TAPTRv2 API: frame encoding, query initialisation, offline tracking (tiny preset)."""

from __future__ import annotations

import math

import pytest
import torch

from taptr_ros.model.taptr import track_video
from taptr_ros.model.windowing import Trajectory


def video(model, frames: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(frames, 3, *model.config.input_hw, generator=gen)


def test_encode_frames_is_per_frame(tiny_model):
    frames = video(tiny_model, 3)
    with torch.no_grad():
        both = tiny_model.encode_frames(frames)
        one = tiny_model.encode_frames(frames[1:2])
    assert both.shape == (3, tiny_model.config.num_tokens(), tiny_model.config.hidden_dim)
    torch.testing.assert_close(both[1], one[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="resize"):
        tiny_model.encode_frames(torch.zeros(1, 3, 64, 64))


def test_init_queries_sample_corner_pixel_centres(tiny_model):
    with torch.no_grad():
        memory = tiny_model.encode_frames(video(tiny_model, 1)).expand(3, -1, -1)
        xy = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
        sampled = tiny_model.sample_query_features(memory, xy)
        content, ref = tiny_model.init_queries(memory, xy)
    for lvl, fmap in enumerate(tiny_model.level_maps(memory)):
        torch.testing.assert_close(sampled[0, lvl], fmap[0, :, 0, 0])
        torch.testing.assert_close(sampled[1, lvl], fmap[0, :, -1, -1])
        torch.testing.assert_close(sampled[2, lvl], fmap[0, :, 0, -1])  # x -> column
    torch.testing.assert_close(content, tiny_model.query_init(sampled.flatten(1)))
    torch.testing.assert_close(ref[:, 2:], torch.zeros(3, 2))
    torch.testing.assert_close(ref[1, :2], torch.full((2,), math.log(1e3)))  # clamp: log(1 / 1e-3)


def test_official_init_quirk_scales_x_by_height(make_model):
    quirky = make_model("tiny", input_hw=(64, 128), quirk_init_sample_hw_swap=True)
    fixed = make_model("tiny", input_hw=(64, 128), quirk_init_sample_hw_swap=False)
    with torch.no_grad():
        memory = fixed.encode_frames(torch.randn(1, 3, 64, 128))
        xy = torch.tensor([[1.0, 0.0]])
        maps = fixed.level_maps(memory)
        got_fixed = fixed.sample_query_features(memory, xy)
        got_quirk = quirky.sample_query_features(memory, xy)
    # level 0 is 8 x 16: x = 1 reads column 15 when correct, column (8-1) = 7 with the quirk
    torch.testing.assert_close(got_fixed[0, 0], maps[0][0, :, 0, 15])
    torch.testing.assert_close(got_quirk[0, 0], maps[0][0, :, 0, 7])


def test_track_video_windows_and_frames_before_start(tiny_model):
    frames = video(tiny_model, 10)
    xy = torch.tensor([[0.3, 0.4], [0.6, 0.5], [0.2, 0.8]])
    query_t = torch.tensor([0, 3, 9])
    seen = []
    with torch.no_grad():
        res = track_video(tiny_model, frames, xy, query_t, on_window=lambda k, a, b, i, o: seen.append((k, a, b, i)))
    assert res.windows == [(0, 7), (2, 9)] and [s[:3] for s in seen] == [(0, 0, 7), (1, 2, 9)]
    assert res.boxes.shape == (10, 3, 4) and res.visible.shape == (10, 3)
    for i, t0 in enumerate(query_t.tolist()):
        torch.testing.assert_close(res.xy_norm[: t0 + 1, i], xy[i].expand(t0 + 1, 2), atol=1e-6, rtol=0)
        assert torch.equal(res.vis_logits[: t0 + 1, i], torch.tensor([0.0, 1.0, 0.0]).expand(t0 + 1, 3))
        assert res.visible[: t0 + 1, i].all()
    assert (res.xy_norm[4:, 0] - xy[0]).abs().max() > 1e-4  # tracked frames move
    # the second window starts from the first window's result (frames 2..7) and tail (8, 9)
    inputs: Trajectory = seen[1][3]
    torch.testing.assert_close(inputs.ref[7 - 2 + 1], inputs.ref[7 - 2])


def test_short_video_single_window_and_skipped_windows(tiny_model):
    xy = torch.tensor([[0.5, 0.5]])
    with torch.no_grad():
        short = track_video(tiny_model, video(tiny_model, 5), xy, torch.tensor([1]))
        late = track_video(tiny_model, video(tiny_model, 12), xy, torch.tensor([9]))
        never = track_video(tiny_model, video(tiny_model, 12), xy, torch.tensor([11]))
    assert short.windows == [(0, 4)] and short.boxes.shape[0] == 5
    assert late.windows == [(4, 11)]  # [0, 7] has no frame to update
    assert never.windows == []
    torch.testing.assert_close(never.xy_norm, xy.expand(12, 1, 2), atol=1e-6, rtol=0)


def test_content_propagation_gap(tiny_model):
    frames = video(tiny_model, 16, seed=2)
    xy, qt = torch.tensor([[0.4, 0.4], [0.7, 0.3]]), torch.tensor([0, 1])
    with torch.no_grad():
        official = track_video(tiny_model, frames, xy, qt)  # T < 48: every window
        every = track_video(tiny_model, frames, xy, qt, content_propagation_gap=1)
        sparse = track_video(tiny_model, frames, xy, qt, content_propagation_gap=2)
    assert torch.equal(official.boxes, every.boxes)
    # windows [0,7], [4,11], [8,15]: with gap 2, window 1's content is not carried to
    # frames 12..15, which changes window 2 (frames 8..15) only
    assert torch.equal(sparse.boxes[:8], every.boxes[:8])
    assert (sparse.boxes[8:] - every.boxes[8:]).abs().max() > 1e-6
    with pytest.raises(ValueError, match="content_propagation_gap"):
        track_video(tiny_model, frames, xy, qt, content_propagation_gap=0)
    with pytest.raises(ValueError, match="query_t"):
        track_video(tiny_model, frames, xy, torch.tensor([0, 16]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(make_model):
    cpu = make_model("tiny")
    gpu = make_model("tiny").cuda()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    frames = video(cpu, 9)
    xy, qt = torch.tensor([[0.3, 0.4], [0.6, 0.5]]), torch.tensor([0, 2])
    with torch.no_grad():
        a = track_video(cpu, frames, xy, qt)
        b = track_video(gpu, frames.cuda(), xy.cuda(), qt.cuda())
    assert b.boxes.is_cuda
    torch.testing.assert_close(b.boxes.cpu(), a.boxes, atol=1e-4, rtol=0)
    torch.testing.assert_close(b.vis_logits.cpu(), a.vis_logits, atol=1e-4, rtol=1e-4)


def test_window_passes_decode_the_window_again_from_its_own_positions(tiny_model):
    from taptr_ros.model.taptr import TAPTRv2
    from taptr_ros.model.windowing import point_masks

    twice = TAPTRv2(tiny_model.config.replace(window_passes=2))
    twice.load_state_dict(tiny_model.state_dict())
    twice.eval()
    frames = video(tiny_model, 8)
    xy = torch.tensor([[0.3, 0.4], [0.6, 0.5], [0.2, 0.8]])
    query_t = torch.tensor([0, 0, 2])
    with torch.no_grad():
        memory = tiny_model.encode_frames(frames)
        f0, ref0 = tiny_model.init_queries(memory[:3], xy, frames=query_t)
        state = Trajectory.start(8, f0, ref0)
        tracked, update = point_masks(query_t, 0, 7)
        one = tiny_model.decode_window(memory, state.content, state.ref, f0, tracked, update)
        moved = torch.where(update[..., None], one.ref_out, state.ref)
        again = tiny_model.decode_window(memory, state.content, moved, f0, tracked, update)
        both = twice.decode_window(memory, state.content, state.ref, f0, tracked, update)
    torch.testing.assert_close(both.ref_out, again.ref_out, atol=1e-6, rtol=0)
    torch.testing.assert_close(both.content_out, again.content_out, atol=1e-6, rtol=0)
    torch.testing.assert_close(both.vis_logits, again.vis_logits, atol=1e-6, rtol=0)
    assert (both.ref_out - one.ref_out)[update].abs().max() > 1e-4
    # frames not updated (at or before a start) keep their state through both passes
    torch.testing.assert_close(both.ref_out[~update], state.ref[~update])
