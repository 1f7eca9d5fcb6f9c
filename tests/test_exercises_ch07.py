"""Chapter 7's exercise checks: right answers pass, typical mistakes fail with a useful message.

The reference solutions live here, not in the package, so that a learner reading
``handbook.exercises.ch07`` finds the checks but not the answers.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from exercise_harness import (  # noqa: F401  (collected by pytest in this module)
    test_a_stub_reads_as_not_done,
    test_a_typical_mistake_fails_with_a_message_saying_what_was_expected,
    test_the_reference_solution_passes_every_case,
)
from torch.nn import functional as F

from handbook import config
from handbook.exercises import ch07
from handbook.exercises.checks import ExerciseFailed

pytestmark = pytest.mark.usefixtures("one_thread")


def stub(*arguments: object) -> object:
    """What the student edition holds before the learner starts."""
    raise NotImplementedError("Exercise 7.x: not written yet")


# Exercise 7.1 ---------------------------------------------------------------------------------


def _example_gradients(model, inputs, targets):
    """One tuple of parameter gradients of log p(target | input) per example."""
    parameters = list(model.parameters())
    for example, target in zip(inputs, targets, strict=True):
        log_probability = F.log_softmax(model(example[None]), dim=-1)[0, target]
        yield torch.autograd.grad(log_probability, parameters)


def diagonal_fisher(model, inputs, targets):
    names = [name for name, _ in model.named_parameters()]
    squares = [torch.zeros_like(parameter) for parameter in model.parameters()]
    for gradients in _example_gradients(model, inputs, targets):
        for total, gradient in zip(squares, gradients, strict=True):
            total += gradient**2
    return {name: total / len(inputs) for name, total in zip(names, squares, strict=True)}


def fisher_from_batch_gradient(model, inputs, targets):
    loss = F.cross_entropy(model(inputs), targets)
    gradients = torch.autograd.grad(loss, list(model.parameters()))
    names = [name for name, _ in model.named_parameters()]
    return {name: gradient**2 for name, gradient in zip(names, gradients, strict=True)}


def fisher_summed(model, inputs, targets):
    return {
        name: value * len(inputs) for name, value in diagonal_fisher(model, inputs, targets).items()
    }


def fisher_without_square(model, inputs, targets):
    names = [name for name, _ in model.named_parameters()]
    totals = [torch.zeros_like(parameter) for parameter in model.parameters()]
    for gradients in _example_gradients(model, inputs, targets):
        for total, gradient in zip(totals, gradients, strict=True):
            total += gradient
    return {name: total / len(inputs) for name, total in zip(names, totals, strict=True)}


def fisher_of_predicted_labels(model, inputs, targets):
    with torch.no_grad():
        predicted = model(inputs).argmax(dim=-1)
    return diagonal_fisher(model, inputs, predicted)


def fisher_as_list(model, inputs, targets):
    return list(diagonal_fisher(model, inputs, targets).values())


def fisher_with_a_training_step(model, inputs, targets):
    result = diagonal_fisher(model, inputs, targets)
    F.cross_entropy(model(inputs), targets).backward()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter -= 0.1 * parameter.grad
            parameter.grad = None
    return result


# Exercise 7.2 ---------------------------------------------------------------------------------


def reservoir_sample(stream, capacity, rng):
    kept = []
    for seen, item in enumerate(stream, start=1):
        if len(kept) < capacity:
            kept.append(item)
        else:
            slot = rng.integers(seen)
            if slot < capacity:
                kept[slot] = item
    return kept


def reservoir_first_items(stream, capacity, rng):
    return list(itertools.islice(stream, capacity))


def reservoir_last_items(stream, capacity, rng):
    items = list(stream)
    return items[len(items) - capacity :] if capacity else []


def reservoir_off_by_one(stream, capacity, rng):
    kept = []
    for index, item in enumerate(stream):
        if index < capacity:
            kept.append(item)
        else:
            slot = rng.integers(index)  # should be index + 1 items to choose from
            if slot < capacity:
                kept[slot] = item
    return kept


def reservoir_needing_the_length(stream, capacity, rng):
    chosen = set(rng.choice(len(stream), capacity, replace=False).tolist())
    return [item for index, item in enumerate(stream) if index in chosen]


def reservoir_with_replacement(stream, capacity, rng):
    items = list(stream)
    if not items:
        return []
    return [items[index] for index in rng.integers(len(items), size=min(capacity, len(items)))]


def reservoir_replace_with_fixed_chance(stream, capacity, rng):
    kept = []
    for item in stream:
        if len(kept) < capacity:
            kept.append(item)
        elif rng.random() < 0.5:
            kept[rng.integers(capacity)] = item
    return kept


# Exercise 7.3 ---------------------------------------------------------------------------------


def average_forgetting(accuracy):
    periods = len(accuracy)
    if periods == 1:
        return 0.0
    drops = [
        max(accuracy[row, column] for row in range(column, periods - 1))
        - accuracy[periods - 1, column]
        for column in range(periods - 1)
    ]
    return float(sum(drops) / len(drops))


def forgetting_from_the_diagonal(accuracy):
    periods = len(accuracy)
    if periods == 1:
        return 0.0
    return float(np.mean([accuracy[j, j] - accuracy[-1, j] for j in range(periods - 1)]))


def forgetting_over_every_period(accuracy):
    periods = len(accuracy)
    return average_forgetting(accuracy) * (periods - 1) / periods


def forgetting_reversed(accuracy):
    return -average_forgetting(accuracy)


def forgetting_in_percent(accuracy):
    return 100 * average_forgetting(accuracy)


def forgetting_with_the_whole_column(accuracy):
    periods = len(accuracy)
    if periods == 1:
        return 0.0
    return float(np.mean([accuracy[:, j].max() - accuracy[-1, j] for j in range(periods - 1)]))


def forgetting_with_the_final_row(accuracy):
    periods = len(accuracy)
    if periods == 1:
        return 0.0
    return float(np.mean([accuracy[j:, j].max() - accuracy[-1, j] for j in range(periods - 1)]))


def forgetting_in_place(accuracy):
    accuracy[np.triu_indices(len(accuracy), 1)] = 0.0
    return average_forgetting(accuracy)


def forgetting_without_single_period_case(accuracy):
    periods = len(accuracy)
    drops = [accuracy[j : periods - 1, j].max() - accuracy[-1, j] for j in range(periods - 1)]
    return float(np.mean(drops)) if drops else float("nan")


# The checks against them ----------------------------------------------------------------------

CHECKS = {
    "7.1": ch07.check_diagonal_fisher,
    "7.2": ch07.check_reservoir_sample,
    "7.3": ch07.check_average_forgetting,
}
SOLUTIONS = {
    "7.1": diagonal_fisher,
    "7.2": reservoir_sample,
    "7.3": average_forgetting,
}

MISTAKES = [
    ("7.1", fisher_from_batch_gradient, "failed", "values differ, the first at index"),
    ("7.1", fisher_summed, "failed", "(a sum?)"),
    ("7.1", fisher_without_square, "failed", "expected non-negative values (a mean of squares)"),
    ("7.1", fisher_of_predicted_labels, "failed", "a tanh network (6 -> 4 -> 3), 9 examples: "),
    ("7.1", fisher_as_list, "failed", "expected a dict, got list"),
    ("7.1", fisher_with_a_training_step, "failed", "must not train the model"),
    ("7.2", reservoir_first_items, "failed", "pairs of a 6-item stream are not equally likely"),
    ("7.2", reservoir_last_items, "failed", "items are not kept equally often"),
    ("7.2", reservoir_off_by_one, "pairs of a 6-item stream are not equally likely"),
    ("7.2", reservoir_needing_the_length, "error", "raised TypeError"),
    ("7.2", reservoir_with_replacement, "failed", "are kept more than once"),
    ("7.2", reservoir_replace_with_fixed_chance, "items are not kept equally often"),
    ("7.3", forgetting_from_the_diagonal, "failed", "the first peaks after the second period: "),
    ("7.3", forgetting_over_every_period, "failed", "two periods, the first drops from 0.9 to"),
    ("7.3", forgetting_reversed, "failed", "minus the final one, positive when accuracy was lost"),
    ("7.3", forgetting_in_percent, "failed", "(a percentage?)"),
    ("7.3", forgetting_with_the_whole_column, "failed", "four periods with NaN above the diag"),
    ("7.3", forgetting_with_the_final_row, "failed", "(negative forgetting): "),
    ("7.3", forgetting_in_place, "failed", "the matrix passed in was modified"),
    ("7.3", forgetting_without_single_period_case, "failed", "a single period: "),
]


def test_strict_mode_turns_a_wrong_answer_into_an_exception(monkeypatch) -> None:
    monkeypatch.setenv(config.STRICT_EXERCISES_ENV, "1")

    assert ch07.check_average_forgetting(average_forgetting).status == "passed"
    with pytest.raises(ExerciseFailed, match=r"Exercise 7.3 \(average forgetting\): 6 of 7"):
        ch07.check_average_forgetting(forgetting_in_place)


def test_the_uniformity_cases_pass_other_correct_samplers() -> None:
    """A sampler that reads the whole stream and draws a uniform subset is correct too (just
    not one pass in bounded memory): the statistical cases must accept it."""

    def sample_after_reading(stream, capacity, rng):
        items = list(stream)
        chosen = rng.choice(len(items), min(capacity, len(items)), replace=False)
        return [items[index] for index in chosen]

    assert ch07.check_reservoir_sample(sample_after_reading).status == "passed"


# Exercise 7.4 (derive) ------------------------------------------------------------------------


def test_the_replay_saving_derivation_passes_the_formula_and_its_rounding():
    for answer in (0.64, 0.643, 16 / 25):
        result = ch07.check_replay_saving_derivation(answer)
        assert (result.id, result.status, result.kind) == ("7.4", "passed", "derivation")


@pytest.mark.parametrize(
    ("answer", "slip"),
    [
        (0.72, "chapter's 10% replay"),
        (0.84, "counts only the replayed examples"),
        (0.8, "1 - f, the saving's limit"),
        (0.36, "share of retraining's compute, not the share it saves"),
        (0.55, "against the old data alone"),
        (64, "as a percentage"),
    ],
)
def test_a_typical_slip_in_the_replay_saving_fails_and_is_named(answer, slip):
    result = ch07.check_replay_saving_derivation(answer)
    assert result.status == "failed"
    assert "you derived" in result.messages[0] and "the formula gives 0.64" in result.messages[0]
    assert slip in result.messages[0], result.messages


def test_an_unrelated_wrong_saving_fails_with_the_formula_and_no_slip():
    result = ch07.check_replay_saving_derivation(0.5)
    assert result.status == "failed"
    assert "Your number is" not in result.messages[0]
    assert "1 - (1 + f r) / (1 + r)" in result.messages[0]


@pytest.mark.parametrize("stub_value", [None, ...])
def test_the_replay_saving_stub_reads_as_not_done(stub_value):
    assert ch07.check_replay_saving_derivation(stub_value).status == "not done"


def test_a_replay_saving_written_as_text_fails_saying_so():
    result = ch07.check_replay_saving_derivation("0.64")
    assert result.status == "failed" and "without quotes" in result.messages[0]


def test_the_slips_are_all_different_from_the_true_saving():
    expected = 1 - float(ch07.continual.replay_compute_share(4, 0.2))
    assert all(abs(slip - expected) > 0.02 for slip in ch07.replay_saving_slips())


# Exercise 7.5 (open investigation) ----------------------------------------------------------


def test_a_written_ewc_investigation_is_submitted_with_its_rubric_printed(capsys):
    answer = " ".join(["a sentence of the learner's own investigation"] * 8)  # 48 words
    result = ch07.check_ewc_investigation(answer)
    assert (result.id, result.status, result.kind) == ("7.5", "submitted", "open")
    printed = capsys.readouterr().out
    assert "submitted, see rubric" in printed
    for criterion in ch07.EWC_INVESTIGATION_RUBRIC:
        assert criterion in result.messages[0] and criterion in printed


@pytest.mark.parametrize("answer", [None, "", "   ", "too short to be an answer to this question"])
def test_an_empty_or_short_ewc_investigation_reads_as_not_done(answer):
    result = ch07.check_ewc_investigation(answer)
    assert result.status == "not done", result.messages


def test_a_ewc_investigation_that_is_not_text_fails_saying_so():
    result = ch07.check_ewc_investigation(42)
    assert result.status == "failed" and "a string in quotes" in result.messages[0]
