"""Image classifiers: a small CNN (fast, used as a training signal) and ResNet-18 (a judge)."""
from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """~0.3 M parameters; input 64x64 in [-1, 1]."""

    def __init__(self, n_classes: int = 2, width: int = 32):
        super().__init__()
        w = width

        def blk(i, o):
            return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(True),
                    nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(True), nn.MaxPool2d(2)]

        self.features = nn.Sequential(*blk(3, w), *blk(w, 2 * w), *blk(2 * w, 4 * w), *blk(4 * w, 4 * w))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * w, n_classes))

    def forward(self, x):
        return self.head(self.features(x))
