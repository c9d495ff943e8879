"""ResNet-18 (He et al. 2016) in the standard BasicBlock layout, written here (no torchvision).

Parameter names follow the usual layout (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
``layer4.1.downsample.0``, ``fc``) so state dicts read like any other ResNet-18.

``stem`` picks the first stage for the input size:

- ``"imagenet"``: 7x7 conv stride 2 + 3x3 max-pool stride 2 (the original, for 224 px; 64 px
  inputs reach ``layer1`` at 16x16 and ``layer4`` at 2x2).
- ``"cifar"``: 3x3 conv stride 1, no max-pool (small images; 64 px reach ``layer1`` at 64x64,
  about 14x the compute of ``"imagenet"``).
- ``"s2"``: 3x3 conv stride 2, no max-pool (in between: ``layer1`` at 32x32, ~4x ``"imagenet"``).
"""
from __future__ import annotations

import torch
from torch import nn

STEMS = ("imagenet", "cifar", "s2")


def conv3x3(i: int, o: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2), n_classes: int = 2, stem: str = "imagenet",
                 width: int = 64, in_channels: int = 3, dropout: float = 0.0, zero_init_residual: bool = True):
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r}; one of {STEMS}")
        self.stem = stem
        self.inplanes = width
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1 if stem == "cifar" else 2, padding=1,
                                   bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(width * 8, n_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:  # each block starts as the identity (Goyal et al. 2017)
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))


def resnet18(n_classes: int = 2, stem: str = "imagenet", **kw) -> ResNet:
    """ResNet-18: BasicBlock x (2, 2, 2, 2), 11.2 M parameters at width 64 (plus the head)."""
    return ResNet((2, 2, 2, 2), n_classes=n_classes, stem=stem, **kw)
