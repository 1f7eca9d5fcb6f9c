"""Handwritten digits (chapters 0, 8, 9): scikit-learn's 8x8 digits shipped with the package,
MNIST where a network exists, and both as image tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from handbook.datasets.base import OFFLINE_ALTERNATIVES, OfflineDataError

DIGIT_CLASSES = [str(digit) for digit in range(10)]


def digits(test_size: float = 0.2, seed: int = 0):
    """scikit-learn's 1,797 handwritten digits (8x8, pixel values 0..16) with a stratified split.

    Returns a ``datasets.DatasetDict`` with ``train`` and ``test`` splits; columns ``image``
    (64 floats, row-major 8x8) and ``label`` (a ``ClassLabel`` with names "0" ... "9").
    The split keeps each digit's share equal in both halves and depends only on ``seed``.
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction between 0 and 1, got {test_size}")
    from datasets import ClassLabel, Dataset, Features, Sequence, Value
    from sklearn.datasets import load_digits

    bunch = load_digits()
    features = Features(
        {"image": Sequence(Value("float32"), length=64), "label": ClassLabel(names=DIGIT_CLASSES)}
    )
    table = Dataset.from_dict(
        {"image": bunch.data.astype(np.float32), "label": bunch.target.astype(np.int64)},
        features=features,
    )
    return table.train_test_split(test_size=test_size, seed=seed, stratify_by_column="label")


def mnist(root: str | Path = "data", download: bool = False):
    """Real MNIST (28x28, 70,000 images) through torchvision, in the same form as :func:`digits`.

    The one-line swap for a machine with a network: ``data = mnist(download=True)``. Pixel
    values are rescaled to 0..16 so that code written for the 8x8 digits needs no change except
    the image side (28 instead of 8). Without the files and with ``download=False`` this raises
    :class:`OfflineDataError` naming the offline alternative.
    """
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value
    from torchvision.datasets import MNIST

    features = Features(
        {"image": Sequence(Value("float32"), length=784), "label": ClassLabel(names=DIGIT_CLASSES)}
    )
    splits = {}
    for split, train in (("train", True), ("test", False)):
        try:
            source = MNIST(str(root), train=train, download=download)
        except RuntimeError as exc:
            raise OfflineDataError(
                f"MNIST is not in {root!s} and download={download}: {exc}. "
                f"Offline, use {OFFLINE_ALTERNATIVES['mnist']}."
            ) from exc
        images = source.data.reshape(len(source.data), -1).numpy().astype(np.float32) * (16 / 255)
        splits[split] = Dataset.from_dict(
            {"image": images, "label": source.targets.numpy()}, features=features
        )
    return DatasetDict(splits)


def image_tensors(split, side: int | None = None):
    """``(images, labels)`` tensors of a digits-style split.

    images: float32 ``(n, 1, side, side)`` scaled to [0, 1] (pixel value / 16); labels: int64
    ``(n,)``. ``side`` defaults to the square root of the row length (8 for digits, 28 for MNIST).
    """
    import torch

    pixels = np.asarray(split["image"], dtype=np.float32)
    if pixels.ndim != 2:
        raise ValueError(
            f"expected a split whose 'image' rows are flat pixel lists, got {pixels.shape}"
        )
    side = side or int(round(pixels.shape[1] ** 0.5))
    if side * side != pixels.shape[1]:
        raise ValueError(f"rows of {pixels.shape[1]} pixels do not form a {side}x{side} image")
    images = torch.from_numpy(pixels / 16.0).reshape(-1, 1, side, side)
    labels = torch.as_tensor(np.asarray(split["label"]), dtype=torch.int64)
    return images, labels
