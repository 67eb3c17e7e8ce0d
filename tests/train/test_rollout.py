"""The training rollout is the reference tracker: same predictions, plus gradients."""

from __future__ import annotations

import torch

from taptr_ros.model.taptr import TAPTRv2, track_video
from taptr_ros.train.rollout import rollout


def test_rollout_equals_track_video_and_has_gradients(clip, tiny):
    torch.manual_seed(0)
    model = TAPTRv2(tiny)
    for head in model.decoder.pos_heads:          # non-zero heads so positions move
        torch.nn.init.normal_(head.layers[-1].weight, std=0.05)
    # in train mode the between-window content delta is dropped at random (official recipe):
    # the rollout differs from the reference there, and only there
    torch.manual_seed(1)
    dropped = rollout(model.train(), clip.video, clip.query_xy, clip.query_t)
    model.eval()  # no dropout: the rollout must be the reference exactly
    out = rollout(model, clip.video, clip.query_xy, clip.query_t)
    assert not torch.allclose(dropped.pos[-1][out.update], out.pos[-1][out.update], atol=1e-6)
    with torch.no_grad():
        ref = track_video(model, clip.video, clip.query_xy, clip.query_t, content_propagation_gap=1)
    upd = out.update
    assert torch.allclose(out.pos[-1][upd], ref.xy_norm[upd], atol=1e-6)
    assert torch.allclose(out.vis_logits[upd], ref.vis_logits[upd], atol=1e-6)
    assert not torch.allclose(out.pos[-1][upd], clip.query_xy.expand_as(out.pos[-1])[upd])
    # supervised frames are exactly those after each point's start frame
    t = torch.arange(clip.video.shape[0])[:, None]
    assert torch.equal(upd, t > clip.query_t[None])
    out.pos.sum().backward()
    assert model.backbone.resnet.conv1.weight.grad is not None
    assert model.query_init.weight.grad.abs().sum() > 0
