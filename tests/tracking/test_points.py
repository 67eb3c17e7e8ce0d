"""PointRegistry: rows, id order, initial state everywhere, removal frees rows and state."""

from __future__ import annotations

import pytest
import torch

from taptr_ros.model.windowing import Trajectory
from taptr_ros.tracking.points import PointRegistry


def registry(capacity: int = 4) -> PointRegistry:
    return PointRegistry(capacity, 3, 2, 3, device="cpu", dtype=torch.float32)


def test_add_sets_initial_state_in_every_slot_and_the_future():
    reg = registry()
    reg.add([0, 1], 5, torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.ones(2, 4))
    rows = reg.rows()
    assert reg.ids.tolist() == [0, 1] and reg.starts.tolist() == [5, 5] and len(reg) == 2
    assert torch.equal(reg.content[:, rows], torch.tensor([[1.0, 2.0], [3.0, 4.0]]).expand(3, 2, 2))
    assert torch.equal(reg.vis[:, rows], torch.tensor([0.0, 1.0, 0.0]).expand(3, 2, 3))
    assert torch.equal(reg.future_ref[rows], torch.ones(2, 4)) and reg.start[rows].tolist() == [5, 5]


def test_removed_rows_are_zeroed_reused_and_ids_stay_ordered():
    reg = registry(3)
    reg.add([0, 1, 2], 0, torch.ones(3, 2), torch.ones(3, 4))
    with pytest.raises(ValueError, match="free rows"):
        reg.add([3], 0, torch.ones(1, 2), torch.ones(1, 4))
    assert reg.remove([1, 7, 1]) == [1]
    assert reg.ids.tolist() == [0, 2] and 1 not in reg
    assert reg.content[:, 1].abs().sum() == 0 and reg.f0[1].abs().sum() == 0  # freed at once
    reg.add([3], 4, torch.full((1, 2), 9.0), torch.zeros(1, 4))
    assert reg.rows().tolist() == [0, 2, 1]  # row 1 reused, id order kept
    assert reg.starts.tolist() == [0, 0, 4]
    with pytest.raises(ValueError, match="new and above"):
        reg.add([2], 0, torch.ones(1, 2), torch.ones(1, 4))


def test_gather_scatter_future_and_enter_frame():
    reg = registry()
    reg.add([0, 1], 0, torch.zeros(2, 2), torch.zeros(2, 4))
    slots, rows = torch.tensor([2, 0]), reg.rows()
    state = reg.gather(slots, rows)
    new = Trajectory(state.content + 1, state.ref + 2, state.vis_logits + 3)
    reg.scatter(slots, rows, new)
    assert torch.equal(reg.gather(slots, rows).ref, new.ref) and reg.ref[1].abs().sum() == 0
    reg.set_future(rows[:1], Trajectory(new.content[-1:, :1], new.ref[-1:, :1], new.vis_logits[-1:, :1]),
                   copy_content=False)
    assert torch.equal(reg.future_ref[0], torch.full((4,), 2.0)) and reg.future_content[0].abs().sum() == 0
    reg.enter_frame(1)
    assert torch.equal(reg.ref[1, 0], torch.full((4,), 2.0)) and torch.equal(reg.ref[1, 1], torch.zeros(4))


def test_entered_frames_continue_the_future_velocity():
    """set_future with a velocity: the j-th frame entered after it starts at tail + j * velocity
    (normalised); without one, and for points added later, at the tail (exactly)."""
    reg = registry()
    reg.add([0, 1], 0, torch.zeros(2, 2), torch.zeros(2, 4))  # x = y = 0.5
    rows = reg.rows()
    tail = Trajectory(torch.zeros(1, 2, 2), torch.zeros(1, 2, 4), torch.zeros(1, 2, 3))
    reg.set_future(rows, tail, copy_content=True, velocity=torch.tensor([[0.1, -0.05], [0.0, 0.0]]))
    reg.add([2], 0, torch.zeros(1, 2), torch.full((1, 4), 0.3))
    for slot, j in ((1, 1), (2, 2)):
        reg.enter_frame(slot)
        xy = reg.ref[slot, :, :2].sigmoid()
        torch.testing.assert_close(xy[0], torch.tensor([0.5 + 0.1 * j, 0.5 - 0.05 * j]))
        assert torch.equal(reg.ref[slot, 1], torch.zeros(4)) and torch.equal(reg.ref[slot, 2], torch.full((4,), 0.3))
    reg.set_future(rows[:1], Trajectory(torch.zeros(1, 1, 2), torch.ones(1, 1, 4), torch.zeros(1, 1, 3)),
                   copy_content=True)
    reg.enter_frame(0)
    assert torch.equal(reg.ref[0, 0], torch.ones(4))  # no velocity: the tail
