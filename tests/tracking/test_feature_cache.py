"""FeatureCache: ring slots, eviction, order; and the tracker encodes each frame exactly once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tracking_helpers import random_video
from taptr_ros.tracking.feature_cache import FeatureCache
from taptr_ros.tracking.tracker import OnlineTracker


def test_ring_buffer_slots_eviction_and_window_order():
    cache = FeatureCache(4, 3, 2, device="cpu", dtype=torch.float32)
    assert len(cache) == 0 and not cache.holds(0)
    storage = cache.memory.data_ptr()
    for t in range(7):
        assert cache.put(t, 100 + t, (5, 6), torch.full((3, 2), float(t))) == t % 4
    assert cache.memory.data_ptr() == storage  # preallocated, written in place
    assert (cache.oldest, cache.latest, len(cache)) == (3, 6, 4)
    assert [cache.holds(t) for t in (2, 3, 6, 7)] == [False, True, True, False]
    assert cache.stamp(5) == 105 and cache.hw(5) == (5, 6)
    assert cache.window(4, 6)[:, 0, 0].tolist() == [4.0, 5.0, 6.0]  # across the wrap
    assert cache.frame_memory(3).shape == (1, 3, 2)
    with pytest.raises(KeyError, match="not buffered"):
        cache.slot(2)
    with pytest.raises(ValueError, match="in order"):
        cache.put(8, 0, (5, 6), torch.zeros(3, 2))
    cache.clear()
    assert len(cache) == 0 and cache.latest == -1


def test_keys_values_are_kept_per_frame_when_asked():
    cache = FeatureCache(3, 2, 2, device="cpu", dtype=torch.float32, kv_layers=2)
    for t in range(4):
        kv = (torch.full((2, 2, 2), float(t)), torch.full((2, 2, 2), -float(t)))
        cache.put(t, t, (4, 4), torch.zeros(2, 2), kv)
    keys, values = cache.window_kv(2, 3)
    assert keys.shape == (2, 2, 2, 2) and keys[:, :, 0, 0].tolist() == [[2.0, 3.0]] * 2
    assert values[0, :, 0, 0].tolist() == [-2.0, -3.0]
    with pytest.raises(ValueError, match="keys/values"):
        cache.put(4, 4, (4, 4), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="kv_layers=0"):
        FeatureCache(3, 2, 2, device="cpu", dtype=torch.float32).window_kv(0, 0)


def test_each_frame_is_encoded_once_one_frame_per_call(tiny, monkeypatch):
    calls = []
    original = tiny.encode_frames

    def counting(images):
        calls.append(images.shape[0])
        return original(images)

    monkeypatch.setattr(tiny, "encode_frames", counting)
    projected = []
    original_projection = tiny.project_memory
    monkeypatch.setattr(tiny, "project_memory", lambda m: projected.append(m.shape[0]) or original_projection(m))
    tracker = OnlineTracker(tiny)
    for t, frame in enumerate(random_video(0, 12, (30, 40))):
        tracker.push(frame)
        if t in (2, 9):
            tracker.add_points([[3.0, 4.0], [20.0, 10.0]])
        if t == 10:
            tracker.add_points([[1.0, 1.0]], stamp=5)  # an older frame: read from the buffer
    assert calls == [1] * 12 and projected == [1] * 12
    assert tracker._cache.memory.device == next(tiny.parameters()).device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_device_argument_keeps_everything_on_the_gpu():
    from tracking_helpers import make_model
    tracker = OnlineTracker(make_model(0), device="cuda")
    frames = random_video(0, 9, (30, 40))
    tracker.push(frames[0])
    tracker.add_points([[3.0, 4.0]])
    for frame in frames[1:]:
        (result,) = tracker.push(frame)
    assert tracker._cache.memory.is_cuda and tracker._points.content.is_cuda
    assert isinstance(result.xy, np.ndarray) and np.isfinite(result.xy).all()
