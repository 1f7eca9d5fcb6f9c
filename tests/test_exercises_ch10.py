"""Chapter 10's exercise checks: right answers pass, typical mistakes fail with a useful message.

The reference solutions live here, not in the package, so that a learner reading
``handbook.exercises.ch10`` finds the checks but not the answers.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from exercise_harness import (  # noqa: F401  (collected by pytest in this module)
    test_a_stub_reads_as_not_done,
    test_a_typical_mistake_fails_with_a_message_saying_what_was_expected,
    test_the_reference_solution_passes_every_case,
)

from handbook import config
from handbook.exercises import ch10
from handbook.exercises.checks import ExerciseFailed


def stub(*arguments: object) -> object:
    """What the student edition holds before the learner starts."""
    raise NotImplementedError("Exercise 10.x: not written yet")


# Exercise 10.1 --------------------------------------------------------------------------------


def best_run(runs, metric, higher_is_better):
    column = f"metrics.{metric}"
    usable = runs[(runs["status"] == "FINISHED") & runs[column].notna()]
    if usable.empty:
        return None
    position = usable[column].idxmax() if higher_is_better else usable[column].idxmin()
    return str(usable.loc[position, "run_id"])


def best_run_any_status(runs, metric, higher_is_better):
    column = f"metrics.{metric}"
    usable = runs[runs[column].notna()]
    if usable.empty:
        return None
    position = usable[column].idxmax() if higher_is_better else usable[column].idxmin()
    return str(usable.loc[position, "run_id"])


def best_run_always_highest(runs, metric, higher_is_better):
    return best_run(runs, metric, True)


def best_run_sorting_in_place(runs, metric, higher_is_better):
    runs.sort_values(f"metrics.{metric}", ascending=not higher_is_better, inplace=True)
    return best_run(runs, metric, higher_is_better)


def best_run_with_nan_first(runs, metric, higher_is_better):
    finished = runs[runs["status"] == "FINISHED"]
    ordered = finished.sort_values(
        f"metrics.{metric}", ascending=not higher_is_better, na_position="first"
    )
    return str(ordered["run_id"].iloc[0]) if len(ordered) else None


def best_run_as_row_number(runs, metric, higher_is_better):
    result = best_run(runs, metric, higher_is_better)
    return None if result is None else int(runs.index[runs["run_id"] == result][0])


# Exercise 10.2 --------------------------------------------------------------------------------


def shard_indices(n, world_size, rank, epoch, seed):
    generator = torch.Generator()
    generator.manual_seed(seed + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    total = -(-n // world_size) * world_size
    while len(order) < total:
        order += order[: total - len(order)]
    return order[rank:total:world_size]


def shard_contiguous(n, world_size, rank, epoch, seed):
    generator = torch.Generator().manual_seed(seed + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    size = -(-n // world_size)
    order += order[: size * world_size - n]
    return order[rank * size : (rank + 1) * size]


def shard_same_every_epoch(n, world_size, rank, epoch, seed):
    return shard_indices(n, world_size, rank, 0, seed)


def shard_without_padding(n, world_size, rank, epoch, seed):
    generator = torch.Generator().manual_seed(seed + epoch)
    return torch.randperm(n, generator=generator).tolist()[rank::world_size]


def shard_unshuffled(n, world_size, rank, epoch, seed):
    order = list(range(n))
    total = -(-n // world_size) * world_size
    order += order[: total - n]
    return order[rank:total:world_size]


# Exercise 10.3 --------------------------------------------------------------------------------


def _choices(task):
    return [
        choice
        for annotation in task.get("annotations", [])
        if not annotation.get("was_cancelled")
        for result in annotation.get("result", [])
        if result.get("from_name") == "topic" and result.get("type") == "choices"
        for choice in result["value"]["choices"]
    ]


def task_label(task, label_names):
    choices = _choices(task)
    if not choices:
        return None
    counts = Counter(choices)
    top = max(counts.values())
    label = min(
        (label_names.index(name) for name, count in counts.items() if count == top),
    )
    return label, top / len(choices)


def task_label_counting_cancelled(task, label_names):
    choices = [
        choice
        for annotation in task.get("annotations", [])
        for result in annotation.get("result", [])
        if result.get("from_name") == "topic"
        for choice in result["value"]["choices"]
    ]
    if not choices:
        return None
    name, count = Counter(choices).most_common(1)[0]
    return label_names.index(name), count / len(choices)


def task_label_by_name(task, label_names):
    result = task_label(task, label_names)
    return None if result is None else (label_names[result[0]], result[1])


def task_label_with_count(task, label_names):
    result = task_label(task, label_names)
    return None if result is None else (result[0], result[1] * len(_choices(task)))


def task_label_first_seen_on_tie(task, label_names):
    choices = _choices(task)
    if not choices:
        return None
    name, count = Counter(choices).most_common(1)[0]
    return label_names.index(name), count / len(choices)


def task_label_every_control(task, label_names):
    choices = [
        choice
        for annotation in task.get("annotations", [])
        if not annotation.get("was_cancelled")
        for result in annotation.get("result", [])
        for choice in result["value"]["choices"]
        if choice in label_names
    ]
    if not choices:
        return None
    counts = Counter(choices)
    top = max(counts.values())
    label = min(label_names.index(name) for name, count in counts.items() if count == top)
    return label, top / len(choices)


def task_label_popping(task, label_names):
    result = task_label(task, label_names)
    task["annotations"] = [a for a in task["annotations"] if not a.get("was_cancelled")]
    return result


# The checks against them ----------------------------------------------------------------------

CHECKS = {
    "10.1": ch10.check_best_run,
    "10.2": ch10.check_shard_indices,
    "10.3": ch10.check_task_label,
}
SOLUTIONS = {"10.1": best_run, "10.2": shard_indices, "10.3": task_label}

MISTAKES = [
    ("10.1", best_run_any_status, "failed", "a failed and a running run score better: "),
    ("10.1", best_run_always_highest, "failed", "three finished runs, lowest loss: "),
    ("10.1", best_run_sorting_in_place, "failed", "(sorted in place?)"),
    ("10.1", best_run_with_nan_first, "failed", "a run that never logged the metric (NaN): "),
    ("10.1", best_run_as_row_number, "failed", "expected a str, got int"),
    (
        "10.2",
        shard_contiguous,
        "failed",
        "8 examples, 2 processes, rank 0: shard_indices(8, 2, rank=0",
    ),
    ("10.2", shard_same_every_epoch, "failed", "a later epoch reshuffles (epoch 5): "),
    ("10.2", shard_without_padding, "failed", "expected 3 indices (ceil(n / world_size)), got 2"),
    (
        "10.2",
        shard_unshuffled,
        "failed",
        "8 examples, 2 processes, rank 1: shard_indices(8, 2, rank=1",
    ),
    ("10.3", task_label_counting_cancelled, "failed", "a cancelled annotation is ignored: "),
    ("10.3", task_label_by_name, "failed", "expected the label's index in label_names"),
    ("10.3", task_label_with_count, "failed", "expected the agreement as a fraction"),
    ("10.3", task_label_first_seen_on_tie, "failed", "a tie goes to the class listed first: "),
    ("10.3", task_label_every_control, "failed", "another control's results are ignored: "),
    ("10.3", task_label_popping, "failed", "the task passed in was modified"),
]


def test_strict_mode_turns_a_wrong_answer_into_an_exception(monkeypatch) -> None:
    monkeypatch.setenv(config.STRICT_EXERCISES_ENV, "1")

    assert ch10.check_shard_indices(shard_indices).status == "passed"
    with pytest.raises(ExerciseFailed, match=r"Exercise 10.2 \(the shard of one process\)"):
        ch10.check_shard_indices(shard_unshuffled)


# Exercise 10.4 (derive) -----------------------------------------------------------------------


def test_repeated_examples_are_measured_on_the_sampler() -> None:
    assert ch10.repeated_per_epoch(1437, 4) == 3
    assert ch10.repeated_per_epoch(1437, 2) == 1
    assert ch10.repeated_per_epoch(1436, 4) == 0


def test_the_repeated_examples_derivation_passes_only_when_exact() -> None:
    result = ch10.check_repeated_examples_derivation(3)
    assert (result.id, result.status, result.kind) == ("10.4", "passed", "derivation")
    assert "ceil(1437 / 4) = 360" in result.messages[0]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (1, "1437 mod 4, the examples left over"),
        (1, "the chapter's two processes"),
        (0, "if the data divided evenly"),
        (4, "you derived 4 examples, the formula gives 3 examples"),
    ],
)
def test_a_wrong_repeated_examples_derivation_fails_saying_why(answer, message) -> None:
    result = ch10.check_repeated_examples_derivation(answer)
    assert result.status == "failed"
    assert message in result.messages[0], result.messages


@pytest.mark.parametrize("stub_value", [None, ...])
def test_the_repeated_examples_stub_reads_as_not_done(stub_value) -> None:
    assert ch10.check_repeated_examples_derivation(stub_value).status == "not done"
