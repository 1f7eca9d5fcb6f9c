"""The small convolutional network of chapter 0, shared with chapters 4 and 9.

Chapter 0 (:mod:`handbook.digits`) trains :class:`SmallCNN` on the 8x8 digits next to an MLP;
chapter 4 (:mod:`handbook.compression`) distils, prunes and quantizes a wider one; chapter 9
(:mod:`handbook.ethics`) attacks and explains it. Tested with chapter 0 in ``tests/test_digits.py``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ChannelsLastMaxPool2d", "SmallCNN"]


class _ChannelsLastMaxPool(torch.autograd.Function):
    """Non-overlapping max-pooling computed in channels-last memory, its gradient scattered back
    to each window's maximum with ``max_unpool2d``; contiguous in, contiguous out."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, size: int) -> torch.Tensor:
        channels_last = inputs.contiguous(memory_format=torch.channels_last)
        outputs, indices = F.max_pool2d(channels_last, size, return_indices=True)
        ctx.save_for_backward(indices.contiguous())
        ctx.size, ctx.input_size = size, inputs.shape[-2:]
        return outputs.contiguous()

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> tuple[torch.Tensor, None]:
        (indices,) = ctx.saved_tensors
        return F.max_unpool2d(
            gradient.contiguous(), indices, ctx.size, output_size=ctx.input_size
        ), None


class ChannelsLastMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d(size)`` (stride = size: windows that do not overlap) with the same outputs
    and gradients, faster on the CPU: PyTorch's kernel for channels-last memory is vectorized
    over the channels, several times faster on small images than the one for contiguous
    memory. Each window's first maximum gets the gradient, as in ``nn.MaxPool2d``."""

    def __init__(self, size: int):
        super().__init__(size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return _ChannelsLastMaxPool.apply(inputs, self.kernel_size)


class SmallCNN(nn.Module):
    """Two 3x3 convolution blocks and a linear head.

    ``(batch, 1, side, side) -> (batch, classes)`` logits; ``side`` must be divisible by 4
    (8 for the scikit-learn digits, 28 for MNIST). ``channels_last_pooling`` pools with
    :class:`ChannelsLastMaxPool2d`: the same outputs and gradients, faster on the CPU.
    """

    def __init__(
        self,
        side: int = 8,
        channels: int = 32,
        classes: int = 10,
        dropout: float = 0.1,
        *,
        channels_last_pooling: bool = False,
    ):
        super().__init__()
        pool = ChannelsLastMaxPool2d if channels_last_pooling else nn.MaxPool2d
        if side % 4:
            raise ValueError(
                f"SmallCNN halves the image twice: side must be divisible by 4, got {side}"
            )
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            pool(2),
            nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(),
            pool(2),
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
