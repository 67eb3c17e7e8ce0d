"""Points joining committed windows: an extra decoder pass per window joined, only when a point
starts in one; the ops between two frames commute; a start frame in two committed windows
joins both; the memory of the windows' frames that left the buffer is kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tracking_helpers import Offline, random_video
from taptr_ros.tracking.feature_cache import FeatureCache
from taptr_ros.tracking.options import TrackerOptions
from taptr_ros.tracking.tracker import OnlineTracker


def count_passes(model, monkeypatch) -> list[int]:
    """Points of each decoder pass, appended as `decode_window` runs."""
    calls: list[int] = []
    original = model.decode_window

    def counting(memory, content, *args, **kwargs):
        calls.append(content.shape[1])
        return original(memory, content, *args, **kwargs)

    monkeypatch.setattr(model, "decode_window", counting)
    return calls


@pytest.mark.parametrize("independent", [False, True])
def test_one_extra_decoder_pass_only_when_a_point_joins_the_committed_window(tiny, monkeypatch, independent):
    frames = random_video(20, 16, (30, 40))
    tracker = OnlineTracker(tiny, TrackerOptions(independent_points=independent))
    calls = count_passes(tiny, monkeypatch)
    extra = []
    for t, frame in enumerate(frames):
        before = len(calls)
        tracker.push(frame, stamp=t)
        extra.append(len(calls) - before - 1)  # immediate mode: one pass per frame, + recommits
        if t == 0:
            tracker.add_points([[3.0, 4.0], [20.0, 10.0]])
        if t == 5:  # no committed window yet
            tracker.add_points([[8.0, 8.0]], stamp=3)
        if t == 7:  # the tail of the window just committed: two adds, one pass
            tracker.add_points([[30.0, 20.0]])
            tracker.add_points([[10.0, 25.0]])
        if t == 9:  # after the committed window [0, 7]: nothing to redo
            tracker.add_points([[12.0, 12.0]])
            tracker.add_points([[14.0, 12.0]], stamp=8)
        if t == 13:  # inside [4, 11], after its first frames left the buffer
            tracker.add_points([[5.0, 20.0]], stamp=9)
    # frame 0 has no point: no pass; at 8 the tail add is redone jointly, alone it changes
    # nothing (a point is not updated at its start frame); at 14 the add at 9 is redone
    assert extra[0] == -1
    assert extra[1:] == [0] * 7 + [0 if independent else 1] + [0] * 5 + [1, 0]
    # the pass at 14 (after 13 frame passes and, jointly, the one at 8): jointly every point
    # tracked in [4, 11], alone only the new one
    assert calls[14 if not independent else 13] == (1 if independent else 8)
    if not independent:
        assert calls[7] == 5


def test_committed_mode_decodes_again_once_before_its_next_decode(tiny, monkeypatch):
    """Committed mode decodes only at frames 3 (mod 4): points joining [4, 11] after frames 12
    and 13 are decoded into it once, at push 15, before [8, 15] is committed."""
    frames = random_video(23, 17, (30, 40))
    tracker = OnlineTracker(tiny, TrackerOptions(mode="committed"))
    calls = count_passes(tiny, monkeypatch)
    per_push = []
    for t, frame in enumerate(frames):
        before = len(calls)
        tracker.push(frame, stamp=t)
        per_push.append(len(calls) - before)
        if t == 0:
            tracker.add_points([[3.0, 4.0], [20.0, 10.0]])
        if t == 12:
            tracker.add_points([[30.0, 20.0]], stamp=9)
        if t == 13:
            tracker.add_points([[10.0, 25.0]], stamp=10)
    assert per_push[12:] == [0, 0, 0, 2, 0]  # [4, 11] again (one pass for both), then [8, 15]
    assert calls[-1] == calls[-2] == 4


def test_ops_between_two_frames_commute(tiny):
    """A joining add and a removal land at the same boundary in either order: the window is
    committed again once, at the next push, with the points tracked then."""
    frames = random_video(21, 14, (30, 40))
    runs = []
    for order in ("add first", "remove first"):
        tracker, out = OnlineTracker(tiny), []
        for t, frame in enumerate(frames):
            out += tracker.push(frame, stamp=t)
            if t == 0:
                tracker.add_points([[3.0, 4.0], [20.0, 10.0], [30.0, 5.0]])
            if t == 11:
                if order == "add first":
                    tracker.add_points([[25.0, 20.0]], stamp=10)
                    tracker.remove_points([1])
                else:
                    tracker.remove_points([1])
                    tracker.add_points([[25.0, 20.0]], stamp=10)
        runs.append(out)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.xy, b.xy)
        np.testing.assert_array_equal(a.visibility, b.visibility)


@pytest.mark.parametrize("independent", [False, True])
def test_a_start_frame_also_inside_the_window_before_decodes_both_again(tiny, monkeypatch, independent):
    """After frame 13 the committed windows holding buffered frames are [0, 7] and [4, 11]:
    frames 6 and 7 lie in both. A point added there joins both (two passes), one at 9 only
    [4, 11] (one pass); from frame 14 on every result equals the offline model's on the cut."""
    frames = random_video(22, 18, (40, 56))
    offline = Offline(tiny, frames)
    xy = np.array([[10.0, 12.0], [40.0, 30.0], [25.0, 20.0]])
    norm = xy / [55, 39]
    calls = count_passes(tiny, monkeypatch)
    for stamp, passes in ((9, 1), (7, 1 if independent else 2), (6, 2)):
        tracker, out = OnlineTracker(tiny, TrackerOptions(independent_points=independent)), []
        for t, frame in enumerate(frames):
            if t == 14:
                before = len(calls)
            out += tracker.push(frame, stamp=t)
            if t == 13:
                tracker.add_points(xy[2:], stamp=stamp)
            if t == 0:
                tracker.add_points(xy[:2])
        starts = np.array([0, 0, stamp])
        assert len(calls) - before - 4 == passes  # frames 14..17: one pass each, + the recommits
        for r in out[14:]:
            if independent:
                want = np.stack([offline.run(r.frame_index, norm[i:i + 1], starts[i:i + 1])
                                 .xy_norm[r.frame_index, 0].numpy() for i in range(3)])
            else:
                want = offline.run(r.frame_index, norm, starts).xy_norm[r.frame_index].numpy()
            err = np.abs(r.xy / np.array([55, 39], np.float32) - want).max()
            assert err < 1e-5, (stamp, r.frame_index, err)


def test_the_memory_of_older_frames_is_kept_apart_from_the_buffered_ones():
    cache = FeatureCache(4, 3, 2, device="cpu", dtype=torch.float32, extra=2)
    assert cache.memory.shape[0] == 6
    for t in range(9):
        assert cache.put(t, t, (5, 6), torch.full((3, 2), float(t))) == t % 4  # state/kv slots: W
    assert [cache.holds(t) for t in (4, 5)] == [False, True]
    assert [cache.holds_memory(t) for t in (2, 3, 8, 9)] == [False, True, True, False]
    assert cache.window(3, 8)[:, 0, 0].tolist() == [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert cache.frame_memory(3)[0, 0, 0].item() == 3.0
    with pytest.raises(KeyError, match="not kept"):
        cache.window(2, 8)
    with pytest.raises(KeyError, match="not buffered"):
        cache.slots(4, 8)
