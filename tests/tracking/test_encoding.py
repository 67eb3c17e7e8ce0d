"""Frames encoded apart (`OnlineTracker.encode`, the node's pipeline) give the results of plain
pushes, bit for bit, also when encoded on another thread ahead of the push; foreign or
malformed encodings are refused and change nothing."""

from __future__ import annotations

import dataclasses
import queue
import threading

import numpy as np
import pytest

from taptr_ros.tracking.errors import FrameError
from taptr_ros.tracking.options import TrackerOptions
from taptr_ros.tracking.tracker import OnlineTracker
from tracking_helpers import make_model, random_video

GRID = np.array([[10.0, 12.0], [40.0, 30.0], [70.0, 55.0], [25.0, 60.0]])


def _stream(tracker: OnlineTracker, frames, inputs) -> list:
    """Push `inputs` (frames or encodings), adding points at frames 0, 5 and 9 (a window tail)
    and removing one at 11; every published result as (frame, ids, xy, visibility)."""
    out = []
    for t, item in enumerate(inputs):
        if t == 0:
            out += tracker.push(item, t)
            tracker.add_points(GRID[:2])
            continue
        if t in (5, 9):
            tracker.add_points(GRID[2:] + t)
        if t == 11:
            tracker.remove_points([1])
        out += tracker.push(item, t)
    out += tracker.flush()
    return [(r.frame_index, r.ids.tolist(), r.xy, r.visibility) for r in out]


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        x[0] == y[0] and x[1] == y[1] and np.array_equal(x[2], y[2]) and np.array_equal(x[3], y[3])
        for x, y in zip(a, b))


@pytest.mark.parametrize("mode", ["immediate", "committed"])
def test_encoded_frames_give_the_results_of_plain_pushes(tiny, mode):
    frames = random_video(3, 14, (72, 90))
    plain = _stream(OnlineTracker(tiny, TrackerOptions(mode=mode)), frames, frames)
    tracker = OnlineTracker(tiny, TrackerOptions(mode=mode))
    encoded = _stream(tracker, frames, [tracker.encode(f) for f in frames])
    assert len(plain) == 14 and _same(plain, encoded)


def test_encoding_on_another_thread_ahead_of_the_push_changes_nothing(tiny):
    frames = random_video(4, 12, (80, 96))
    plain = _stream(OnlineTracker(tiny), frames, frames)
    tracker = OnlineTracker(tiny)
    handoff: queue.Queue = queue.Queue(maxsize=2)  # the encoder runs up to two frames ahead
    encoder = threading.Thread(target=lambda: [handoff.put(tracker.encode(f)) for f in frames])
    encoder.start()
    piped = _stream(tracker, frames, (handoff.get(timeout=60) for _ in frames))
    encoder.join()
    assert _same(plain, piped)


def test_timings_of_an_encoded_frame_are_its_encoding_times(tiny):
    tracker = OnlineTracker(tiny)
    enc = tracker.encode(random_video(5, 1, (50, 60))[0])
    assert enc.hw == (50, 60) and enc.encode_ms > 0
    (result,) = tracker.push(enc, 0)
    assert (result.height, result.width) == (50, 60)
    assert result.timings.encode == enc.encode_ms and result.timings.preprocess == enc.preprocess_ms


def test_foreign_and_malformed_encodings_are_refused_and_change_nothing(tiny):
    frames = random_video(6, 3, (48, 48))
    tracker = OnlineTracker(tiny)
    tracker.push(frames[0], 0)
    other = OnlineTracker(make_model(1)).encode(frames[1])
    with pytest.raises(FrameError, match="another network"):
        tracker.push(other, 1)
    without_kv = dataclasses.replace(tracker.encode(frames[1]), keys=None, values=None)
    with pytest.raises(FrameError, match="keys and values"):
        tracker.push(without_kv, 1)
    with pytest.raises(FrameError, match="uint8"):
        tracker.encode(frames[1].astype(np.float32))
    assert tracker.frame_count == 1
    (result,) = tracker.push(tracker.encode(frames[1]), 1)  # the stream goes on at frame 1
    assert result.frame_index == 1
