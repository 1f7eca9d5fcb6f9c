"""English -> German number words generated with num2words (chapters 1-3): the offline
stand-in for WMT14, which needs a download."""

from __future__ import annotations

import functools

from handbook.datasets.base import OFFLINE_ALTERNATIVES, OfflineDataError


def number_words(max_number: int = 9999, test_size: float = 0.1, seed: int = 0):
    """An English -> German translation corpus of number words, generated with ``num2words``.

    Every integer in ``1..max_number`` appears once: ``"three hundred and twelve"`` ->
    ``"dreihundertzwölf"``. The split is by number, so no test number (and no test sentence)
    is ever seen in training. Returns a ``datasets.DatasetDict`` (``train``/``test``) with
    columns ``number`` (int), ``english`` and ``german`` (str).

    What it simulates: a real translation problem with reordering (German says the units
    before the tens: "einundzwanzig" = one-and-twenty), compounding (one German word for a
    whole English phrase) and an exact reference. What it does not: ambiguity, synonyms,
    rare words, noise; BLEU here is far higher than on WMT14 and not comparable with it.
    """
    if max_number < 10:
        raise ValueError(f"max_number must be at least 10, got {max_number}")
    if max_number >= 1_000_000:
        raise ValueError(
            f"max_number must be below 1,000,000 (German switches to separate "
            f"words for millions), got {max_number}"
        )
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction between 0 and 1, got {test_size}")
    table = _number_word_pairs(list(range(1, max_number + 1)))
    return table.train_test_split(test_size=test_size, seed=seed)


def _number_word_pairs(numbers: list[int]):
    """A ``datasets.Dataset`` with columns number, english, german for ``numbers``."""
    from datasets import Dataset

    english, german = _words(tuple(numbers))
    return Dataset.from_dict({"number": numbers, "english": list(english), "german": list(german)})


@functools.lru_cache(maxsize=4)
def _words(numbers: tuple[int, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The English and German words of ``numbers``, kept for the next call with the same
    numbers: num2words takes about 2 s for 1..9,999, and chapter 3 asks for them twice."""
    from num2words import num2words

    english = tuple(num2words(number, lang="en") for number in numbers)
    return english, tuple(num2words(number, lang="de") for number in numbers)


def number_words_sample(sizes: dict[str, int], *, max_number: int = 99_999, seed: int = 0):
    """A small English -> German number-words corpus: ``sizes`` numbers per split, disjoint.

    The same pairs as :func:`number_words` (``num2words``), but drawn at
    random from ``1..max_number`` so that a few hundred training pairs cover a wide range, and
    without generating the whole range. Returns a ``datasets.DatasetDict`` with one split per
    key of ``sizes`` and columns ``number``, ``english``, ``german``.
    """
    import random

    from datasets import DatasetDict

    total = sum(sizes.values())
    if total > max_number:
        raise ValueError(f"asked for {total} distinct numbers but max_number is {max_number}")
    numbers = random.Random(seed).sample(range(1, max_number + 1), total)
    splits, start = {}, 0
    for name, size in sizes.items():
        chosen = numbers[start : start + size]
        start += size
        splits[name] = _number_word_pairs(chosen)
    return DatasetDict(splits)


def wmt14(*_, **__):
    """WMT14 English-German needs a download; this raises :class:`OfflineDataError`.

    With a network: ``datasets.load_dataset("wmt14", "de-en")``.
    """
    raise OfflineDataError(
        "WMT14 must be downloaded from the HuggingFace hub, and this book downloads nothing. "
        f"Offline, use {OFFLINE_ALTERNATIVES['wmt14']}; with a network, "
        "datasets.load_dataset('wmt14', 'de-en')."
    )
