"""ResNet with frozen BatchNorm, and the full network's parameter count."""

from __future__ import annotations

import torch
from torch import nn

from taptr_ros.model.backbone import FrozenBatchNorm2d, ResNet
from taptr_ros.model.config import preset
from taptr_ros.model.taptr import TAPTRv2


def test_frozen_batchnorm_equals_eval_batchnorm():
    gen = torch.Generator().manual_seed(1)
    bn, frozen = nn.BatchNorm2d(5).eval(), FrozenBatchNorm2d(5)
    for name in ("weight", "bias", "running_mean"):
        val = torch.randn(5, generator=gen)
        getattr(bn, name).data.copy_(val)
        getattr(frozen, name).copy_(val)
    var = 0.5 + torch.rand(5, generator=gen)
    bn.running_var.copy_(var)
    frozen.running_var.copy_(var)
    x = torch.randn(2, 5, 4, 3, generator=gen)
    torch.testing.assert_close(frozen(x), bn(x), atol=1e-6, rtol=1e-6)
    assert not list(frozen.parameters())  # statistics and affine are buffers, never trained


def test_resnet50_layout_and_size():
    net = ResNet("resnet50")
    # conv weights only (BN is frozen buffers): torchvision's ResNet-50 trunk minus BN and fc
    assert sum(p.numel() for p in net.parameters()) == 23_454_912
    keys = net.state_dict().keys()
    assert "layer3.5.conv3.weight" in keys and "layer2.0.downsample.1.running_var" in keys
    assert net.layer2[0].conv2.stride == (2, 2) and net.layer2[0].conv1.stride == (1, 1)  # v1.5


def test_official_network_parameter_count():
    # 40,040,803 unique parameters for the official v2 config (reference notes, section 1.9)
    model = TAPTRv2(preset("taptrv2"))
    assert sum(p.numel() for p in model.parameters()) == 40_040_803
