"""Image pairs for pre-training: exact correspondence, visibility, determinism."""

from __future__ import annotations

import numpy as np

from taptr_ros.data.pairs import PairConfig, apply_homography, make_pair, random_homography
from taptr_ros.data.scene import bilinear

PLAIN = PairConfig(size=96, photometric=False, occluder_probability=0.0)


def _colour_gap(pair, shuffle: bool = False) -> float:
    """Mean |first(p1) - second(p2)| over the points visible well inside both views (0-255)."""
    inner = lambda xy: ((xy > 2) & (xy < pair.first.shape[0] - 3)).all(1)  # noqa: E731
    keep = pair.visible & inner(pair.xy_first) & inner(pair.xy_second)
    p1, p2 = pair.xy_first[keep], pair.xy_second[keep]
    if shuffle:
        p2 = p2[::-1]
    return float(np.mean([np.abs(bilinear(pair.first[..., c].astype(np.float32), p1)
                                 - bilinear(pair.second[..., c].astype(np.float32), p2)).mean()
                          for c in range(3)]))


def test_the_second_view_shows_each_point_where_the_homography_sends_it():
    gaps = [(_colour_gap(p), _colour_gap(p, shuffle=True))
            for p in (make_pair(np.random.default_rng(i), PLAIN, 300) for i in range(6))]
    exact, shuffled = np.array(gaps).T
    assert exact.max() < 5.0  # resampling of fine texture only
    assert (shuffled > 5 * exact).all()


def test_points_leaving_the_view_or_under_the_occluder_are_invisible():
    pair = make_pair(np.random.default_rng(3), PairConfig(size=96, max_shift=0.4, photometric=False,
                                                          occluder_probability=1.0), 2000)
    inside = ((pair.xy_second >= 0) & (pair.xy_second <= 95)).all(1)
    assert not pair.visible[~inside].any() and (~inside).any()
    covered = inside & ~pair.visible
    assert covered.sum() > 20  # the occluder hides points that stay in view
    first = bilinear(pair.first[..., 1].astype(np.float32), pair.xy_first)
    second = bilinear(pair.second[..., 1].astype(np.float32), pair.xy_second)
    gap = np.abs(first - second)
    assert gap[covered].mean() > 3 * gap[pair.visible].mean()  # a different texture lies there


def test_pairs_are_deterministic_and_the_homography_inverts():
    a, b = (make_pair(np.random.default_rng((5, 1)), PairConfig(size=64), 10) for _ in range(2))
    assert np.array_equal(a.second, b.second) and np.array_equal(a.xy_second, b.xy_second)
    h = random_homography(np.random.default_rng(0), PairConfig(size=64))
    xy = np.random.default_rng(1).uniform(0, 63, (20, 2))
    np.testing.assert_allclose(apply_homography(np.linalg.inv(h), apply_homography(h, xy)), xy, atol=1e-9)
