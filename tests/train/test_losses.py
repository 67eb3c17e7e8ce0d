"""Losses on hand-made predictions: every number below is worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from taptr_ros.train.losses import LossWeights, location_mask, sigmoid_focal_loss, tracking_loss
from taptr_ros.train.rollout import RolloutOutput


def _out(pos, pos_apu=None, vis=None, update=None):
    n_layers, t, n, _ = pos.shape
    return RolloutOutput(
        pos_apu=pos if pos_apu is None else pos_apu, pos=pos,
        vis_logits=torch.zeros(t, n, 3) if vis is None else vis,
        update=torch.ones(t, n, dtype=torch.bool) if update is None else update)


def test_focal_loss_values():
    # p = 0.5: ce = log 2, (1 - p_t)^2 = 0.25; alpha_t = 0.25 for positives, 0.75 for negatives
    logits = torch.zeros(2)
    loss = sigmoid_focal_loss(logits, torch.tensor([1.0, 0.0]))
    assert loss[0].item() == pytest.approx(0.25 * 0.25 * math.log(2), rel=1e-6)
    assert loss[1].item() == pytest.approx(0.75 * 0.25 * math.log(2), rel=1e-6)
    # a confident correct prediction costs (almost) nothing, a confident wrong one a lot
    assert sigmoid_focal_loss(torch.tensor([8.0]), torch.tensor([1.0])).item() < 1e-6
    assert sigmoid_focal_loss(torch.tensor([-8.0]), torch.tensor([1.0])).item() > 1.5


def test_location_l1_every_layer_and_apu_with_weights():
    gt = torch.zeros(2, 1, 2) + 0.5
    pos = gt[None].repeat(2, 1, 1, 1).clone()
    pos[0, 1, 0] += torch.tensor([0.1, -0.2])   # layer 0, frame 1: |dx|+|dy| = 0.3
    pos[1, 1, 0] += torch.tensor([0.0, 0.05])   # layer 1, frame 1: 0.05
    apu = gt[None].repeat(2, 1, 1, 1).clone()
    apu[1, 0, 0] += torch.tensor([0.4, 0.0])    # layer 1, frame 0: 0.4
    occ = torch.zeros(2, 1, dtype=torch.bool)
    terms = tracking_loss(_out(pos, apu), gt, occ, LossWeights(location=5.0, visibility=0.0))
    # 2 supervised frames: mean over them, summed over layers, times 5
    assert terms.location.item() == pytest.approx(5.0 * (0.3 + 0.05) / 2, rel=1e-5)
    assert terms.location_apu.item() == pytest.approx(5.0 * 0.4 / 2, rel=1e-5)
    assert terms.total.item() == pytest.approx(terms.location.item() + terms.location_apu.item(), rel=1e-6)


def test_location_mask_start_frame_outside_and_visible_only():
    update = torch.tensor([[False, False], [True, True], [True, True]])
    gt = torch.tensor([[[0.5, 0.5], [0.5, 0.5]],
                       [[1.2, 0.5], [0.5, 0.5]],      # point 0 outside the image at frame 1
                       [[0.5, 0.5], [0.5, 0.5]]])
    occ = torch.tensor([[False, False], [True, False], [False, True]])
    v2 = location_mask(update, gt, occ, visible_only=False)
    assert v2.tolist() == [[False, False], [False, True], [True, True]]
    v3 = location_mask(update, gt, occ, visible_only=True)
    assert v3.tolist() == [[False, False], [False, True], [True, False]]


def test_errors_on_unsupervised_frames_cost_nothing():
    gt = torch.full((3, 2, 2), 0.5)
    pos = gt[None].clone()
    pos[0, 0] += 0.3                                  # frame 0 is nobody's update frame
    pos[0, 2, 1] += 0.3                               # point 1 occluded at frame 2
    update = torch.tensor([[False, False], [True, True], [True, True]])
    occ = torch.tensor([[False, False], [False, False], [False, True]])
    w = LossWeights(visibility=0.0, visible_only=True)
    assert tracking_loss(_out(pos, update=update), gt, occ, w).total.item() == 0.0
    w2 = LossWeights(visibility=0.0, visible_only=False)   # the official v2 rule supervises it
    assert tracking_loss(_out(pos, update=update), gt, occ, w2).total.item() > 0.0


def test_visibility_targets_class1_visible_class2_occluded():
    gt = torch.full((2, 2, 2), 0.5)
    occ = torch.tensor([[False, True], [False, True]])
    good = torch.full((2, 2, 3), -9.0)
    good[:, 0, 1] = 9.0      # point 0 visible -> class 1
    good[:, 1, 2] = 9.0      # point 1 occluded -> class 2
    bad = good.clone()[..., [0, 2, 1]]   # classes 1 and 2 swapped
    w = LossWeights(location=0.0)
    pos = gt[None]
    assert tracking_loss(_out(pos, vis=good), gt, occ, w).visibility.item() < 1e-4
    assert tracking_loss(_out(pos, vis=bad), gt, occ, w).visibility.item() > 1.0


def test_empty_mask_is_zero_and_differentiable():
    gt = torch.full((2, 1, 2), 0.5)
    pos = (gt[None] + 0.1).requires_grad_()
    update = torch.zeros(2, 1, dtype=torch.bool)
    terms = tracking_loss(_out(pos, update=update), gt, torch.zeros(2, 1, dtype=torch.bool))
    assert terms.total.item() == 0.0
    terms.total.backward()
    assert torch.all(pos.grad == 0)


def test_occluded_weight_scales_only_occluded_entries():
    # point 0 visible, point 1 occluded, both predicted with logits 0: the occluded entry's
    # focal term is multiplied by the factor, the visible one's is not
    gt = torch.full((2, 2, 2), 0.5)
    occ = torch.tensor([[False, True], [False, True]])
    pos = gt[None]
    out = _out(pos)
    visible_only = torch.tensor([[False, False], [False, False]])

    def vis(weights_occ, occluded):
        return tracking_loss(out, gt, occluded, LossWeights(location=0.0, occluded=weights_occ)).visibility.item()

    assert vis(4.0, visible_only) == pytest.approx(vis(1.0, visible_only), rel=1e-6)
    # per entry (3 classes, logits 0): visible and occluded cost the same, so the mean over
    # the 4 entries goes from 1 to (2 * 1 + 2 * 4) / 4 = 2.5 times the visible cost
    assert vis(4.0, occ) == pytest.approx(2.5 * vis(1.0, occ), rel=1e-6)
