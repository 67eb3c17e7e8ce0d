"""Memory is bounded: after 2000 frames with points added and removed all along (at the latest
frame and at older stamps, some joining the last committed window), the tracker holds exactly
the tensors (count and bytes) it held after W frames."""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest
import torch

from tracking_helpers import make_model
from taptr_ros.tracking.options import TrackerOptions
from taptr_ros.tracking.tracker import OnlineTracker


def reachable_tensors(root: object) -> list[torch.Tensor]:
    """Tensors reachable from `root` through attributes of taptr_ros objects, dataclasses,
    dicts, lists, tuples, sets and deques (the network's own parameters excluded)."""
    found: dict[int, torch.Tensor] = {}
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, torch.nn.Module):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            found[id(obj)] = obj
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset, collections.deque)):
            stack.extend(obj)
        elif dataclasses.is_dataclass(obj) or type(obj).__module__.startswith("taptr_ros"):
            stack.extend(vars(obj).values())
    return list(found.values())


def footprint(tracker: OnlineTracker) -> tuple[int, int]:
    tensors = reachable_tensors(tracker)
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return len(tensors), sum(storages.values())


@pytest.mark.slow
def test_memory_after_2000_frames_equals_memory_after_one_window():
    model = make_model(0, input_hw=(32, 32), hidden_dim=32, num_heads=2, ffn_dim=32, dec_layers=1,
                       gn_groups=8)
    tracker = OnlineTracker(model, TrackerOptions(max_points=8))
    window = tracker.options.window
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (12, 16, 3), dtype=np.uint8) for _ in range(5)]
    removed = 0
    for t in range(2000):
        (result,) = tracker.push(frames[t % 5], stamp=t)
        if t == 0:
            tracker.add_points(rng.uniform(0, 11, (4, 2)))
        elif t % 4 == 1:
            tracker.add_points(rng.uniform(0, 11, (1, 2)))
            tracker.add_points(rng.uniform(0, 11, (1, 2)), stamp=max(0, t - 3))
        elif t % 4 == 3:
            removed += len(tracker.remove_points(tracker.ids[:2])[0])
        if t == window - 1:
            after_window = footprint(tracker)
            assert tracker.num_points == 4
    assert tracker.num_points == 4 and removed > 900 and tracker.ids.min() > 900
    assert result.num_points == 6 and np.isfinite(result.xy).all()
    count, nbytes = footprint(tracker)
    assert (count, nbytes) == after_window
    # and it is the preallocated state: 2W - 1 frames of memory (W - 1 kept to commit windows
    # again), W of keys and values; max_points rows of W slots, the future state, the W input
    # frames of ceil(W / S) committed windows (+ a bool each), f0, ref0 and the start frame
    cfg, rows = model.config, tracker.options.max_points
    kept = -(-window // tracker.options.stride)
    cache = ((2 * window - 1) + window * 2 * cfg.dec_layers) * cfg.num_tokens() * cfg.hidden_dim * 4
    points = rows * (((kept + 1) * window + 1) * (cfg.hidden_dim + 4 + 3) + cfg.hidden_dim + 4) * 4 \
        + rows * (8 + kept)
    assert cache + points <= nbytes <= cache + points + 1024
