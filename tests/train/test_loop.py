"""Training steps learn, a resumed run continues exactly, exported models load as float32."""

from __future__ import annotations

import math

import torch

from taptr_ros.model.checkpoint import load_checkpoint
from taptr_ros.model.taptr import TAPTRv2
from taptr_ros.train.log import read_csv
from taptr_ros.train.losses import tracking_loss
from taptr_ros.train.loop import TrainConfig, lr_factor, make_optimizer, train
from taptr_ros.train.rollout import rollout
from taptr_ros.train.state import export_model


def test_steps_on_a_fixed_clip_reduce_the_loss(clip, tiny):
    torch.manual_seed(0)
    model = TAPTRv2(tiny).train()
    opt = make_optimizer(model, TrainConfig(lr=1e-3, backbone_lr=1e-3))
    losses = []
    for _ in range(12):
        opt.zero_grad()
        loss = tracking_loss(rollout(model, clip.video, clip.query_xy, clip.query_t),
                             clip.gt_xy, clip.gt_occluded).total
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < 0.7 * losses[0], losses


def _cfg(**kw):
    base = dict(steps=4, frames=8, points=4, warmup=2, val_every=0, threads=1, seed=5, ema_decay=0.9)
    return TrainConfig(**{**base, **kw})


def test_resume_continues_identically(tmp_path, tiny):
    straight = train(tiny, _cfg(), tmp_path / "a", progress=False)
    first = train(tiny, _cfg(), tmp_path / "b", progress=False, stop_after=2)
    assert first["step"] == 2 and first["weights_sha1"] != straight["weights_sha1"]
    resumed = train(tiny, _cfg(), tmp_path / "b", resume=True, progress=False)
    assert resumed["step"] == 4 and resumed["clips"] == 4
    assert resumed["weights_sha1"] == straight["weights_sha1"]
    # the log of the split run has the same rows as the straight one
    a, b = read_csv(tmp_path / "a" / "train.csv"), read_csv(tmp_path / "b" / "train.csv")
    assert [r["total"] for r in a] == [r["total"] for r in b]
    assert (tmp_path / "b" / "curves.png").stat().st_size > 0


def test_lr_schedule_warms_up_then_decays():
    cfg = TrainConfig(steps=100, warmup=10, final_lr_ratio=0.1)
    assert lr_factor(0, cfg) == 0.1 and lr_factor(9, cfg) == 1.0
    assert lr_factor(10, cfg) == 1.0 and abs(lr_factor(100, cfg) - 0.1) < 1e-9
    assert lr_factor(50, cfg) < lr_factor(20, cfg)


def test_lr_schedule_over_seconds_ignores_the_step_count():
    cfg = TrainConfig(steps=100, warmup=10, final_lr_ratio=0.1, cosine_s=60.0)
    assert lr_factor(5, cfg, elapsed_s=30.0) == 0.6  # the warm-up still counts steps
    assert lr_factor(50, cfg, elapsed_s=0.0) == 1.0  # step 50 of 100 would be halfway
    assert abs(lr_factor(11, cfg, elapsed_s=30.0) - 0.55) < 1e-9  # halfway in time
    assert abs(lr_factor(11, cfg, elapsed_s=90.0) - 0.1) < 1e-9  # past the span: the floor


def test_export_half_loads_float32_with_config(tmp_path, tiny):
    torch.manual_seed(0)
    model = TAPTRv2(tiny)
    size_full = export_model(tmp_path / "f.pt", model, metadata={"step": 7})
    size_half = export_model(tmp_path / "h.pt", model, half=True)
    assert size_half < 0.6 * size_full
    for name, half in (("f.pt", False), ("h.pt", True)):
        loaded = load_checkpoint(tmp_path / name)
        assert loaded.config == tiny
        for key, value in model.state_dict().items():
            got = loaded.model.state_dict()[key]
            assert got.dtype == value.dtype
            want = value.half().float() if half and value.is_floating_point() else value
            assert torch.equal(got, want), key
    assert load_checkpoint(tmp_path / "f.pt").metadata["step"] == 7


