"""Streaming == offline: every published result equals `track_video` on the video cut at the
publishing frame (tiny preset, seeded random weights, random streams), in both modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tracking_helpers import Offline, random_video
from taptr_ros.tracking.options import TrackerOptions
from taptr_ros.tracking.tracker import OnlineTracker

TOL = 1e-5


class Stream:
    """Pushes frames, adds points at scheduled times, records everything.

    `adds` maps a frame t to a point count (added right after t was pushed, at the latest
    frame) or to a list of (count, back): points added right after t was pushed at the stamp of
    frame t - back (an older buffered frame when back > 0).
    """

    def __init__(self, tracker: OnlineTracker, frames: list[np.ndarray], adds: dict, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        # id -> (x_norm, y_norm, start frame, frame after whose push it was added)
        self.queries: dict[int, tuple[float, float, int, int]] = {}
        self.published: list[tuple[int, object]] = []  # (push index, FrameResult)
        for t, frame in enumerate(frames):
            for result in tracker.push(frame, stamp=1000 + 10 * t):
                self.published.append((t, result))
            todo = adds.get(t) or []
            for count, back in ([(todo, 0)] if isinstance(todo, int) else todo):
                h, w = frames[t - back].shape[:2]
                xy = self.rng.uniform([0, 0], [w - 1, h - 1], (count, 2))
                xy[0] = [0, h - 1] if t == 0 else xy[0]  # a corner point (logit clamp)
                ids, used = tracker.add_points(xy, None if back == 0 else 1000 + 10 * (t - back))
                assert used == 1000 + 10 * (t - back)
                for i, (x, y) in zip(ids.tolist(), xy):
                    self.queries[i] = (x / (w - 1), y / (h - 1), t - back, t)

    def known(self, at: int, frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ids, xy_norm, start of the points added before frame `at` was pushed (whatever their
        start frame, up to at - 1), that have started by `frame`."""
        ids = [i for i, (_, _, s, added) in self.queries.items() if added < at and s <= frame]
        xy = np.array([self.queries[i][:2] for i in ids], np.float64).reshape(-1, 2)
        return np.array(ids, np.uint32), xy, np.array([self.queries[i][2] for i in ids], np.int64)


def check_equal(result, offline: Offline, stream: Stream, at: int, gap: int = 1, *,
                independent: bool = False, cut: int | None = None) -> float:
    """The result published at push `at` equals the offline model on the video cut at `at`
    (or `cut`: a flush after the last push) with every point added before that push, whatever
    its start frame (independent: each point alone)."""
    cut = at if cut is None else cut
    ids, xy, start = stream.known(at, result.frame_index)
    np.testing.assert_array_equal(result.ids, ids)
    assert result.xy.dtype == np.float32 and result.visibility.dtype == np.float32
    if not len(ids):
        return 0.0
    # offline: the points known at `at` (a point started after `frame` does not affect it)
    all_ids, all_xy, all_start = stream.known(at, cut)
    sel = np.searchsorted(all_ids, ids)
    if independent:
        runs = [offline.run(cut, all_xy[i:i + 1], all_start[i:i + 1], gap) for i in sel]
        want_xy = np.stack([r.xy_norm[result.frame_index, 0].numpy() for r in runs])
        want_vis = np.array([r.vis_logits[result.frame_index, 0, 1].sigmoid().item() for r in runs])
    else:
        ref = offline.run(cut, all_xy, all_start, gap)
        want_xy = ref.xy_norm[result.frame_index].numpy()[sel]
        want_vis = ref.vis_logits[result.frame_index, :, 1].sigmoid().numpy()[sel]
    got_xy = result.xy / np.array([result.width - 1, result.height - 1], np.float32)
    err = max(np.abs(got_xy - want_xy).max(), np.abs(result.visibility - want_vis).max())
    assert err < TOL, f"frame {result.frame_index} published at {at} (cut {cut}): error {err}"
    decided = np.abs(want_vis - 0.5) > 1e-4
    np.testing.assert_array_equal(result.visible[decided], want_vis[decided] > 0.5)
    return err


