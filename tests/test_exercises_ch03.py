"""Chapter 3's exercise checks: right answers pass, typical mistakes fail with a useful message.

The reference solutions live here, not in the package, so that a learner reading
``handbook.exercises.ch03`` finds the checks but not the answers.
"""

from __future__ import annotations

import hashlib
import string

import numpy as np
import pytest
from exercise_harness import (  # noqa: F401  (collected by pytest in this module)
    test_a_stub_reads_as_not_done,
    test_a_typical_mistake_fails_with_a_message_saying_what_was_expected,
    test_the_reference_solution_passes_every_case,
)

from handbook import config
from handbook.exercises import ch03
from handbook.exercises.checks import ExerciseFailed


def stub(*arguments: object) -> object:
    raise NotImplementedError("Exercise 3.x: not written yet")


# Exercise 3.1 ---------------------------------------------------------------------------------

_TABLE = str.maketrans("", "", string.punctuation)


def deduplicate(texts):
    seen, kept = set(), []
    for index, text in enumerate(texts):
        key = hashlib.sha1(" ".join(text.lower().translate(_TABLE).split()).encode()).hexdigest()
        if key not in seen:
            seen.add(key)
            kept.append(index)
    return kept


def deduplicate_without_normalizing(texts):
    return [i for i, text in enumerate(texts) if text not in texts[:i]]


def deduplicate_keeping_punctuation(texts):
    keys = [" ".join(text.lower().split()) for text in texts]
    return [i for i, key in enumerate(keys) if key not in keys[:i]]


def deduplicate_keeping_the_last(texts):
    keys = [" ".join(text.lower().translate(_TABLE).split()) for text in texts]
    return [i for i, key in enumerate(keys) if key not in keys[i + 1 :]]


def deduplicate_returning_a_set(texts):
    return set(deduplicate(texts))


# Exercise 3.2 ---------------------------------------------------------------------------------


def bucket_batches(lengths, batch_size, seed):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    order = order[np.argsort(np.asarray(lengths)[order], kind="stable")] if len(lengths) else order
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def random_batching(lengths, batch_size, seed):
    order = np.random.default_rng(seed).permutation(len(lengths)).tolist()
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def sorted_unshuffled(lengths, batch_size, seed):
    order = np.argsort(np.asarray(lengths), kind="stable").tolist()
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def dropping_the_last_batch(lengths, batch_size, seed):
    return [
        batch for batch in bucket_batches(lengths, batch_size, seed) if len(batch) == batch_size
    ]


# Exercise 3.3 ---------------------------------------------------------------------------------


def jaccard_shingles(first, second, k):
    a = {first[i : i + k] for i in range(len(first) - k + 1)}
    b = {second[i : i + k] for i in range(len(second) - k + 1)}
    return 1.0 if not a | b else len(a & b) / len(a | b)


def jaccard_of_words(first, second, k):
    a, b = set(first.split()), set(second.split())
    return len(a & b) / len(a | b)


def jaccard_over_the_smaller_set(first, second, k):
    a = {first[i : i + k] for i in range(len(first) - k + 1)}
    b = {second[i : i + k] for i in range(len(second) - k + 1)}
    return 1.0 if not a | b else len(a & b) / min(len(a), len(b))


def jaccard_of_lists(first, second, k):
    a = [first[i : i + k] for i in range(len(first) - k + 1)]
    b = [second[i : i + k] for i in range(len(second) - k + 1)]
    union = len(a) + len(b) - len(set(a) & set(b))
    return 1.0 if union == 0 else len(set(a) & set(b)) / union


def jaccard_empty_is_zero(first, second, k):
    a = {first[i : i + k] for i in range(len(first) - k + 1)}
    b = {second[i : i + k] for i in range(len(second) - k + 1)}
    return 0.0 if not a | b else len(a & b) / len(a | b)


# Exercise 3.4 (find the bug) ------------------------------------------------------------------


def buggy_padding_ratio(batches, lengths):
    """The chapter's buggy version: every batch padded to the data set's longest row."""
    longest = max(lengths)
    padded = sum(len(batch) * longest for batch in batches)
    real = sum(lengths[index] for batch in batches for index in batch)
    return (padded - real) / padded


def padding_ratio(batches, lengths):
    padded = sum(len(batch) * max(lengths[index] for index in batch) for batch in batches)
    real = sum(lengths[index] for batch in batches for index in batch)
    return (padded - real) / padded


def padding_over_real_tokens(batches, lengths):
    padded = sum(len(batch) * max(lengths[index] for index in batch) for batch in batches)
    real = sum(lengths[index] for batch in batches for index in batch)
    return (padded - real) / real


def padding_from_the_first_row(batches, lengths):
    padded = sum(len(batch) * lengths[batch[0]] for batch in batches)
    real = sum(lengths[index] for batch in batches for index in batch)
    return (padded - real) / padded


def padding_sorting_the_batches(batches, lengths):
    for batch in batches:
        batch.sort()
    return padding_ratio(batches, lengths)


CHECKS = {
    "3.1": ch03.check_deduplicate,
    "3.2": ch03.check_bucket_batches,
    "3.3": ch03.check_jaccard,
    "3.4": ch03.check_padding_ratio,
}
SOLUTIONS = {
    "3.1": deduplicate,
    "3.2": bucket_batches,
    "3.3": jaccard_shingles,
    "3.4": padding_ratio,
}


def test_strict_mode_turns_a_wrong_answer_into_an_exception(monkeypatch) -> None:
    monkeypatch.setenv(config.STRICT_EXERCISES_ENV, "1")
    assert ch03.check_jaccard(jaccard_shingles).status == "passed"
    with pytest.raises(ExerciseFailed, match="Exercise 3.3"):
        ch03.check_jaccard(jaccard_of_words)


MISTAKES = [
    ("3.1", deduplicate_without_normalizing, "duplicates that differ in case"),
    ("3.1", deduplicate_keeping_punctuation, "differ in punctuation and spacing"),
    ("3.1", deduplicate_keeping_the_last, "the same text twice"),
    ("3.1", deduplicate_returning_a_set, "expected a list, got set"),
    ("3.2", random_batching, "padding share"),
    ("3.2", sorted_unshuffled, "the batches come sorted by length"),
    ("3.2", dropping_the_last_batch, "exactly once"),
    ("3.3", jaccard_of_words, "'banana' and 'bandana', k=2"),
    ("3.3", jaccard_over_the_smaller_set, "'banana' and 'bandana', k=2"),
    ("3.3", jaccard_of_lists, "'aaaa' and 'aaaaaaaa', k=2"),
    ("3.3", jaccard_empty_is_zero, "two texts shorter than k"),
    ("3.4", buggy_padding_ratio, "still has the bug"),
    ("3.4", padding_over_real_tokens, "bucketed batches of 16 over 300 rows"),
    ("3.4", padding_from_the_first_row, "one batch of three rows: padding_ratio"),
    ("3.4", padding_sorting_the_batches, "changed the batches or the lengths"),
]


def test_the_bug_is_named_without_giving_the_fix() -> None:
    result = ch03.check_padding_ratio(buggy_padding_ratio)

    bug_lines = [line for line in result.messages if "still has the bug" in line]
    assert len(bug_lines) == 3, result.messages
    assert all("longest" not in line and "max" not in line for line in bug_lines)
