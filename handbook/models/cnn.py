"""The small convolutional network of chapter 0, shared with chapters 4 and 9.

Chapter 0 (:mod:`handbook.digits`) trains :class:`SmallCNN` on the 8x8 digits next to an MLP;
chapter 4 (:mod:`handbook.compression`) distils, prunes and quantizes a wider one; chapter 9
(:mod:`handbook.ethics`) attacks and explains it. Tested with chapter 0 in ``tests/test_digits.py``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SmallCNN"]


class SmallCNN(nn.Module):
    """Two 3x3 convolution blocks and a linear head.

    ``(batch, 1, side, side) -> (batch, classes)`` logits; ``side`` must be divisible by 4
    (8 for the scikit-learn digits, 28 for MNIST).
    """

    def __init__(self, side: int = 8, channels: int = 32, classes: int = 10, dropout: float = 0.1):
        super().__init__()
        if side % 4:
            raise ValueError(
                f"SmallCNN halves the image twice: side must be divisible by 4, got {side}"
            )
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(2 * channels * (side // 4) ** 2, classes)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(
                f"expected images of shape (batch, 1, side, side), got {tuple(images.shape)}"
            )
        return self.head(self.features(images))
