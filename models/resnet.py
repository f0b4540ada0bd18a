"""The image front end: a torchvision-style Bottleneck ResNet truncated after stage 3 (reference §1.3).

Output: 1024 channels at stride 16. Block counts follow the official table, including its quirk that
resnet18/resnet34 are built from Bottleneck blocks as well.
"""
from typing import Callable, List

import torch
from torch import nn

from .drop_path import DropPath, drop_path_rates

STAGE_BLOCKS = {
    "resnet18": [2, 2, 2],
    "resnet34": [3, 4, 6],
    "resnet50": [3, 4, 6],
    "resnet101": [3, 4, 23],
    "resnet152": [3, 8, 36],
}
OUT_CHANNELS = 1024


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters (all buffers, same state-dict keys)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "num_batches_tracked", None)  # written by a trainable BatchNorm2d
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)


def norm_layer_factory(freeze: bool, sync: bool) -> Callable[[int], nn.Module]:
    """The official choice: trainable BN (default), frozen BN, or SyncBN with eps 1e-3."""
    if freeze:
        return FrozenBatchNorm2d
    if sync:
        return lambda channels: nn.SyncBatchNorm(channels, eps=1e-3, momentum=0.1)
    return nn.BatchNorm2d


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv) with stochastic depth on the branch."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, downsample, norm_layer, drop_path_rate: float):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(identity + self.drop_path(out))


class ResNetTrunk(nn.Module):
    """Stem + stages 1-3 of a ResNet; `forward` returns (B, 1024, H/16, W/16)."""

    def __init__(self, blocks: List[int], norm_layer=nn.BatchNorm2d, drop_path_rate: float = 0.0):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_stage(64, blocks[0], 1, norm_layer, drop_path_rate)
        self.layer2 = self._make_stage(128, blocks[1], 2, norm_layer, drop_path_rate)
        self.layer3 = self._make_stage(256, blocks[2], 2, norm_layer, drop_path_rate)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def _make_stage(self, planes: int, num_blocks: int, stride: int, norm_layer, drop_path_rate: float) -> nn.Sequential:
        out_planes = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out_planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, out_planes, kernel_size=1, stride=stride, bias=False),
                norm_layer(out_planes),
            )
        # the linspace restarts in every stage and block 0 never drops (official behaviour)
        rates = drop_path_rates(drop_path_rate, num_blocks)
        layers = [Bottleneck(self.inplanes, planes, stride, downsample, norm_layer, 0.0)]
        self.inplanes = out_planes
        layers += [Bottleneck(out_planes, planes, 1, None, norm_layer, rates[i]) for i in range(1, num_blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))


def build_resnet(resnet_type: str, drop_path_rate: float, freeze_bn: bool, sync_bn: bool) -> ResNetTrunk:
    if resnet_type not in STAGE_BLOCKS:
        raise ValueError(
            f"--resnet-type {resnet_type!r} is not supported; choose one of {', '.join(STAGE_BLOCKS)}"
        )
    return ResNetTrunk(STAGE_BLOCKS[resnet_type], norm_layer_factory(freeze_bn, sync_bn), drop_path_rate)
