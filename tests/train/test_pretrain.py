"""Pair pre-training of backbone + encoder: it learns, touches nothing else, and hands on."""

from __future__ import annotations

import pytest
import torch

from taptr_ros.model.checkpoint import load_checkpoint
from taptr_ros.model.taptr import TAPTRv2
from taptr_ros.train.log import read_csv
from taptr_ros.train.loop import TrainConfig, train
from taptr_ros.train.pretrain import (PretrainConfig, _fine_maps, make_pairs, match_accuracy, pair_batch,
                                      pair_loss, pretrain)


def test_the_pair_loss_trains_the_features_to_match(tiny):
    torch.manual_seed(0)
    model = TAPTRv2(tiny).train()
    cfg = PretrainConfig(points=64)
    batch = pair_batch(make_pairs(cfg, tiny, seed=7, start=0, count=4), tiny)
    loss0, acc0 = match_accuracy(model, batch, cfg.temperature)
    optimizer = torch.optim.AdamW([p for n, p in model.named_parameters()
                                   if n.startswith(("backbone.", "encoder."))], lr=1e-3)
    for _ in range(25):
        optimizer.zero_grad()
        pair_loss(_fine_maps(model, batch.images), batch, cfg.temperature).backward()
        optimizer.step()
    loss1, acc1 = match_accuracy(model, batch, cfg.temperature)
    assert loss1 < 0.8 * loss0 and acc1 > acc0


def test_pretrain_changes_only_backbone_and_encoder_and_train_continues(tmp_path, tiny_checkpoint):
    cfg = PretrainConfig(steps=4, batch=2, points=16, lr=1e-3, warmup=1, val_every=2, val_pairs=3,
                         init=str(tiny_checkpoint), init_size=64, log_every=1)
    summary = pretrain(None, cfg, tmp_path / "pairs")
    assert summary["step"] == 4 and summary["pairs"] == 8
    assert [int(r["step"]) for r in read_csv(tmp_path / "pairs" / "val.csv")] == [0, 2, 4]
    assert len(read_csv(tmp_path / "pairs" / "pretrain.csv")) == 4
    before = load_checkpoint(tiny_checkpoint).model.state_dict()
    after_model = load_checkpoint(tmp_path / "pairs" / "model.pt").model
    assert after_model.config.input_hw == (64, 64)
    after = after_model.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.allclose(before[k].float(), after[k].float(), atol=1e-3)}
    assert changed == {"backbone", "encoder"}
    result = train(None, TrainConfig(steps=1, frames=8, points=4, init=str(tmp_path / "pairs" / "model.pt"),
                                     val_every=0), tmp_path / "run", progress=False)
    assert result["step"] == 1


def test_a_time_budget_ends_the_run_validated(tmp_path, tiny):
    cfg = PretrainConfig(steps=10_000, batch=1, points=8, val_every=0, val_pairs=2, time_budget_s=0.5)
    summary = pretrain(tiny, cfg, tmp_path)
    assert 1 <= summary["step"] < 10_000
    assert int(read_csv(tmp_path / "val.csv")[-1]["step"]) == summary["step"]


def test_worker_processes_make_the_same_pairs(tiny):
    from itertools import islice

    from taptr_ros.train.pretrain import pair_stream

    cfg = PretrainConfig(points=8, seed=4)
    plain = list(islice(pair_stream(cfg, tiny), 5))
    spawned = pair_stream(PretrainConfig(points=8, seed=4, workers=2), tiny)
    pooled = list(islice(spawned, 5))
    spawned.close()
    for a, b in zip(plain, pooled):
        assert (a.second == b.second).all() and (a.xy_second == b.xy_second).all()


@pytest.mark.parametrize("seed", [-1, 1_000_000, 1_000_100])
def test_a_pair_seed_outside_the_training_range_is_refused(seed):
    with pytest.raises(ValueError, match="seed"):
        PretrainConfig(seed=seed)


def test_the_cli_refuses_a_held_out_seed_in_one_line(tmp_path, capsys):
    from taptr_ros.cli import main

    assert main(["pretrain", "--out", str(tmp_path / "run"), "--seed", "1000100", "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("taptr pretrain:") and "seed" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
