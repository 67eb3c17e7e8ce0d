"""Window schedule, masks and the after-window state update."""

from __future__ import annotations

import pytest
import torch

from taptr_ros.model.decoder import WindowOutput
from taptr_ros.model.windowing import (Trajectory, commit_window, extrapolate, official_content_gap,
                                       point_masks, restart_from_query_velocity, window_ranges)


@pytest.mark.parametrize("frames,expect", [
    (12, [(0, 7), (4, 11)]),
    (15, [(0, 7), (4, 11), (7, 14)]),  # last window shifted back, overlapping by 5
    (16, [(0, 7), (4, 11), (8, 15)]),
    (8, [(0, 7)]),
    (9, [(0, 7), (1, 8)]),
    (5, [(0, 4)]),  # our extension for T < 8
    (1, [(0, 0)]),
])
def test_window_ranges(frames, expect):
    assert window_ranges(frames, 8, 4) == expect


def test_window_ranges_rejects_empty_video():
    with pytest.raises(ValueError, match="at least one frame"):
        window_ranges(0, 8, 4)


def test_official_content_gap():
    assert [official_content_gap(t) for t in (5, 24, 47, 48, 100)] == [1, 1, 1, 2, 4]


def test_point_masks():
    tracked, update = point_masks(torch.tensor([0, 5, 9]), 4, 11)
    assert tracked.shape == (8, 3)
    assert tracked[:, 0].all() and update[:, 0].all()
    assert tracked[:, 1].tolist() == [False, True] + [True] * 6
    assert update[:, 1].tolist() == [False, False] + [True] * 6
    assert update[:, 2].tolist() == [False] * 6 + [True, True] and tracked[5, 2] and not update[5, 2]


def fake_output(frames: int, points: int, c: int, value: float) -> WindowOutput:
    full = lambda *s: torch.full(s, value)  # noqa: E731
    return WindowOutput(pos_apu=full(2, frames, points, 4), pos=full(2, frames, points, 4),
                        vis_logits=full(2, frames, points, 3), apu_delta=full(2, frames, points, 2),
                        layer_feat=full(2, frames, points, c), hs=full(2, frames, points, c),
                        ref_out=full(frames, points, 4), content_out=full(frames, points, c))


def test_commit_window_updates_then_copies_the_tail():
    traj = Trajectory.start(10, torch.zeros(2, 5), torch.zeros(2, 4))
    assert torch.equal(traj.vis_logits[3, 1], torch.tensor([0.0, 1.0, 0.0]))
    update = torch.ones(4, 2, dtype=torch.bool)
    update[:, 1] = torch.tensor([False, False, True, False])  # point 1: tail frame not updated
    out = fake_output(4, 2, 5, 7.0)
    new = commit_window(traj, 2, out, update, copy_tail=True)
    assert torch.all(traj.ref == 0)  # input untouched
    assert torch.all(new.ref[:2] == 0) and torch.all(new.ref[2:, 0] == 7)
    assert new.ref[:, 1, 0].tolist() == [0, 0, 0, 0, 7, 0, 0, 0, 0, 0]
    assert torch.all(new.vis_logits[2:, 0] == 7) and torch.all(new.content[2:6] == 7)
    assert torch.all(new.content[6:] == 7)  # tail content carried to the future
    kept = commit_window(traj, 2, out, update, copy_tail=True, copy_content=False)
    assert torch.all(kept.content[6:] == 0) and torch.all(kept.ref[6:, 0] == 7)
    last = commit_window(traj, 2, out, update, copy_tail=False)
    assert torch.all(last.ref[6:] == 0) and torch.all(last.vis_logits[6:, 0] == torch.tensor([0.0, 1.0, 0.0]))


def test_commit_window_on_a_slice_equals_the_full_trajectory():
    gen = torch.Generator().manual_seed(0)
    traj = Trajectory(torch.randn(12, 3, 4, generator=gen), torch.randn(12, 3, 4, generator=gen),
                      torch.randn(12, 3, 3, generator=gen))
    out = fake_output(8, 3, 4, 2.0)
    update = torch.rand(8, 3, generator=gen) > 0.3
    full = commit_window(traj, 4, out, update, copy_tail=True)
    part = commit_window(traj.frames(4, 11), 0, out, update, copy_tail=True)
    for a, b in ((full.ref[4:], part.ref), (full.content[4:], part.content), (full.vis_logits[4:], part.vis_logits)):
        assert torch.equal(a, b)


def logit(x: float) -> float:
    return float(torch.logit(torch.tensor(x)))


