"""ResNet backbone with frozen BatchNorm, and the per-level 1x1 conv + GroupNorm projections.

The ResNet follows the torchvision layout (v1.5: in a Bottleneck the stride sits on the 3x3
conv), so official checkpoints map onto it by name (see `taptr_ros.model.checkpoint`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taptr_ros.model.config import RESNET_DEPTHS, TaptrConfig


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine parameters (all buffers, never trained).

    y = x * s + (b - m * s) with s = weight / sqrt(running_var + eps).
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def scale_shift(self) -> tuple[Tensor, Tensor]:
        """(C,) scale s and shift b - m * s."""
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) -> same shape."""
        scale, shift = self.scale_shift()
        return x * scale[None, :, None, None] + shift[None, :, None, None]


def conv_bn(conv: nn.Conv2d, bn: FrozenBatchNorm2d, x: Tensor) -> Tensor:
    """bn(conv(x)) as one convolution: the frozen scale folds into the weights, the shift
    becomes the bias. Same result up to float rounding (tested), one pass over the
    activations fewer, differentiable with respect to the weights like the pair."""
    weight, bias = _folded(conv, bn)
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _folded(conv: nn.Conv2d, bn: FrozenBatchNorm2d) -> tuple[Tensor, Tensor]:
    """Folded (weight, bias); without autograd cached on `conv` until one of its source
    tensors is replaced (``.to()``, a new module) or modified in place (version counter)."""
    sources = (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var)
    try:
        versions = tuple(-1 if t is None else t._version for t in sources)
    except RuntimeError:  # tensors made under inference_mode have no version counter
        versions = None
    cached = conv.__dict__.get("_folded_cache")
    if versions is not None and cached is not None and cached[1] == versions \
            and all(a is b for a, b in zip(cached[0], sources)):
        return cached[2], cached[3]
    scale, shift = bn.scale_shift()
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    bias = shift if conv.bias is None else shift + conv.bias * scale
    if versions is not None and not torch.is_grad_enabled():
        conv.__dict__["_folded_cache"] = (sources, versions, weight, bias)  # not module state
    return weight, bias


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34). Stride on the first conv.

    Args:
        cin: input channels.
        width: output channels.
        stride: 1 or 2.
    """

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, width, 3, stride), FrozenBatchNorm2d(width)
        self.conv2, self.bn2 = _conv(width, width, 3), FrozenBatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != width:
            self.downsample = nn.Sequential(_conv(cin, width, 1, stride), FrozenBatchNorm2d(width))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else conv_bn(*self.downsample, x)
        out = self.relu(conv_bn(self.conv1, self.bn1, x))
        out = conv_bn(self.conv2, self.bn2, out)
        return self.relu(out.add_(identity))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, v1.5) -> 1x1 with 4x expansion (ResNet-50).

    Args:
        cin: input channels.
        width: bottleneck width; output channels are 4 * width.
        stride: 1 or 2.
    """

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1, self.bn1 = _conv(cin, width, 1), FrozenBatchNorm2d(width)
        self.conv2, self.bn2 = _conv(width, width, 3, stride), FrozenBatchNorm2d(width)
        self.conv3, self.bn3 = _conv(width, cout, 1), FrozenBatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(_conv(cin, cout, 1, stride), FrozenBatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else conv_bn(*self.downsample, x)
        out = self.relu(conv_bn(self.conv1, self.bn1, x))
        out = self.relu(conv_bn(self.conv2, self.bn2, out))
        out = conv_bn(self.conv3, self.bn3, out)
        return self.relu(out.add_(identity))


class ResNet(nn.Module):
    """ResNet trunk returning C2..C5 (strides 4, 8, 16, 32).

    Args:
        name: "resnet18", "resnet34" or "resnet50".
        num_stages: stages built and computed (1..4, C2..C_{num_stages+1}); later stages have
            no parameters, so a checkpoint of a truncated trunk stays small.
    """

    def __init__(self, name: str, num_stages: int = 4) -> None:
        super().__init__()
        if not 1 <= num_stages <= 4:
            raise ValueError(f"num_stages must be in 1..4, got {num_stages}")
        self.num_stages = num_stages
        block = Bottleneck if name == "resnet50" else BasicBlock
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        stages = zip(RESNET_DEPTHS[name][:num_stages], (64, 128, 256, 512)[:num_stages])
        for i, (depth, width) in enumerate(stages):
            blocks = []
            for b in range(depth):
                blocks.append(block(cin, width, 2 if (b == 0 and i > 0) else 1))
                cin = width * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))

    def forward(self, images: Tensor) -> list[Tensor]:
        """images: (B, 3, H, W) normalised -> [C2, .., C_{num_stages+1}], each (B, C_s, h_s, w_s)."""
        if images.device.type == "cpu" or images.dtype in (torch.float16, torch.bfloat16):
            # oneDNN's NHWC convolutions: 14% less CPU time for ResNet-50 at 512x512 measured
            # (always the oneDNN path, never the slow 1x1 one); tensor cores on CUDA in half
            images = images.contiguous(memory_format=torch.channels_last)
        x = self.maxpool(self.relu(conv_bn(self.conv1, self.bn1, images)))
        outs = []
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
            outs.append(x)
        return outs


class LevelProjection(nn.Module):
    """1x1 conv (with bias) to `hidden_dim` channels, then GroupNorm (eps 1e-5)."""

    def __init__(self, cin: int, hidden_dim: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, hidden_dim, 1)
        self.norm = nn.GroupNorm(groups, hidden_dim, eps=1e-5)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.conv(x))


class Backbone(nn.Module):
    """ResNet + per-level projections: images -> `config.num_levels` maps of `hidden_dim` channels."""

    def __init__(self, config: TaptrConfig) -> None:
        super().__init__()
        self.stages = config.feature_stages
        # stages after the last used one are neither built nor computed
        self.resnet = ResNet(config.backbone, num_stages=max(config.feature_stages) + 1)
        self.proj = nn.ModuleList(LevelProjection(c, config.hidden_dim, config.gn_groups)
                                  for c in config.level_channels)

    def features(self, images: Tensor) -> list[Tensor]:
        """images (B, 3, H, W) -> raw ResNet outputs of the used stages, (B, C_l, h_l, w_l) each."""
        outs = self.resnet(images)
        return [outs[s] for s in self.stages]

    def project(self, features: list[Tensor]) -> list[Tensor]:
        """Raw stage outputs -> projected levels, (B, hidden_dim, h_l, w_l) each."""
        return [proj(f) for proj, f in zip(self.proj, features)]

    def forward(self, images: Tensor) -> list[Tensor]:
        """images (B, 3, H, W) normalised -> projected levels, (B, hidden_dim, h_l, w_l) each."""
        return self.project(self.features(images))