# 23 frames: not a multiple of the stride; the size changes at frame 12 (results in each
# frame's own pixels). W = 8, S = 4: windows are committed at the tails 7, 11, 15, 19.
# Schedule A starts with points at frame 0, adds points at the tail frames 7, 11, 15, 19 (they
# join the window just committed: it is committed again), at other frames, and at older stamps:
# inside the last committed window after its first frames left the ring buffer (at 13: frame 9
# of [4, 11]; at 14: frame 8; at 17: frame 12 of [8, 15]; at 20: frame 17 of [12, 19]), inside
# the last two (at 12: frame 7 of [0, 7] and [4, 11]; at 16: frame 10 of [4, 11] and [8, 15])
# and after them (at 18: frame 16). Schedule B adds its first point at the tail frame 7 (window
# [0, 7] still has nothing to update and is skipped, as offline), then at 9, 13, 18 and at
# frame 9 from frame 14. Schedule C adds its first point after frame 7 at frame 5: the skipped
# window [0, 7] is now decoded with it.
SCHEDULES = {
    "A": {0: 2, 5: 1, 7: 1, 10: 2, 11: 1, 12: [(1, 5)], 13: [(1, 4)], 14: [(1, 6)], 15: 1, 16: [(1, 6)],
          17: [(1, 0), (1, 5)], 18: [(1, 2)], 19: 1, 20: [(1, 3)]},
    "B": {7: 1, 9: 1, 13: 2, 14: [(1, 5)], 18: 1},
    "C": {7: [(1, 2)], 9: 1, 11: [(1, 0)], 12: [(2, 3)]},
}


def count(schedule: dict, before: int) -> int:
    """Points a schedule adds after the pushes of frames 0..before - 1."""
    return sum(n if isinstance(n, int) else sum(c for c, _ in n) for t, n in schedule.items() if t < before)


def sizes(frames: int) -> list[tuple[int, int]]:
    return [(40, 56) if t < 12 else (48, 36) for t in range(frames)]


@pytest.mark.parametrize("schedule,cached,length", [("A", True, 23), ("B", True, 23), ("C", True, 16),
                                                    ("A", False, 18)])
def test_immediate_mode_equals_offline_on_every_prefix(tiny, schedule, cached, length):
    """cached: keys/values projected once per frame and cached, or projected per window."""
    frames = random_video(1, length, sizes(length))
    offline = Offline(tiny, frames)
    stream = Stream(OnlineTracker(tiny, TrackerOptions(cache_projections=cached)), frames, SCHEDULES[schedule],
                    seed=2)
    assert [(at, r.frame_index) for at, r in stream.published] == [(t, t) for t in range(length)]
    errors = [check_equal(r, offline, stream, at) for at, r in stream.published]
    assert max(errors) < TOL
    last = stream.published[-1][1]
    assert last.num_points == count(SCHEDULES[schedule], length - 1)
    assert (last.width, last.height) == (36, 48) and last.stamp == 1000 + 10 * (length - 1)


@pytest.mark.parametrize("mode", ["immediate", "committed"])
def test_points_queried_at_tail_frames_join_that_window(tiny, mode):
    """The issue's case: points starting at frames 0, 0, 1, 4, 7, 9, 11, 12, 14, each added at the
    latest frame; every frame after equals the offline model on the cut with all of them."""
    frames = random_video(11, 16, (40, 56))
    offline = Offline(tiny, frames)
    tracker = OnlineTracker(tiny, TrackerOptions(mode=mode))
    stream = Stream(tracker, frames, {0: 2, 1: 1, 4: 1, 7: 1, 9: 1, 11: 1, 12: 1, 14: 1}, seed=12)
    for at, r in stream.published:
        check_equal(r, offline, stream, at)
    for r in tracker.flush():
        check_equal(r, offline, stream, 16, cut=15)
    # frame 7 itself was published before its point was added: never revised
    (at7,) = [r for at, r in stream.published if r.frame_index == 7]
    assert at7.ids.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("cached", [True, False])
def test_independent_points_equal_offline_alone_with_joining_points(tiny, cached):
    frames = random_video(13, 16, (40, 56))
    offline = Offline(tiny, frames)
    tracker = OnlineTracker(tiny, TrackerOptions(independent_points=True, cache_projections=cached))
    stream = Stream(tracker, frames, {0: 2, 7: 1, 10: [(1, 0), (1, 3)], 11: 1, 12: [(1, 6)], 13: [(1, 5)],
                                      14: [(1, 7)]}, seed=14)
    for at, r in stream.published:
        check_equal(r, offline, stream, at, independent=True)


