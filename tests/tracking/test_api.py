"""OnlineTracker API: refusals change nothing, ids, removal, reset, and threads."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tracking_helpers import random_video
from taptr_ros.tracking.errors import (CapacityError, FrameError, OptionsError, PointError, StampError,
                                       TrackerError, TrackerStateError)
from taptr_ros.tracking.options import TrackerOptions
from taptr_ros.tracking.tracker import OnlineTracker


def snapshot(tracker: OnlineTracker) -> tuple:
    return (tracker.ids.tolist(), tracker.frame_count, tracker.buffered_stamps, tracker._next_id,
            len(tracker._points), tracker._cache.latest)


def test_refusals_raise_clear_errors_and_change_nothing(tiny):
    tracker = OnlineTracker(tiny, TrackerOptions(max_points=3))
    with pytest.raises(StampError, match="push a frame before adding points"):
        tracker.add_points([[1.0, 1.0]])
    frames = random_video(0, 10, (30, 40))
    for t, frame in enumerate(frames):
        tracker.push(frame, stamp=100 + t)  # buffer: frames 2..9, stamps 102..109
    tracker.add_points([[1.0, 2.0]])
    before = snapshot(tracker)
    cases = [
        (PointError, "not finite", lambda: tracker.add_points([[1, 1], [np.nan, 2]])),
        (PointError, "not finite", lambda: tracker.add_points([[np.inf, 2]])),
        (PointError, r"outside the 40x30 frame: x must be in \[0, 39\]", lambda: tracker.add_points([[39.5, 2]])),
        (PointError, "outside", lambda: tracker.add_points([[3, -0.1]])),
        (PointError, r"\(N, 2\)", lambda: tracker.add_points([1.0, 2.0])),
        (StampError, "older than the buffer", lambda: tracker.add_points([[1, 1]], stamp=101)),
        (StampError, "newer than the latest frame", lambda: tracker.add_points([[1, 1]], stamp=110)),
        (StampError, "no buffered frame has stamp 105.5", lambda: tracker.add_points([[1, 1]], stamp=105.5)),
        (StampError, "no buffered frame has stamp 'x'", lambda: tracker.add_points([[1, 1]], stamp="x")),
        (CapacityError, "exceed max_points=3", lambda: tracker.add_points([[1, 1]] * 3)),
        (FrameError, "stamps must increase", lambda: tracker.push(frames[0], stamp=109)),
        (FrameError, "uint8", lambda: tracker.push(frames[0].astype(np.float32), stamp=200)),
        (FrameError, r"\(H, W, 3\)", lambda: tracker.push(frames[0][..., :2], stamp=200)),
        (FrameError, "H, W >= 2", lambda: tracker.push(frames[0][:1], stamp=200)),
        (PointError, "non-negative integers", lambda: tracker.remove_points([-1])),
        (PointError, "non-negative integers", lambda: tracker.remove_points([1.5])),
    ]
    for error, message, call in cases:
        # caught as TrackerError, as the node's services catch it, and of the specific class
        with pytest.raises(TrackerError, match=message) as info:
            call()
        assert type(info.value) is error, (message, info.value)
        assert snapshot(tracker) == before, message
    ids, used = tracker.add_points([[39.0, 29.0], [0.0, 0.0]], stamp=102)  # edges, oldest frame
    assert ids.tolist() == [1, 2] and ids.dtype == np.uint32 and used == 102
    with pytest.raises(OptionsError, match="mode"):
        TrackerOptions(mode="lazy")
    with pytest.raises(OptionsError, match="stride 9 must not exceed window 8"):
        OnlineTracker(tiny, TrackerOptions(stride=9))


def test_removal_frees_state_and_the_others_keep_ids_and_tracking(tiny):
    frames = random_video(1, 16, (30, 40))
    tracker = OnlineTracker(tiny, TrackerOptions(max_points=3))
    tracker.push(frames[0])
    tracker.add_points([[5.0, 5.0], [20.0, 10.0], [30.0, 20.0]])
    for frame in frames[1:6]:
        tracker.push(frame)
    row = tracker._points._row_of[1]
    removed, unknown = tracker.remove_points([1, 9, 1])
    assert removed.tolist() == [1] and unknown.tolist() == [9] and unknown.dtype == np.uint32
    assert tracker._points.ids.tolist() == [0, 2]  # freed at once: the tracker was idle
    assert float(tracker._points.content[:, row].abs().sum()) == 0.0
    assert tracker.add_points([[1.0, 1.0]])[0].tolist() == [3]  # ids never reused; row free again
    later = [tracker.push(frame)[0] for frame in frames[6:]]
    assert all(r.ids.tolist() == [0, 2, 3] for r in later)
    assert np.isfinite(later[-1].xy).all() and np.abs(later[-1].xy - later[0].xy).max() > 1e-3
    assert tracker.remove_points([1])[1].tolist() == [1]
    assert tracker.remove_all().tolist() == [0, 2, 3] and tracker.push(frames[0], stamp=99)[0].num_points == 0


def test_a_point_removed_before_any_window_leaves_no_trace(tiny):
    frames = random_video(2, 11, (30, 40))
    a, b = OnlineTracker(tiny), OnlineTracker(tiny)
    ra, rb = [], []
    for t, frame in enumerate(frames):
        ra += a.push(frame)
        rb += b.push(frame)
        if t == 1:
            a.add_points([[5.0, 6.0], [25.0, 12.0]])
            b.add_points([[5.0, 6.0], [25.0, 12.0], [30.0, 20.0]])
            b.remove_points([2])
    for x, y in zip(ra, rb):
        assert np.array_equal(x.ids, y.ids) and np.array_equal(x.xy, y.xy)


def test_reset_starts_a_new_stream_and_ids_keep_counting(tiny):
    frames = random_video(3, 10, (30, 40))
    fresh, used = OnlineTracker(tiny), OnlineTracker(tiny)
    for t, frame in enumerate(frames[:5]):
        used.push(frame, stamp=50 + t)
        used.add_points([[3.0, 3.0]])
    used.reset()
    assert (used.frame_count, used.num_points, used.buffered_stamps) == (0, 0, [])
    with pytest.raises(StampError, match="reset"):
        used.add_points([[1.0, 1.0]])
    got, want = [], []
    for t, frame in enumerate(frames):
        got += used.push(frame, stamp=t)  # stamps may start over
        want += fresh.push(frame, stamp=t)
        if t == 0:
            assert used.add_points([[9.0, 9.0]])[0].tolist() == [5]
            fresh.add_points([[9.0, 9.0]])
    assert got[0].frame_index == 0 and got[-1].ids.tolist() == [5]
    for x, y in zip(got, want):
        np.testing.assert_array_equal(x.xy, y.xy)


def block_encoder(tiny, monkeypatch) -> tuple[threading.Event, threading.Event]:
    entered, release = threading.Event(), threading.Event()
    original = tiny.encode_frames

    def blocking(images):
        entered.set()
        assert release.wait(30)
        return original(images)

    monkeypatch.setattr(tiny, "encode_frames", blocking)
    return entered, release


def test_ops_called_during_a_push_apply_at_the_next_frame(tiny, monkeypatch):
    frames = random_video(4, 4, (30, 40))
    tracker = OnlineTracker(tiny)
    tracker.push(frames[0])
    tracker.add_points([[5.0, 5.0]])  # id 0
    tracker.push(frames[1])
    entered, release = block_encoder(tiny, monkeypatch)
    box = {}
    worker = threading.Thread(target=lambda: box.setdefault("r", tracker.push(frames[2])))
    worker.start()
    assert entered.wait(30)
    ids, used = tracker.add_points([[10.0, 10.0]])  # latest frame = frame 2, being pushed
    removed, _ = tracker.remove_points([0])
    # The push is held inside the encoder until release.set() below: calls that waited for it
    # would return only after release.wait(30) gave up, with the push ended (failed) by then.
    assert worker.is_alive()  # the push is still in progress: the calls did not wait for it
    assert used == 2 and ids.tolist() == [1] and removed.tolist() == [0] and tracker.ids.tolist() == [1]
    assert tracker._points.ids.tolist() == [0]  # the running push still sees its boundary's state
    release.set()
    worker.join(30)
    monkeypatch.undo()
    assert box["r"][0].ids.tolist() == [0]
    (result,) = tracker.push(frames[3])
    assert result.ids.tolist() == [1] and tracker._points.ids.tolist() == [1]


def test_reset_during_a_push_applies_at_the_next_frame(tiny, monkeypatch):
    frames = random_video(5, 3, (30, 40))
    tracker = OnlineTracker(tiny)
    tracker.push(frames[0], stamp=10)
    tracker.add_points([[5.0, 5.0]])
    entered, release = block_encoder(tiny, monkeypatch)
    box = {}
    worker = threading.Thread(target=lambda: box.setdefault("r", tracker.push(frames[1], stamp=11)))
    worker.start()
    assert entered.wait(30)
    tracker.reset()
    release.set()
    worker.join(30)
    monkeypatch.undo()
    assert box["r"][0].ids.tolist() == [0] and box["r"][0].frame_index == 1
    (result,) = tracker.push(frames[2], stamp=0)
    assert (result.frame_index, result.num_points) == (0, 0)


def test_concurrent_ops_equal_a_sequential_replay(tiny):
    """Two threads add (latest or older stamps) and remove points while frames are pushed.
    Whatever the interleaving, each op must land whole at one frame boundary: replaying the ops
    at the boundaries where they showed up gives the same results."""
    frames = random_video(6, 22, (30, 40))
    tracker = OnlineTracker(tiny, TrackerOptions(max_points=24))
    results, adds, errors, stop = [], [], [], threading.Event()

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                if rng.random() < 0.5:
                    stamps = tracker.buffered_stamps
                    stamp = stamps[-2] if len(stamps) > 2 and rng.random() < 0.3 else None
                    xy = rng.uniform([0, 0], [39, 29], (int(rng.integers(1, 3)), 2))
                    try:
                        ids, used = tracker.add_points(xy, stamp)
                    except (StampError, CapacityError):
                        continue
                    adds.append((ids.tolist(), used, xy))
                elif results and results[-1].num_points:
                    tracker.remove_points([int(rng.choice(results[-1].ids))])
                time.sleep(float(rng.uniform(0, 0.02)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    results += tracker.push(frames[0])
    threads = [threading.Thread(target=worker, args=(s,)) for s in (1, 2)]
    for th in threads:
        th.start()
    for frame in frames[1:]:
        results += tracker.push(frame)
        time.sleep(0.005)
    stop.set()
    for th in threads:
        th.join(30)
    assert not errors
    seen = [set(r.ids.tolist()) for r in results]
    appear = {i: next((t for t, s in enumerate(seen) if i in s), None) for ids, _, _ in adds for i in ids}
    assert sum(v is not None for v in appear.values()) >= 10  # the threads did interleave
    # replay: each add at the frame where its ids first appear, each removal where its id vanishes
    replay, out = OnlineTracker(tiny, TrackerOptions(max_points=24)), []
    for t, frame in enumerate(frames):
        gone = [i for i in seen[t - 1] if i not in seen[t]] if t else []
        replay.remove_points(gone)
        for ids, used, xy in sorted(adds):
            if appear[ids[0]] == t:
                assert all(appear[i] == t for i in ids)  # one add call lands whole
                assert replay.add_points(xy, used)[0].tolist() == ids
        out += replay.push(frame)
    for got, want in zip(results, out):
        np.testing.assert_array_equal(got.ids, want.ids)
        np.testing.assert_allclose(got.xy, want.xy, atol=1e-6)
        np.testing.assert_allclose(got.visibility, want.visibility, atol=1e-6)


def test_a_frame_failing_half_way_asks_for_a_reset(tiny, monkeypatch):
    frames = random_video(7, 3, (30, 40))
    tracker = OnlineTracker(tiny)
    tracker.push(frames[0])
    tracker.add_points([[5.0, 5.0]])

    def broken(images):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(tiny, "encode_frames", broken)
    with pytest.raises(TrackerStateError, match="frame 1 failed.*out of memory.*call reset"):
        tracker.push(frames[1])
    monkeypatch.undo()
    with pytest.raises(TrackerStateError, match="call reset"):
        tracker.push(frames[2])
    tracker.reset()
    (result,) = tracker.push(frames[2])
    assert result.frame_index == 0 and result.num_points == 0


@pytest.mark.parametrize("mode", ["immediate", "committed"])
def test_half_precision_autocast_keeps_the_state_float32_and_tracks(tiny, mode):
    """Under autocast (GPU fp16/bf16 runs; bf16 autocast on CPU here) the network hands back
    half-precision content and positions: the tracker stores them in its float32 state (an
    index_put of bf16 into float32 failed the first GPU benchmark) and close to fp32 tracks."""
    import torch

    frames = random_video(3, 14, (60, 80))
    xy = np.array([[10.0, 12.0], [40.0, 30.0], [70.0, 50.0]])
    runs = {}
    for precision in ("fp32", "bf16"):
        tracker = OnlineTracker(tiny, TrackerOptions(mode=mode, max_points=4))
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
        results = []
        with autocast:
            for t, frame in enumerate(frames):
                results += tracker.push(frame, stamp=t)
                if t in (0, 9):
                    tracker.add_points(xy[:2] if t == 0 else xy[2:])
        runs[precision] = results
    assert len(runs["bf16"]) == len(runs["fp32"]) > 0
    last_fp32, last_bf16 = runs["fp32"][-1], runs["bf16"][-1]
    assert last_bf16.xy.dtype == last_fp32.xy.dtype and last_bf16.num_points == 3
    assert np.isfinite(last_bf16.xy).all()
    assert np.abs(last_bf16.xy - last_fp32.xy).max() < 8.0  # px, bf16 rounding through the layers
