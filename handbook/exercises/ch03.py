"""Checks for the exercises of chapter 3, data engineering.

Each check runs the learner's function on several inputs, edge cases included, and compares it
with a library that does the same job wherever one exists (pandas for deduplication,
scikit-learn for Jaccard similarity, ``torch.nn.utils.rnn.pad_sequence`` for padding). Call
them from the check cells: ``ch03.check_deduplicate(deduplicate)``.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence

import numpy as np

from handbook.exercises.checks import (
    Case,
    ExerciseResult,
    check_exercise,
    expect,
    expect_close,
    expect_equal,
    expect_type,
)
from handbook.i18n import _

# Exercise 3.1 ---------------------------------------------------------------------------------


def _pandas_kept(texts: Sequence[str]) -> list[int]:
    """Indices kept by pandas' drop_duplicates on the normalized texts."""
    import pandas as pd

    normalized = (
        pd.Series(list(texts), dtype=object)
        .str.lower()
        .str.replace(f"[{string.punctuation}]", "", regex=True)
        .str.split()
        .str.join(" ")
    )
    return [int(index) for index in normalized.drop_duplicates().index]


def check_deduplicate(deduplicate: Callable[[list[str]], list[int]]) -> ExerciseResult:
    """Exercise 3.1: ``deduplicate(texts)``.

    Returns the indices of the texts to keep, ascending: the first text of every group of
    texts that are equal after lower-casing, deleting the characters of
    ``string.punctuation`` and collapsing white space (ends stripped). Compared with pandas'
    ``drop_duplicates`` on the normalized texts.
    """
    rng = np.random.default_rng(3)
    words = ["red", "green", "blue", "sky", "sea"]
    random_texts = [" ".join(rng.choice(words, 2)) for _text in range(40)]
    cases = [
        _dedup_case(deduplicate, _("no duplicates"), ["one fish", "two fish", "red fish"]),
        _dedup_case(deduplicate, _("the same text twice"), ["a cat", "a dog", "a cat"]),
        _dedup_case(
            deduplicate, _("duplicates that differ in case"), ["Hello World", "hello world"]
        ),
        _dedup_case(
            deduplicate,
            _("duplicates that differ in punctuation and spacing"),
            ["Stop, now!", "stop now", "  stop   now ", "stop no"],
        ),
        _dedup_case(deduplicate, _("40 random two-word texts"), random_texts),
        _dedup_case(deduplicate, _("a single text"), ["alone"]),
        _dedup_case(deduplicate, _("no texts"), []),
    ]
    return check_exercise("3.1", _("deduplicate by normalized hash"), cases)


def _dedup_case(deduplicate: Callable, description: str, texts: list[str]) -> Case:
    def run() -> None:
        result = deduplicate(list(texts))
        what = f"deduplicate({texts!r})" if len(texts) <= 4 else "deduplicate(texts)"
        expect_type(result, list, what)
        expect_equal([int(index) for index in result], _pandas_kept(texts), what)

    return Case(description, run)


# Exercise 3.2 ---------------------------------------------------------------------------------


def _padding(batches: Sequence[Sequence[int]], lengths: np.ndarray) -> float:
    slots = sum(len(batch) * int(lengths[list(batch)].max()) for batch in batches if len(batch))
    real = sum(int(lengths[list(batch)].sum()) for batch in batches if len(batch))
    return 0.0 if slots == 0 else 1.0 - real / slots


def check_bucket_batches(
    bucket_batches: Callable[[Sequence[int], int, int], list[list[int]]],
) -> ExerciseResult:
    """Exercise 3.2: ``bucket_batches(lengths, batch_size, seed)``.

    Returns a list of batches (lists of indices): every index exactly once, no batch larger
    than ``batch_size``, at most one smaller batch, padding no more than 2 percentage points
    above sorting the whole data set by length, batches in a random order that depends on
    ``seed``.
    """
    rng = np.random.default_rng(4)
    lengths = rng.integers(3, 60, 1000)
    cases = [
        Case(_("every index once"), lambda: _expect_partition(bucket_batches, lengths, 32)),
        Case(
            _("batches of 7 over 50 rows"),
            lambda: _expect_partition(bucket_batches, lengths[:50], 7),
        ),
        Case(
            _("a batch size larger than the data"),
            lambda: _expect_partition(bucket_batches, lengths[:5], 16),
        ),
        Case(
            _("no data"),
            lambda: expect_equal(list(bucket_batches([], 8, 0)), [], "bucket_batches([], 8, 0)"),
        ),
        Case(_("little padding"), lambda: _expect_little_padding(bucket_batches, lengths, 32)),
        Case(_("a random order of batches"), lambda: _expect_shuffled(bucket_batches, lengths, 32)),
    ]
    return check_exercise("3.2", _("bucketing sampler"), cases)