def test_committed_mode_publishes_windows_equal_to_offline(tiny):
    frames = random_video(3, 22, (40, 56))
    offline = Offline(tiny, frames)
    tracker = OnlineTracker(tiny, TrackerOptions(mode="committed"))
    stream = Stream(tracker, frames, {0: 2, 5: 1, 7: 1, 9: 1, 11: [(1, 0)], 13: [(1, 3)], 14: 2,
                                      15: [(1, 0), (1, 3), (1, 4)], 19: 1, 21: [(1, 0), (1, 2), (1, 7)]},
                    seed=4)
    # publish frames t = 7 (mod 4): 3, 7, 11, 15, 19; each publishes the frames since the last
    assert sorted({at for at, _ in stream.published}) == [3, 7, 11, 15, 19]
    assert [r.frame_index for _, r in stream.published] == list(range(20))
    assert all(at - r.frame_index <= 3 for at, r in stream.published)  # latency <= stride - 1
    for at, r in stream.published:
        check_equal(r, offline, stream, at)
    flushed = tracker.flush()  # after the adds at 21: with them (the window [12, 19] again)
    assert [r.frame_index for r in flushed] == [20, 21] and tracker.flush() == []
    for r in flushed:
        check_equal(r, offline, stream, 22, cut=21)


def test_content_propagation_gap_matches_offline_rule(tiny):
    frames = random_video(5, 17, (32, 32))
    offline = Offline(tiny, frames)
    tracker = OnlineTracker(tiny, TrackerOptions(content_propagation_gap=2))
    stream = Stream(tracker, frames, {0: 2, 3: 1, 7: 1, 11: [(1, 2)]}, seed=6)
    for at, r in stream.published:
        check_equal(r, offline, stream, at, gap=2)
    # gap 2 is not gap 1 after window 1 ([4, 11]) is not carried over
    _, xy, start = stream.known(16, 16)
    every = offline.run(16, xy, start, 1).xy_norm[16].numpy()
    got = stream.published[-1][1].xy / np.array([31, 31], np.float32)
    assert np.abs(got - every).max() > 1e-5


def test_points_added_at_an_older_buffered_frame_start_there(tiny):
    """Stamp of frame 8 given after frame 10: no window ends in 9..10 and [0, 7] has nothing to
    update, so from frame 11 on the result equals offline with the query at frame 8."""
    frames = random_video(7, 16, (40, 56))
    offline = Offline(tiny, frames)
    tracker = OnlineTracker(tiny)
    results = []
    for t, frame in enumerate(frames):
        results += tracker.push(frame, stamp=t * 0.5)
        if t == 10:
            ids, used = tracker.add_points([[20.0, 30.0]], stamp=4.0)
            assert used == 4.0 and ids.tolist() == [0]
    assert all(r.num_points == 0 for r in results[:11])  # published frames are not revised
    xy = np.array([[20.0 / 55, 30.0 / 39]])
    for r in results[11:]:
        want = offline.run(r.frame_index, xy, np.array([8])).xy_norm[r.frame_index].numpy()
        got = r.xy / np.array([55, 39], np.float32)
        assert np.abs(got - want).max() < TOL


def test_padding_dummies_match_offline_queries_in_the_first_window(tiny):
    """While t < W every window starts at frame 0, so padded results equal offline with the
    dummies as extra queries at frame 0; they never appear in results."""
    frames = random_video(8, 8, (40, 56))
    offline = Offline(tiny, frames)
    pad = 6
    tracker = OnlineTracker(tiny, TrackerOptions(pad_queries_to=pad, pad_seed=3))
    plain = OnlineTracker(tiny)
    xy_px = np.array([[10.0, 12.0], [40.0, 30.0]])
    out, ref_out = [], []
    for t, frame in enumerate(frames):
        out += tracker.push(frame)
        ref_out += plain.push(frame)
        if t == 0:
            tracker.add_points(xy_px)
            plain.add_points(xy_px)
    dummies = torch.rand(pad, 2, generator=torch.Generator().manual_seed(3))[: pad - 2].numpy()
    xy = np.concatenate([xy_px / [55, 39], dummies])
    start = np.array([0, 0] + [0] * (pad - 2))
    moved = 0.0
    for r, p in zip(out[1:], ref_out[1:]):
        assert r.ids.tolist() == [0, 1] and r.xy.shape == (2, 2)
        want = offline.run(r.frame_index, xy, start).xy_norm[r.frame_index, :2].numpy()
        assert np.abs(r.xy / np.array([55, 39], np.float32) - want).max() < TOL
        moved = max(moved, np.abs(r.xy - p.xy).max())
    assert moved > 1e-4  # the dummies do take part in spatial attention


