"""Chapter 6's exercise checks: right answers pass, typical mistakes fail with a useful message.

The reference solutions live here, not in the package, so that a learner reading
``handbook.exercises.ch06`` finds the checks but not the answers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from exercise_harness import (  # noqa: F401  (collected by pytest in this module)
    test_a_stub_reads_as_not_done,
    test_a_typical_mistake_fails_with_a_message_saying_what_was_expected,
    test_the_reference_solution_passes_every_case,
)

from handbook import config
from handbook.exercises import ch06
from handbook.exercises.checks import ExerciseFailed

pytestmark = pytest.mark.usefixtures("one_thread")


def stub(*arguments: object) -> object:
    """What the student edition holds before the learner starts."""
    raise NotImplementedError("Exercise 6.x: not written yet")


# Exercise 6.1 ---------------------------------------------------------------------------------


def lstm_cell_step(inputs, hidden, cell, weight_ih, weight_hh, bias_ih, bias_hh):
    gates = inputs @ weight_ih.T + bias_ih + hidden @ weight_hh.T + bias_hh
    i, f, g, o = gates.chunk(4, dim=1)
    new_cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(new_cell), new_cell


def lstm_gates_in_keras_order(inputs, hidden, cell, weight_ih, weight_hh, bias_ih, bias_hh):
    gates = inputs @ weight_ih.T + bias_ih + hidden @ weight_hh.T + bias_hh
    i, f, o, g = gates.chunk(4, dim=1)  # i, f, o, g: another library's layout, not torch's
    new_cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(new_cell), new_cell


def lstm_without_forget_gate(inputs, hidden, cell, weight_ih, weight_hh, bias_ih, bias_hh):
    gates = inputs @ weight_ih.T + bias_ih + hidden @ weight_hh.T + bias_hh
    i, _, g, o = gates.chunk(4, dim=1)
    new_cell = cell + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(new_cell), new_cell


def lstm_hidden_from_old_cell(inputs, hidden, cell, weight_ih, weight_hh, bias_ih, bias_hh):
    gates = inputs @ weight_ih.T + bias_ih + hidden @ weight_hh.T + bias_hh
    i, f, g, o = gates.chunk(4, dim=1)
    new_cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(cell), new_cell


def lstm_one_bias_only(inputs, hidden, cell, weight_ih, weight_hh, bias_ih, bias_hh):
    return lstm_cell_step(inputs, hidden, cell, weight_ih, weight_hh, bias_ih, 0 * bias_hh)


def lstm_returns_cell_first(inputs, hidden, cell, weight_ih, weight_hh, bias_ih, bias_hh):
    new_hidden, new_cell = lstm_cell_step(
        inputs, hidden, cell, weight_ih, weight_hh, bias_ih, bias_hh
    )
    return new_cell, new_hidden


def lstm_updating_in_place(inputs, hidden, cell, weight_ih, weight_hh, bias_ih, bias_hh):
    new_hidden, new_cell = lstm_cell_step(
        inputs, hidden, cell, weight_ih, weight_hh, bias_ih, bias_hh
    )
    hidden.copy_(new_hidden)
    cell.copy_(new_cell)
    return hidden, cell


def lstm_in_float32(inputs, hidden, cell, weight_ih, weight_hh, bias_ih, bias_hh):
    arguments = (inputs, hidden, cell, weight_ih, weight_hh, bias_ih, bias_hh)
    return lstm_cell_step(*(argument.float() for argument in arguments))


# Exercise 6.2 ---------------------------------------------------------------------------------


def threshold_for_false_positive_rate(labels, scores, budget):
    order = np.argsort(-scores, kind="stable")
    ranked, negative = scores[order], labels[order] == 0
    allowed = budget * negative.sum()
    best = np.inf
    for value in np.unique(ranked)[::-1]:
        if negative[ranked >= value].sum() > allowed:
            break
        best = value
    return float(best)


def threshold_strictly_above(labels, scores, budget):
    """Alerts on score > t instead of score >= t: returns the next score below."""
    negatives = np.sort(scores[labels == 0])[::-1]
    allowed = int(np.floor(budget * len(negatives) + 1e-9))
    return float(negatives[allowed]) if allowed < len(negatives) else float(scores.min()) - 1


def threshold_budget_over_all_users(labels, scores, budget):
    best = np.inf
    for value in np.unique(scores)[::-1]:
        if ((scores >= value) & (labels == 0)).sum() > budget * len(labels):
            break
        best = value
    return float(best)


def threshold_as_quantile_of_negatives(labels, scores, budget):
    return float(np.quantile(scores[labels == 0], 1 - budget))


def threshold_highest_within_budget(labels, scores, budget):
    return float(np.max(scores))


def threshold_sorting_in_place(labels, scores, budget):
    result = threshold_for_false_positive_rate(labels, scores, budget)
    scores.sort()
    return result


# Exercise 6.3 ---------------------------------------------------------------------------------


def late_fusion(text_probabilities, image_probabilities, prior):
    fused = text_probabilities * image_probabilities / prior
    return fused / fused.sum(axis=1, keepdims=True)


def fusion_by_averaging(text_probabilities, image_probabilities, prior):
    return (text_probabilities + image_probabilities) / 2


def fusion_without_prior(text_probabilities, image_probabilities, prior):
    fused = text_probabilities * image_probabilities
    return fused / fused.sum(axis=1, keepdims=True)


def fusion_times_prior(text_probabilities, image_probabilities, prior):
    fused = text_probabilities * image_probabilities * prior
    return fused / fused.sum(axis=1, keepdims=True)


def fusion_not_normalized(text_probabilities, image_probabilities, prior):
    return text_probabilities * image_probabilities / prior


def fusion_normalized_by_column(text_probabilities, image_probabilities, prior):
    fused = text_probabilities * image_probabilities / prior
    return fused / fused.sum(axis=0, keepdims=True)


def fusion_in_place(text_probabilities, image_probabilities, prior):
    text_probabilities *= image_probabilities / prior
    text_probabilities /= text_probabilities.sum(axis=1, keepdims=True)
    return text_probabilities


# Exercise 6.4 ---------------------------------------------------------------------------------


def recall_at_alerts(labels, scores, alerts):
    top = np.argsort(scores)[::-1][: max(alerts, 0)]
    return float(labels[top].sum() / labels.sum())


def precision_at_alerts(labels, scores, alerts):
    top = np.argsort(scores)[::-1][:alerts]
    return float(labels[top].mean()) if alerts else 0.0


def recall_of_the_lowest_scores(labels, scores, alerts):
    return float(labels[np.argsort(scores)[:alerts]].sum() / labels.sum())


def recall_counting_frauds(labels, scores, alerts):
    return float(labels[np.argsort(scores)[::-1][:alerts]].sum())


def recall_with_an_off_by_one(labels, scores, alerts):
    return recall_at_alerts(labels, scores, alerts + 1)


# The checks against them ----------------------------------------------------------------------

CHECKS = {
    "6.1": ch06.check_lstm_cell_step,
    "6.2": ch06.check_threshold_for_false_positive_rate,
    "6.3": ch06.check_late_fusion,
    "6.4": ch06.check_recall_at_alerts,
}
SOLUTIONS = {
    "6.1": lstm_cell_step,
    "6.2": threshold_for_false_positive_rate,
    "6.3": late_fusion,
    "6.4": recall_at_alerts,
}

MISTAKES = [
    ("6.1", lstm_gates_in_keras_order, "failed", "the new cell state: "),
    ("6.1", lstm_without_forget_gate, "failed", "a batch of 8, 6 inputs, 3 hidden units: "),
    ("6.1", lstm_hidden_from_old_cell, "failed", "the new hidden state: "),
    ("6.1", lstm_one_bias_only, "failed", "a batch of 3, 4 inputs, 5 hidden units: "),
    ("6.1", lstm_returns_cell_first, "failed", "the new cell state: "),
    ("6.1", lstm_updating_in_place, "failed", "lstm_cell_step modified hidden, cell"),
    ("6.1", lstm_in_float32, "failed", "expected float64 like the inputs, got float32"),
    ("6.2", threshold_strictly_above, "failed", "over the budget"),
    ("6.2", threshold_budget_over_all_users, "failed", "400 users in random order, budget 0.2"),
    ("6.2", threshold_as_quantile_of_negatives, "failed", "ten users, budget 0.25: "),
    ("6.2", threshold_highest_within_budget, "failed", "(the lowest threshold within budget)"),
    ("6.2", threshold_sorting_in_place, "failed", "(sorted in place?)"),
    ("6.3", fusion_by_averaging, "failed", "two confident models that disagree"),
    ("6.3", fusion_without_prior, "failed", "five classes, the prior of the chapter's diagnoses"),
    ("6.3", fusion_times_prior, "failed", "a skewed prior (0.7, 0.2, 0.1)"),
    ("6.3", fusion_not_normalized, "failed", "(a probability table's rows sum to 1)"),
    ("6.3", fusion_normalized_by_column, "failed", "the sum of each row"),
    ("6.3", fusion_in_place, "failed", "the arrays passed to late_fusion were modified"),
    ("6.4", precision_at_alerts, "failed", "the share of the alerts that are frauds (precision)"),
    ("6.4", recall_of_the_lowest_scores, "failed", "8 users, 3 alerts: "),
    ("6.4", recall_counting_frauds, "failed", "300 users in random order, 60 alerts: "),
    ("6.4", recall_with_an_off_by_one, "failed", "no alert at all (alerts=0)"),
]


def test_strict_mode_turns_a_wrong_answer_into_an_exception(monkeypatch) -> None:
    monkeypatch.setenv(config.STRICT_EXERCISES_ENV, "1")

    assert ch06.check_late_fusion(late_fusion).status == "passed"
    with pytest.raises(ExerciseFailed, match=r"Exercise 6.3 \(late fusion\): \d of 7 checks"):
        ch06.check_late_fusion(fusion_without_prior)


def test_a_forgetting_free_cell_passes_only_where_there_is_nothing_to_forget() -> None:
    result = ch06.check_lstm_cell_step(lstm_without_forget_gate)

    failing = " ".join(result.messages)
    assert "a zero state (the first step of a sequence)" not in failing
    assert result.passed >= 1


# Exercise 6.5 (derive) ------------------------------------------------------------------------


def test_the_alert_precision_is_bayes_rule_by_counting_users():
    users = 1_000_000
    frauds = users * ch06.DERIVATION_FRAUD_RATE
    true_alerts = ch06.DERIVATION_RECALL * frauds
    false_alerts = ch06.DERIVATION_FALSE_POSITIVE_RATE * (users - frauds)
    expected = true_alerts / (true_alerts + false_alerts)
    assert ch06.alert_precision(0.8, 0.01, 0.005) == pytest.approx(expected)


@pytest.mark.parametrize("answer", [0.287, 0.29, 0.2857])  # 0.2857: 1 - fraud rate taken as 1
def test_the_alert_precision_derivation_passes_rounded_answers(answer):
    result = ch06.check_alert_precision_derivation(answer)
    assert (result.id, result.status, result.kind) == ("6.5", "passed", "derivation")


@pytest.mark.parametrize(
    ("answer", "slip"),
    [
        (0.8, "the recall"),
        (0.99, "1 - the false-positive rate"),
        (0.899, "synthetic shop's 10% fraud rate"),
        (0.334, "leaves out the recall"),
        (28.7, "as a percentage"),
    ],
)
def test_a_typical_slip_in_the_alert_precision_fails_and_is_named(answer, slip):
    result = ch06.check_alert_precision_derivation(answer)
    assert result.status == "failed"
    assert "you derived" in result.messages[0] and "the formula gives 0.2867" in result.messages[0]
    assert slip in result.messages[0], result.messages


def test_an_unrelated_wrong_precision_fails_with_the_counting_and_no_slip():
    result = ch06.check_alert_precision_derivation(0.5)
    assert result.status == "failed"
    assert "Your number is" not in result.messages[0]
    assert "Precision = true alerts / all alerts" in result.messages[0]


@pytest.mark.parametrize("stub_value", [None, ...])
def test_the_alert_precision_stub_reads_as_not_done(stub_value):
    assert ch06.check_alert_precision_derivation(stub_value).status == "not done"


# Exercise 6.6 (open investigation) ----------------------------------------------------------


def test_a_written_transfer_investigation_is_submitted_with_its_rubric_printed(capsys):
    answer = " ".join(["a sentence of the learner's own investigation"] * 8)  # 48 words
    result = ch06.check_transfer_investigation(answer)
    assert (result.id, result.status, result.kind) == ("6.6", "submitted", "open")
    printed = capsys.readouterr().out
    assert "submitted, see rubric" in printed
    for criterion in ch06.TRANSFER_INVESTIGATION_RUBRIC:
        assert criterion in result.messages[0] and criterion in printed


@pytest.mark.parametrize("answer", [None, "", "   ", "too short to be an answer to this question"])
def test_an_empty_or_short_transfer_investigation_reads_as_not_done(answer):
    result = ch06.check_transfer_investigation(answer)
    assert result.status == "not done", result.messages


def test_a_transfer_investigation_that_is_not_text_fails_saying_so():
    result = ch06.check_transfer_investigation(42)
    assert result.status == "failed" and "a string in quotes" in result.messages[0]
