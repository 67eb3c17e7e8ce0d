"""The feature-matching loss: targets by hand, and it prefers features that match."""

from __future__ import annotations

import torch

from taptr_ros.train.losses import bilinear_cell_targets, feature_match_loss


def test_bilinear_targets_spread_over_the_four_nearest_cells():
    # a 3x5 map: cells at x = 0, .25, .5, .75, 1 and y = 0, .5, 1 (align_corners)
    t = bilinear_cell_targets(torch.tensor([[0.125, 0.75]]), 3, 5).view(3, 5)
    want = torch.zeros(3, 5)
    want[1, 0] = want[1, 1] = want[2, 0] = want[2, 1] = 0.25
    torch.testing.assert_close(t, want)
    corner = bilinear_cell_targets(torch.tensor([[1.0, 1.0]]), 3, 5).view(3, 5)
    assert corner[2, 4] == 1 and corner.sum() == 1


def _maps(t: int, h: int, w: int, c: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(t, c, h, w, generator=g)


def test_matching_features_cost_less_than_shuffled_ones():
    h = w = 8
    base = _maps(1, h, w, 16, 0)[0]
    # frame 1 is frame 0 shifted right by 2 cells: the point at cell (3, 2) moves to (3, 4)
    shifted = torch.roll(base, shifts=2, dims=2)
    maps = torch.stack([base, shifted])
    gt = torch.tensor([[[2 / 7, 3 / 7]], [[4 / 7, 3 / 7]]])  # (T, N, 2) normalised
    mask = torch.tensor([[False], [True]])
    query_t = torch.tensor([0])
    good = feature_match_loss(maps, gt, mask, query_t, 0.07)
    wrong_gt = gt.clone()
    wrong_gt[1, 0] = torch.tensor([6 / 7, 6 / 7])
    bad = feature_match_loss(maps, wrong_gt, mask, query_t, 0.07)
    assert good < 0.1 < bad
    # nothing scored -> zero, still differentiable
    maps.requires_grad_(True)
    empty = feature_match_loss(maps, gt, torch.zeros_like(mask), query_t, 0.07)
    empty.backward()
    assert empty.item() == 0 and maps.grad is not None


def test_query_features_are_sampled_at_each_points_own_frame():
    """The loss equals the obvious formula: each point's query feature grid-sampled from its
    own query frame's map, then cross entropy against every later visible frame's cells."""
    gen = torch.Generator().manual_seed(0)
    fine = torch.randn(5, 8, 6, 7, generator=gen, dtype=torch.float64)
    gt_xy = torch.rand(5, 9, 2, generator=gen, dtype=torch.float64)
    mask = torch.rand(5, 9, generator=gen) > 0.3
    query_t = torch.randint(0, 5, (9,), generator=gen)
    feats = torch.nn.functional.normalize(fine, dim=1)
    expected = []
    for i in range(9):
        grid = (2 * gt_xy[query_t[i], i] - 1).view(1, 1, 1, 2)
        q = torch.nn.functional.grid_sample(feats[query_t[i]][None], grid, align_corners=True).view(8)
        q = torch.nn.functional.normalize(q, dim=0)
        logits = torch.einsum("tcl,c->tl", feats.flatten(2), q) / 0.07
        target = bilinear_cell_targets(gt_xy[:, i:i + 1], 6, 7)[:, 0]
        expected.append(-(target * logits.log_softmax(-1)).sum(-1))
    ce = torch.stack(expected, 1)
    want = (ce * mask).sum() / mask.sum()
    got = feature_match_loss(fine, gt_xy, mask, query_t, 0.07)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