def test_padding_at_or_below_the_point_count_changes_nothing(tiny):
    frames = random_video(9, 10, (40, 56))
    runs = []
    for pad in (0, 3):
        tracker = OnlineTracker(tiny, TrackerOptions(pad_queries_to=pad))
        res = []
        for t, frame in enumerate(frames):
            res += tracker.push(frame)
            if t == 0:
                tracker.add_points([[5.0, 5.0], [30.0, 20.0], [50.0, 35.0]])
        runs.append(np.stack([r.xy for r in res[1:]]))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_independent_points_equal_one_tracker_per_point(tiny):
    frames = random_video(10, 13, (40, 56))
    queries = {0: [[12.0, 9.0], [13.0, 10.0]], 3: [[33.0, 25.0]], 6: [[40.0, 5.0]]}
    joint = OnlineTracker(tiny, TrackerOptions(independent_points=True, pad_queries_to=8))
    together = OnlineTracker(tiny)
    alone = {(t, i): OnlineTracker(tiny) for t, pts in queries.items() for i in range(len(pts))}
    got, mixed, want = [], [], {key: [] for key in alone}
    for t, frame in enumerate(frames):
        got += joint.push(frame)
        mixed += together.push(frame)
        for (q, i), tr in alone.items():
            want[q, i] += tr.push(frame)
            if t == q:
                tr.add_points([queries[q][i]])
        if t in queries:
            joint.add_points(queries[t])
            together.add_points(queries[t])
    for t in range(7, 13):
        assert got[t].ids.tolist() == [0, 1, 2, 3]
        for j, key in enumerate(alone):
            assert np.abs(got[t].xy[j] - want[key][t].xy[0]).max() < 1e-4
    # decoded together, the two close points see each other: a different (joint) result
    assert max(np.abs(got[t].xy[:2] - mixed[t].xy[:2]).max() for t in range(7, 13)) > 1e-3


def test_two_decoder_passes_per_window_stream_equal_offline(tiny):
    """`window_passes` = 2 decodes each window again from its own positions: the stream still
    equals the offline model on every prefix, and the second pass moves the points."""
    from tracking_helpers import make_model

    twice = make_model(0, window_passes=2)
    frames = random_video(1, 16, sizes(16))
    stream = Stream(OnlineTracker(twice, TrackerOptions()), frames, SCHEDULES["A"], seed=2)
    offline = Offline(twice, frames)
    assert max(check_equal(r, offline, stream, at) for at, r in stream.published) < TOL
    once = Stream(OnlineTracker(tiny, TrackerOptions()), frames, SCHEDULES["A"], seed=2)
    moved = [np.abs(a.xy - b.xy).max() for (_, a), (_, b) in zip(stream.published, once.published)
             if a.frame_index > 0 and len(a.ids)]
    assert max(moved) > 1e-3


@pytest.mark.parametrize("mode", ["immediate", "committed"])
def test_start_velocity_stream_equals_offline(tiny, mode):
    """`start_velocity_frames` = 4: a window's next frames start along the tail's velocity. The
    stream (points joining committed windows, recommits, frames entered after a commit) still
    equals the offline model on every prefix, and the start moves the points."""
    from tracking_helpers import make_model

    ahead = make_model(0, start_velocity_frames=4)
    frames = random_video(1, 23, sizes(23))
    options = TrackerOptions(mode=mode)
    stream = Stream(OnlineTracker(ahead, options), frames, SCHEDULES["A"], seed=2)
    offline = Offline(ahead, frames)
    assert max(check_equal(r, offline, stream, at) for at, r in stream.published) < TOL
    held = Stream(OnlineTracker(tiny, options), frames, SCHEDULES["A"], seed=2)
    moved = [np.abs(a.xy - b.xy).max() for (_, a), (_, b) in zip(stream.published, held.published)
             if a.frame_index > 8 and len(a.ids)]
    assert max(moved) > 1e-3


@pytest.mark.parametrize("mode", ["immediate", "committed"])
def test_query_velocity_stream_equals_offline(tiny, mode):
    """`query_velocity_frames` = 2 with 2 passes: in a window holding a point's start frame,
    the second pass starts its far frames along the first pass's early velocity. The stream
    (points added at every kind of frame, joining committed windows) still equals the offline
    model on every prefix, and the restart moves the points."""
    from tracking_helpers import make_model

    restarted = make_model(0, window_passes=2, query_velocity_frames=2)
    frames = random_video(1, 19, sizes(19))
    options = TrackerOptions(mode=mode)
    stream = Stream(OnlineTracker(restarted, options), frames, SCHEDULES["A"], seed=2)
    offline = Offline(restarted, frames)
    assert max(check_equal(r, offline, stream, at) for at, r in stream.published) < TOL
    plain = Stream(OnlineTracker(make_model(0, window_passes=2), options), frames, SCHEDULES["A"], seed=2)
    moved = [np.abs(a.xy - b.xy).max() for (_, a), (_, b) in zip(stream.published, plain.published)
             if len(a.ids)]
    assert max(moved) > 1e-3