def _expect_partition(bucket_batches: Callable, lengths: np.ndarray, batch_size: int) -> None:
    what = _("bucket_batches(lengths of {rows} rows, batch_size={batch_size}, seed=0)").format(
        rows=len(lengths), batch_size=batch_size
    )
    batches = bucket_batches(lengths.tolist(), batch_size, 0)
    expect_type(batches, list, what)
    indices = sorted(int(index) for batch in batches for index in batch)
    expect(
        indices == list(range(len(lengths))),
        _(
            "{what}: expected every index 0..{last} exactly once, got "
            "{count} indices of which {distinct} distinct"
        ).format(what=what, last=len(lengths) - 1, count=len(indices), distinct=len(set(indices))),
    )
    sizes = [len(batch) for batch in batches]
    expect(
        max(sizes) <= batch_size,
        _("{what}: a batch holds {rows} rows").format(what=what, rows=max(sizes)),
    )
    expect(
        sum(size < batch_size for size in sizes) <= 1,
        _("{what}: expected at most one batch smaller than {batch_size}, got sizes {sizes}").format(
            what=what, batch_size=batch_size, sizes=sizes
        ),
    )


def _expect_little_padding(bucket_batches: Callable, lengths: np.ndarray, batch_size: int) -> None:
    batches = bucket_batches(lengths.tolist(), batch_size, 0)
    order = np.argsort(lengths, kind="stable")
    best = _padding([order[i : i + batch_size] for i in range(0, len(order), batch_size)], lengths)
    got = _padding(batches, lengths)
    expect(
        got <= best + 0.02,
        _(
            "padding share {got:.1f}%, expected at most {limit:.1f}% "
            "(sorting everything by length gives {best:.1f}%, random batches about 45%)"
        ).format(got=100 * got, limit=100 * (best + 0.02), best=100 * best),
    )


def _expect_shuffled(bucket_batches: Callable, lengths: np.ndarray, batch_size: int) -> None:
    first = bucket_batches(lengths.tolist(), batch_size, 0)
    maxima = [int(lengths[list(batch)].max()) for batch in first if len(batch)]
    expect(
        maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True),
        _(
            "the batches come sorted by length: shuffle their order, or every epoch starts with "
            "the shortest sequences and ends with the longest"
        ),
    )
    second = bucket_batches(lengths.tolist(), batch_size, 1)
    expect(
        [sorted(batch) for batch in first] != [sorted(batch) for batch in second],
        _("seeds 0 and 1 gave the same batches in the same order: use the seed"),
    )


# Exercise 3.3 ---------------------------------------------------------------------------------


def _sklearn_jaccard(first: str, second: str, k: int) -> float:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.metrics import jaccard_score

    vectorizer = CountVectorizer(analyzer="char", ngram_range=(k, k), lowercase=False, binary=True)
    matrix = vectorizer.fit_transform([first, second]).toarray()
    return float(jaccard_score(matrix[0], matrix[1], zero_division=1.0))


def check_jaccard(jaccard_shingles: Callable[[str, str, int], float]) -> ExerciseResult:
    """Exercise 3.3: ``jaccard_shingles(first, second, k)``.

    The Jaccard similarity of the sets of character ``k``-grams of two strings (taken as they
    are, no normalization), a float; 1.0 when both sets are empty. Compared with scikit-learn's
    ``jaccard_score`` on ``CountVectorizer(analyzer="char")`` presence vectors.
    """
    pairs = [
        ("the cat sat on the mat", "the cat sat on a mat", 3),
        ("the cat sat on the mat", "the cat sat on the mat", 5),
        ("abcdef", "uvwxyz", 2),
        ("banana", "bandana", 2),
        ("aaaa", "aaaaaaaa", 2),
        ("Night", "night", 3),
    ]
    cases = [
        Case(
            _("{first} and {second}, k={k}").format(first=repr(first), second=repr(second), k=k),
            lambda first=first, second=second, k=k: _expect_jaccard(
                jaccard_shingles, first, second, k, _sklearn_jaccard(first, second, k)
            ),
        )
        for first, second, k in pairs
    ]
    cases.append(
        Case(
            _("two texts shorter than k (no shingles at all)"),
            lambda: _expect_jaccard(jaccard_shingles, "ab", "cd", 3, 1.0),
        )
    )
    return check_exercise("3.3", _("Jaccard similarity of shingles"), cases)


