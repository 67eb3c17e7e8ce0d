"""The APU weight MLP starts as the identity (our from-scratch initialisation)."""

import torch

from taptr_ros.model.config import preset
from taptr_ros.model.decoder import DecoderLayer, init_identity_relu_mlp


def test_apu_weight_mlp_starts_as_identity():
    torch.manual_seed(0)
    layer = DecoderLayer(preset("small"))
    x = torch.randn(5, 48)
    torch.testing.assert_close(layer.apu_weights(x), x)


def test_identity_init_leaves_too_narrow_mlps_alone():
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 12), torch.nn.ReLU(), torch.nn.Linear(12, 12), torch.nn.ReLU(),
                              torch.nn.Linear(12, 8))
    before = [p.clone() for p in mlp.parameters()]
    init_identity_relu_mlp(mlp)  # 12 < 2 * 8
    assert all(torch.equal(a, b) for a, b in zip(before, mlp.parameters()))