def test_commit_window_with_start_velocity_continues_the_tail_inside_the_image():
    """Point 0 moves +0.05 in x a frame over the window, point 1 stands still, point 2 moves
    -0.1 a frame towards the left border: the frames after the tail continue the velocity over
    the last 2 frames, clamped to the image; a still point's positions are the tail's exactly."""
    frames, window = 9, 4
    traj = Trajectory.start(frames, torch.zeros(3, 5), torch.zeros(3, 4))
    out = fake_output(window, 3, 5, 0.0)
    x = {0: [0.30, 0.35, 0.40, 0.45], 1: [0.5] * 4, 2: [0.50, 0.40, 0.30, 0.20]}
    for p, xs in x.items():
        out.ref_out[:, p, 0] = torch.tensor([logit(v) for v in xs])
        out.ref_out[:, p, 1] = logit(0.6)
    update = torch.ones(window, 3, dtype=torch.bool)
    new = commit_window(traj, 0, out, update, copy_tail=True, velocity_frames=2)
    xy = new.ref[..., :2].sigmoid()
    torch.testing.assert_close(xy[4:, 0, 0], torch.tensor([0.50, 0.55, 0.60, 0.65, 0.70]))
    torch.testing.assert_close(xy[4:, :, 1], torch.full((5, 3), 0.6))
    assert torch.equal(new.ref[4:, 1], out.ref_out[-1, 1].expand(5, 4))  # no logit round trip
    assert xy[4, 2, 0] == pytest.approx(0.1, abs=1e-5) and torch.all(xy[5:, 2, 0] < 1.1e-3)  # border
    assert torch.equal(new.ref[4:, :, 2:], out.ref_out[-1:, :, 2:].expand(5, 3, 2))  # w, h held
    held = commit_window(traj, 0, out, update, copy_tail=True)
    assert torch.equal(held.ref[4:], out.ref_out[-1:].expand(5, 3, 4))
    assert torch.equal(held.ref[:4], new.ref[:4]) and torch.equal(held.content, new.content)


def test_extrapolate_steps_per_point():
    """(F, N) steps: each point its own number of frames after the tail."""
    ref = torch.tensor([[logit(0.5), logit(0.5), 0.0, 0.0], [logit(0.2), logit(0.8), 0.0, 0.0]])
    velocity = torch.tensor([[0.01, 0.0], [0.0, -0.02]])
    got = extrapolate(ref, velocity, torch.tensor([[1.0, 3.0]]))[0, :, :2].sigmoid()
    torch.testing.assert_close(got, torch.tensor([[0.51, 0.5], [0.2, 0.74]]))


def test_restart_from_query_velocity_moves_only_frames_past_the_anchor_of_points_starting_here():
    """Window of 8 frames (video frames 4..11): point 0 started before it (every frame updated:
    untouched), point 1 starts at frame 5 (window index 1) and moves +0.04 in x a frame over
    its first pass's frames 1..3, then was lost (0.2 on); point 2 starts at frame 9 (index 5):
    with K = 2 no frame lies past its anchor (index 7), so it is untouched. Point 1's frames
    after s + K = 3 continue from frame 3 at 0.04 a frame; everything else bit for bit."""
    tracked, update = point_masks(torch.tensor([0, 5, 9]), 4, 11)
    ref = torch.randn(8, 3, 4)
    xs = [0.3, 0.30, 0.34, 0.38, 0.2, 0.2, 0.2, 0.2]
    ref[:, 1, 0] = torch.tensor([logit(v) for v in xs])
    ref[:, 1, 1] = logit(0.6)
    got = restart_from_query_velocity(ref, tracked, update, 2)
    xy = got[..., :2].sigmoid()
    torch.testing.assert_close(xy[4:, 1, 0], torch.tensor([0.42, 0.46, 0.50, 0.54]))
    torch.testing.assert_close(xy[4:, 1, 1], torch.full((4,), 0.6))
    assert torch.equal(got[:4], ref[:4]) and torch.equal(got[:, [0, 2]], ref[:, [0, 2]])
    assert torch.equal(got[4:, 1, 2:], ref[3:4, 1, 2:].expand(4, 2))  # w, h of the anchor
    assert torch.equal(restart_from_query_velocity(ref, tracked, update, 0), ref)
    # K = 4: point 1's anchor is index 5, frames 6, 7 continue (0.2 - 0.3) / 4 a frame
    far = restart_from_query_velocity(ref, tracked, update, 4)[..., 0].sigmoid()
    torch.testing.assert_close(far[6:, 1], torch.tensor([0.175, 0.15]))
    assert torch.equal(far[:6], ref[:6, :, 0].sigmoid())


def test_restart_gate_keeps_far_frames_the_pass_put_near_their_restart():
    """Point 1 starts at window index 1 and moves +0.04 in x a frame (K = 2, anchor index 3,
    restart 0.42, 0.46, 0.50, 0.54 on frames 4..7). The pass put frames 4..7 at 0.425, 0.40,
    0.2, 0.2: 0.5, 6, 30 and 34 px from their restarts in a 100 px wide input. With a gate
    of 2 px frame 4 keeps the pass's 0.425, the others restart; a gate of 10 px keeps frames
    4 and 5; a gate of 0 restarts all four (as without the gate)."""
    tracked, update = point_masks(torch.tensor([0, 5, 9]), 4, 11)
    ref = torch.randn(8, 3, 4)
    xs = [0.3, 0.30, 0.34, 0.38, 0.425, 0.40, 0.2, 0.2]
    ref[:, 1, 0] = torch.tensor([logit(v) for v in xs])
    ref[:, 1, 1] = logit(0.6)

    def far_x(gate_px: float) -> list[float]:
        got = restart_from_query_velocity(ref, tracked, update, 2, keep_within_px=gate_px, input_wh=(100, 50))
        assert torch.equal(got[:, [0, 2]], ref[:, [0, 2]]) and torch.equal(got[:4], ref[:4])
        return [round(v, 4) for v in got[4:, 1, 0].sigmoid().tolist()]

    assert far_x(0.0) == [0.42, 0.46, 0.50, 0.54]
    assert far_x(2.0) == [0.425, 0.46, 0.50, 0.54]
    assert far_x(10.0) == [0.425, 0.40, 0.50, 0.54]
