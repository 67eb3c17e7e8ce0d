"""TAPTRv2 training losses (official ``PointTrackingCriterion`` semantics, our code).

* Location: L1 on (x, y) normalised by (W-1, H-1) of the network input, at the output of
  **every** decoder layer and at **every** APU output, weight ``loss_weights.location`` (5.0,
  official ``bbox_loss_coef``) per term. Supervised frames: after the point's start frame
  (``update``), ground truth inside the image (official ``ignore_outsight``) and, with
  ``visible_only=True``, only where the point is visible (TAPTRv3's finding, +1.6 AJ; the
  official v2 also supervises occluded positions, ``visible_only=False``).
* Visibility: sigmoid focal loss (alpha 0.25, gamma 2) on the 3 visibility logits of the last
  layer only (official ``ignore_middle_cls_loss``), weight ``loss_weights.visibility`` (1.0,
  ``cls_loss_coef``). Targets are one-hot: visible -> class 1, occluded -> class 2 (class 0 is
  never positive), on every frame after the start frame.

Normalisation: the L1 term of one (layer, output) is the sum of |dx| + |dy| over supervised
entries divided by their count; the focal term is the sum over the 3 classes divided by the
number of supervised (frame, point) entries. Empty masks give a zero loss (still differentiable).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from taptr_ros.train.rollout import RolloutOutput


@dataclass(frozen=True)
class LossWeights:
    """Loss coefficients and options.

    Attributes:
        location: weight of each L1 term (official bbox_loss_coef 5.0).
        visibility: weight of the focal term (official cls_loss_coef 1.0).
        focal_alpha: focal loss alpha (official 0.25).
        focal_gamma: focal loss gamma (2).
        visible_only: supervise positions only where the point is visible (TAPTRv3);
            False = official v2 (occluded positions inside the image are supervised too).
    """

    location: float = 5.0
    visibility: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    visible_only: bool = False


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, *, alpha: float = 0.25,
                       gamma: float = 2.0) -> Tensor:
    """Element-wise focal loss (Lin et al. 2017) on independent sigmoid logits.

    Args:
        logits: (...) raw scores.
        targets: (...) same shape, 0 or 1.

    Returns:
        (...) loss per element: -alpha_t (1 - p_t)^gamma log(p_t).
    """
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def location_mask(update: Tensor, gt_xy: Tensor, gt_occluded: Tensor, *, visible_only: bool) -> Tensor:
    """(T, N) bool frames whose position is supervised (see the module docstring).

    Args:
        update: (T, N) bool, frames after the start frame.
        gt_xy: (T, N, 2) ground truth normalised by (W-1, H-1).
        gt_occluded: (T, N) bool.
    """
    inside = ((gt_xy >= 0) & (gt_xy <= 1)).all(-1)
    mask = update & inside
    return mask & ~gt_occluded if visible_only else mask


@dataclass
class LossTerms:
    """Total loss and its parts (already weighted); `location_px` is a metric, not a loss."""

    total: Tensor
    location: Tensor
    location_apu: Tensor
    visibility: Tensor

    def as_floats(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("total", "location", "location_apu", "visibility")}


def _masked_l1(pred: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    """pred (nD, T, N, 2), gt (T, N, 2), mask (T, N) -> (nD,) mean over mask of |dx|+|dy|."""
    err = (pred - gt[None]).abs().sum(-1) * mask[None].to(pred.dtype)
    return err.flatten(1).sum(1) / mask.sum().clamp(min=1)


def tracking_loss(out: RolloutOutput, gt_xy: Tensor, gt_occluded: Tensor,
                  weights: LossWeights = LossWeights()) -> LossTerms:
    """Weighted TAPTRv2 loss of one clip.

    Args:
        out: the clip's `RolloutOutput`.
        gt_xy: (T, N, 2) ground-truth positions normalised by (W-1, H-1) of the input.
        gt_occluded: (T, N) bool ground-truth occlusion (True also outside the image).
        weights: coefficients and options.

    Returns:
        `LossTerms` (location terms summed over layers).
    """
    gt_occluded = gt_occluded.bool()
    mask = location_mask(out.update, gt_xy, gt_occluded, visible_only=weights.visible_only)
    loc = weights.location * _masked_l1(out.pos, gt_xy, mask).sum()
    loc_apu = weights.location * _masked_l1(out.pos_apu, gt_xy, mask).sum()
    target = torch.zeros_like(out.vis_logits)
    target[..., 1] = (~gt_occluded).to(target.dtype)
    target[..., 2] = gt_occluded.to(target.dtype)
    focal = sigmoid_focal_loss(out.vis_logits, target, alpha=weights.focal_alpha,
                               gamma=weights.focal_gamma).sum(-1)
    upd = out.update.to(focal.dtype)
    vis = weights.visibility * (focal * upd).sum() / upd.sum().clamp(min=1)
    return LossTerms(total=loc + loc_apu + vis, location=loc, location_apu=loc_apu, visibility=vis)
