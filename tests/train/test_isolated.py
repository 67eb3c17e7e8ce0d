"""Training clips decoded with every point alone, as `taptr eval tapvid` decodes queries."""

from __future__ import annotations

import torch

import taptr_ros.train.loop as loop
from taptr_ros.model.taptr import TAPTRv2
from taptr_ros.train.loop import TrainConfig, isolated_clip, train
from taptr_ros.train.rollout import rollout


def _moving_model(tiny) -> TAPTRv2:
    torch.manual_seed(0)
    model = TAPTRv2(tiny).eval()
    for head in model.decoder.pos_heads:  # non-zero heads so positions move
        torch.nn.init.normal_(head.layers[-1].weight, std=0.05)
    return model


def test_isolated_rollout_equals_each_point_rolled_out_alone(clip, tiny):
    model = _moving_model(tiny)
    with torch.no_grad():
        together = rollout(model, clip.video, clip.query_xy, clip.query_t, isolated=True)
        joint = rollout(model, clip.video, clip.query_xy, clip.query_t)
        for i in range(clip.query_xy.shape[0]):
            alone = rollout(model, clip.video, clip.query_xy[i:i + 1], clip.query_t[i:i + 1])
            upd = alone.update[:, 0]
            assert torch.allclose(together.pos[-1][upd, i], alone.pos[-1][upd, 0], atol=1e-5)
            assert torch.allclose(together.vis_logits[upd, i], alone.vis_logits[upd, 0], atol=1e-5)
    upd = joint.update
    # spatial attention mixes the points when decoded jointly: the two results differ
    assert not torch.allclose(together.pos[-1][upd], joint.pos[-1][upd], atol=1e-4)


def test_isolated_clips_are_the_share_asked_for_and_spread():
    for share in (0.0, 0.25, 0.5, 1.0):
        picks = [isolated_clip(i, share) for i in range(1000)]
        assert abs(sum(picks) - 1000 * share) <= 1, share
        # spread, not in a block: every run of 20 clips holds the share within one clip
        for start in range(0, 980, 20):
            assert abs(sum(picks[start:start + 20]) - 20 * share) <= 1, (share, start)


def test_training_decodes_the_chosen_clips_alone(tmp_path, tiny, monkeypatch):
    seen: list[bool] = []

    def recording(model, video, query_xy, query_t, isolated=False):
        seen.append(isolated)
        return rollout(model, video, query_xy, query_t, isolated=isolated)

    monkeypatch.setattr(loop, "rollout", recording)
    cfg = TrainConfig(steps=3, batch=2, frames=8, points=4, warmup=1, val_every=0, threads=1, seed=5,
                      isolated_share=0.5)
    summary = train(tiny, cfg, tmp_path / "run", progress=False)
    assert summary["clips"] == 6
    assert seen == [isolated_clip(i, 0.5) for i in range(6)]
    assert any(seen) and not all(seen)