def _expect_jaccard(function: Callable, first: str, second: str, k: int, expected: float) -> None:
    what = f"jaccard_shingles({first!r}, {second!r}, {k})"
    result = function(first, second, k)
    expect_type(result, float, what)
    expect_close(result, expected, what, atol=1e-9)


# Exercise 3.4 ---------------------------------------------------------------------------------


def _padded_share(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Padding share from ``pad_sequence``: each batch padded to its longest row, pads counted."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    pads = positions = 0
    for batch in batches:
        rows = [torch.ones(int(lengths[index])) for index in batch]
        padded = pad_sequence(rows, batch_first=True)
        positions += padded.numel()
        pads += int((padded == 0).sum())
    return pads / positions


def check_padding_ratio(padding_ratio: Callable[[Sequence, Sequence], float]) -> ExerciseResult:
    """Exercise 3.4 (find the bug): ``padding_ratio(batches, lengths)``.

    ``batches`` is a list of lists of row indices, ``lengths`` the length of every row; the
    answer is the share of padded positions when every batch is padded to ITS longest row
    (compared with what ``torch.nn.utils.rnn.pad_sequence`` pads). The chapter's
    ``buggy_padding_ratio`` pads every batch to the longest row of the whole data set.
    """
    rng = np.random.default_rng(3)
    lengths = rng.integers(2, 40, 300)
    sorted_order = np.argsort(lengths, kind="stable")
    bucketed = [sorted_order[i : i + 16].tolist() for i in range(0, 300, 16)]
    random_order = rng.permutation(300)
    shuffled = [random_order[i : i + 16].tolist() for i in range(0, 300, 16)]
    cases = [
        _padding_case(padding_ratio, _("one batch of three rows"), [[0, 1, 2]], [3, 5, 4]),
        _padding_case(padding_ratio, _("rows of equal length"), [[0, 1], [2, 3]], [6, 6, 6, 6]),
        _padding_case(
            padding_ratio, _("random batches of 16 over 300 rows"), shuffled, lengths.tolist()
        ),
        _padding_case(
            padding_ratio, _("a row in a batch of its own"), [[0, 2], [1]], [7, 30, 5], bug=True
        ),
        _padding_case(
            padding_ratio,
            _("bucketed batches of 16 over 300 rows"),
            bucketed,
            lengths.tolist(),
            bug=True,
        ),
        _padding_case(
            padding_ratio,
            _("lengths as a NumPy array, indices in any order"),
            [[4, 0], [3, 1, 2]],
            np.array([2, 9, 8, 9, 5]),
            bug=True,
        ),
        Case(
            _("the arguments are left unchanged"),
            lambda: _expect_arguments_kept(padding_ratio, shuffled, lengths.tolist()),
        ),
    ]
    return check_exercise("3.4", _("the padding share, bug fixed"), cases)


def _padding_case(
    padding_ratio: Callable, description: str, batches, lengths, *, bug: bool = False
) -> Case:
    def run() -> None:
        expected = _padded_share(batches, lengths)
        got = padding_ratio([list(batch) for batch in batches], lengths)
        what = _("padding_ratio({batches} batches, lengths of {rows} rows)").format(
            batches=len(batches), rows=len(lengths)
        )
        expect_type(got, (float, np.floating), what)
        longest = int(max(lengths))
        as_if_global = 1.0 - sum(int(lengths[i]) for b in batches for i in b) / (
            longest * sum(len(batch) for batch in batches)
        )
        if bug and abs(float(got) - as_if_global) < 1e-9:
            raise AssertionError(
                _(
                    "{what}: still has the bug: {got:.1f}% padding where the batches "
                    "need {expected:.1f}%: short batches are counted as padded further than "
                    "their own rows"
                ).format(what=what, got=100 * float(got), expected=100 * expected)
            )
        expect_close(float(got), expected, what)

    return Case(description, run)


def _expect_arguments_kept(padding_ratio: Callable, batches, lengths) -> None:
    batches_copy, lengths_copy = [list(batch) for batch in batches], list(lengths)
    padding_ratio(batches_copy, lengths_copy)
    expect(
        batches_copy == [list(batch) for batch in batches] and lengths_copy == list(lengths),
        _("padding_ratio changed the batches or the lengths it was given; expected them unchanged"),
    )
