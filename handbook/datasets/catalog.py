"""Datasets by name: the offline ones, and the real corpora where a network exists."""

from __future__ import annotations

from handbook.datasets.digit_images import digits, mnist
from handbook.datasets.number_translation import number_words, wmt14


def load(name: str, **options):
    """Load a dataset by name: offline ones, or real corpora where a network exists."""
    loaders = {"digits": digits, "mnist": mnist, "number_words": number_words, "wmt14": wmt14}
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}: expected one of {sorted(loaders)}")
    return loaders[name](**options)