def test_init_starts_a_new_run_from_a_checkpoints_weights(tmp_path, tiny):
    trained = train(tiny, _cfg(), tmp_path / "a", progress=False)
    export_model(tmp_path / "a.pt", load_train_state_model(tmp_path / "a" / "last.pt"))
    # zero steps: the new run's weights are the checkpoint's, not a fresh initialisation
    start = train(preset_named("small"), _cfg(steps=0, init=str(tmp_path / "a.pt")), tmp_path / "b",
                  progress=False)
    assert start["weights_sha1"] == trained["weights_sha1"]
    fresh = train(tiny, _cfg(steps=0), tmp_path / "c", progress=False)
    assert fresh["weights_sha1"] != trained["weights_sha1"]
    # and it trains on from there with a fresh optimiser and the warm-up
    cont = train(tiny, _cfg(steps=2, init=str(tmp_path / "a.pt")), tmp_path / "d", progress=False)
    assert cont["step"] == 2 and cont["weights_sha1"] != trained["weights_sha1"]
    lrs = [r["lr"] for r in read_csv(tmp_path / "d" / "train.csv")]
    assert lrs[0] < lrs[1]  # warm-up from the start again


def test_init_size_trains_the_checkpoints_weights_at_another_input_size(tmp_path, tiny):
    train(tiny, _cfg(), tmp_path / "a", progress=False)
    export_model(tmp_path / "a.pt", load_train_state_model(tmp_path / "a" / "last.pt"))
    start = train(preset_named("small"), _cfg(steps=0, init=str(tmp_path / "a.pt"), init_size=96),
                  tmp_path / "b", progress=False)
    same = train(preset_named("small"), _cfg(steps=0, init=str(tmp_path / "a.pt")), tmp_path / "c",
                 progress=False)
    assert start["weights_sha1"] == same["weights_sha1"]  # the same weights, only the size differs
    cont = train(tiny, _cfg(steps=1, init=str(tmp_path / "a.pt"), init_size=96, val_every=1,
                            val_per_preset=1), tmp_path / "d", progress=False)
    assert cont["step"] == 1
    assert load_checkpoint(tmp_path / "d" / "best.pt").config.input_hw == (96, 96)
    assert load_train_state_model(tmp_path / "d" / "last.pt").config.input_hw == (96, 96)
    assert load_train_state_model(tmp_path / "c" / "last.pt").config.input_hw == tiny.input_hw

def test_init_start_velocity_trains_the_checkpoints_weights_with_the_next_frames_started_ahead(tmp_path, tiny):
    train(tiny, _cfg(), tmp_path / "a", progress=False)
    export_model(tmp_path / "a.pt", load_train_state_model(tmp_path / "a" / "last.pt"))
    # 12 frames: more than one window, so the next window's frames start ahead of the tail
    ahead = train(preset_named("small"), _cfg(steps=1, frames=12, init=str(tmp_path / "a.pt"),
                                               init_start_velocity=3, val_every=1, val_per_preset=1),
                  tmp_path / "b", progress=False)
    held = train(preset_named("small"), _cfg(steps=1, frames=12, init=str(tmp_path / "a.pt")), tmp_path / "c",
                 progress=False)
    assert load_checkpoint(tmp_path / "b" / "best.pt").config.start_velocity_frames == 3
    assert load_train_state_model(tmp_path / "b" / "last.pt").config.start_velocity_frames == 3
    assert load_train_state_model(tmp_path / "c" / "last.pt").config.start_velocity_frames == 0
    assert ahead["weights_sha1"] != held["weights_sha1"]  # the same first clip, another rollout


def test_still_clips_do_not_move(tiny):
    from taptr_ros.train.data import synthetic_clips
    clip = next(synthetic_clips(tiny, num_frames=6, num_points=8, seed=2, presets=("still",)))
    assert torch.equal(clip.gt_xy, clip.gt_xy[:1].expand_as(clip.gt_xy))
    assert not bool(clip.gt_occluded.any())
    moving = next(synthetic_clips(tiny, num_frames=6, num_points=8, seed=2, presets=("easy",)))
    assert float((moving.gt_xy - moving.gt_xy[:1]).abs().max()) > 1e-3


def load_train_state_model(path):
    from taptr_ros.model.config import TaptrConfig
    from taptr_ros.train.state import load_train_state
    state = load_train_state(path)
    model = TAPTRv2(TaptrConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model


def preset_named(name):
    from taptr_ros.model.config import preset
    return preset(name)


def test_time_budget_ends_the_run_validated_and_saved(tmp_path, tiny):
    out = tmp_path / "budget"
    summary = train(tiny, _cfg(steps=1000, time_budget_s=1e-9, val_every=500, val_per_preset=1),
                    out, progress=False)
    assert summary["step"] < 1000  # the budget, not the step count, ended it
    rows = read_csv(out / "val.csv")
    assert [int(r["step"]) for r in rows] == [summary["step"]]
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()


def test_bf16_autocast_trains(tmp_path, tiny):
    summary = train(tiny, _cfg(steps=2, precision="bf16"), tmp_path / "bf16", progress=False)
    assert summary["step"] == 2 and math.isfinite(summary["total"])
