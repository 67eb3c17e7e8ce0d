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

* Feature matching (ours, off in the official recipe; ``loss_weights.match``): for training
  from scratch, a direct signal to the backbone and encoder. Each point's feature on the finest
  memory level at its query (bilinear, L2-normalised) is compared with every cell of that level
  in each later frame where it is visible (cosine / temperature -> softmax over cells); cross
  entropy against the ground-truth location spread bilinearly over its 4 nearest cells. This
  is what the key-aware cross-attention and the APU correlate, so it teaches the features
  they read.

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
        match: weight of the feature-matching term (0 = official: off).
        match_temperature: temperature of its cosine similarities.
        occluded: factor on the focal term of occluded entries (ours; 1 = official). Occluded
            entries are rare (about 1 in 10), so the visibility head learns "always visible"
            first; a factor of a few makes saying "occluded" worth it.
    """

    location: float = 5.0
    visibility: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    visible_only: bool = False
    match: float = 0.0
    match_temperature: float = 0.07
    occluded: float = 1.0


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
    match: Tensor

    def as_floats(self) -> dict[str, float]:
        """Each term as a Python float (for logging)."""
        return {k: float(getattr(self, k).detach())
                for k in ("total", "location", "location_apu", "visibility", "match")}


def _masked_l1(pred: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    """pred (nD, T, N, 2), gt (T, N, 2), mask (T, N) -> (nD,) mean over mask of |dx|+|dy|."""
    err = (pred - gt[None]).abs().sum(-1) * mask[None].to(pred.dtype)
    return err.flatten(1).sum(1) / mask.sum().clamp(min=1)


def bilinear_cell_targets(xy: Tensor, h: int, w: int) -> Tensor:
    """(..., 2) positions normalised by (W-1, H-1) -> (..., h*w) weights of the 4 nearest cells
    of an (h, w) map whose first and last cells sit at 0 and 1 (align_corners=True)."""
    gx, gy = xy[..., 0].clamp(0, 1) * (w - 1), xy[..., 1].clamp(0, 1) * (h - 1)
    x0, y0 = gx.floor().clamp(max=w - 2).long(), gy.floor().clamp(max=h - 2).long()
    fx, fy = gx - x0, gy - y0
    target = xy.new_zeros(*xy.shape[:-1], h * w)
    for dy, dx, wt in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        target.scatter_add_(-1, ((y0 + dy) * w + x0 + dx)[..., None], wt[..., None])
    return target


def feature_match_loss(fine_map: Tensor, gt_xy: Tensor, mask: Tensor, query_t: Tensor,
                       temperature: float) -> Tensor:
    """Feature-matching cross entropy (see the module docstring).

    Args:
        fine_map: (T, C, h, w) finest memory level of every frame.
        gt_xy: (T, N, 2) ground truth normalised by (W-1, H-1).
        mask: (T, N) bool entries scored (after the query frame, visible, inside).
        query_t: (N,) long query frame of each point.

    Returns:
        () mean cross entropy over the masked entries (0 if none).
    """
    t, c, h, w = fine_map.shape
    n = gt_xy.shape[1]
    if not bool(mask.any()):
        return fine_map.sum() * 0
    feats = F.normalize(fine_map, dim=1)
    q_xy = gt_xy[query_t, torch.arange(n, device=gt_xy.device)]  # (N, 2)
    # every point sampled in every frame (T*N*C values), then each at its own query frame:
    # indexing feats[query_t] instead would copy (and zero-fill in backward) N whole maps
    grid = (2 * q_xy - 1).view(1, n, 1, 2).expand(t, n, 1, 2)
    sampled = F.grid_sample(feats, grid, align_corners=True).view(t, c, n)  # (T, C, N)
    query = sampled[query_t, :, torch.arange(n, device=gt_xy.device)]  # (N, C)
    query = F.normalize(query, dim=-1)
    logits = torch.einsum("tcl,nc->tnl", feats.flatten(2), query) / temperature  # (T, N, h*w)
    target = bilinear_cell_targets(gt_xy, h, w)
    ce = -(target * logits.log_softmax(-1)).sum(-1)
    return (ce * mask).sum() / mask.sum()


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
    if weights.occluded != 1.0:
        focal = focal * (1.0 + (weights.occluded - 1.0) * gt_occluded.to(focal.dtype))
    upd = out.update.to(focal.dtype)
    vis = weights.visibility * (focal * upd).sum() / upd.sum().clamp(min=1)
    match = vis.new_zeros(())
    if weights.match > 0 and out.fine_map is not None:
        query_t = (~out.update).sum(0) - 1  # update is t > query_t
        seen = location_mask(out.update, gt_xy, gt_occluded, visible_only=True)
        match = weights.match * feature_match_loss(out.fine_map, gt_xy, seen, query_t,
                                                   weights.match_temperature)
    return LossTerms(total=loc + loc_apu + vis + match, location=loc, location_apu=loc_apu,
                     visibility=vis, match=match)
