"""Training clips: queries on visible frames, restarts, coordinates of the network input."""

from __future__ import annotations

import numpy as np
import torch

from taptr_ros.train.data import make_queries, synthetic_clips


def test_queries_first_visible_or_restart_on_a_visible_frame():
    occ = np.array([[True, False, False, True, False],
                    [False, True, False, False, False]])
    rng = np.random.default_rng(0)
    assert make_queries(occ, rng, restart_ratio=0.0).tolist() == [1, 0]
    starts = np.stack([make_queries(occ, np.random.default_rng(s), restart_ratio=1.0) for s in range(50)])
    assert not occ[0, starts[:, 0]].any() and not occ[1, starts[:, 1]].any()
    assert len(set(starts[:, 0])) > 1          # restarts really move the start frame


def test_clip_query_matches_ground_truth_and_is_visible(clip, tiny):
    n = clip.query_t.shape[0]
    assert torch.equal(clip.query_xy, clip.gt_xy[clip.query_t, torch.arange(n)])
    assert not clip.gt_occluded[clip.query_t, torch.arange(n)].any()
    assert clip.video.shape[-2:] == tiny.input_hw


def test_stream_is_reproducible_and_resumable(tiny):
    a = synthetic_clips(tiny, num_frames=8, num_points=4, seed=1)
    first = [next(a) for _ in range(3)]
    b = synthetic_clips(tiny, num_frames=8, num_points=4, seed=1, start_index=2)
    assert torch.equal(next(b).gt_xy, first[2].gt_xy)


def test_clips_from_worker_processes_equal_the_in_process_stream():
    from taptr_ros.model.config import preset as net_preset
    from taptr_ros.train.data import synthetic_clips
    net = net_preset("tiny", input_hw=(32, 32))
    kw = dict(num_frames=4, num_points=3, seed=4, start_index=5, presets=("easy", "still"))
    serial = synthetic_clips(net, **kw)
    parallel = synthetic_clips(net, workers=2, **kw)
    for _ in range(5):
        a, b = next(serial), next(parallel)
        assert torch.equal(a.video, b.video) and torch.equal(a.gt_xy, b.gt_xy)
        assert torch.equal(a.query_t, b.query_t)
    parallel.close()
