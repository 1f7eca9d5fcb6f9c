"""Chapter 9's exercise checks: right answers pass, typical mistakes fail with a useful message.

The reference solutions live here, not in the package, so that a learner reading
``handbook.exercises.ch09`` finds the checks but not the answers.
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
from torch.nn import functional as F

from handbook import config
from handbook.exercises import ch09
from handbook.exercises.checks import ExerciseFailed

pytestmark = pytest.mark.usefixtures("one_thread")


def stub(*arguments: object) -> object:
    """What the student edition holds before the learner starts."""
    raise NotImplementedError("Exercise 9.x: not written yet")


# Exercise 9.1 ---------------------------------------------------------------------------------


def demographic_parity_difference(predictions: np.ndarray, groups: np.ndarray) -> float:
    rates = [predictions[groups == group].mean() for group in np.unique(groups)]
    return float(max(rates) - min(rates))


def parity_signed(predictions: np.ndarray, groups: np.ndarray) -> float:
    if len(np.unique(groups)) < 2:
        return 0.0
    first, second = np.unique(groups)[:2]
    return float(predictions[groups == first].mean() - predictions[groups == second].mean())


def parity_first_two_groups(predictions: np.ndarray, groups: np.ndarray) -> float:
    return abs(parity_signed(predictions, groups))


def parity_in_percent(predictions: np.ndarray, groups: np.ndarray) -> float:
    return 100 * demographic_parity_difference(predictions, groups)


def parity_ratio(predictions: np.ndarray, groups: np.ndarray) -> float:
    rates = [predictions[groups == group].mean() for group in np.unique(groups)]
    return float(min(rates) / max(rates)) if max(rates) else 1.0


def parity_against_overall(predictions: np.ndarray, groups: np.ndarray) -> float:
    rates = [predictions[groups == group].mean() for group in np.unique(groups)]
    return float(max(rates) - predictions.mean())


def parity_sorting_in_place(predictions: np.ndarray, groups: np.ndarray) -> float:
    result = demographic_parity_difference(predictions, groups)
    predictions.sort()
    return result


# Exercise 9.2 ---------------------------------------------------------------------------------


def reweighing_weights(labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    weights = np.zeros(len(labels))
    for group in np.unique(groups):
        for label in (0, 1):
            cell = (groups == group) & (labels == label)
            if cell.any():
                weights[cell] = (groups == group).mean() * (labels == label).mean() / cell.mean()
    return weights


def reweighing_inverted(labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    weights = reweighing_weights(labels, groups)
    return np.divide(1.0, weights, out=np.zeros_like(weights), where=weights > 0)


def reweighing_by_group_only(labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    sizes = {group: (groups == group).mean() for group in np.unique(groups)}
    return np.array([1.0 / (len(sizes) * sizes[group]) for group in groups])


def reweighing_as_list(labels: np.ndarray, groups: np.ndarray) -> list:
    return reweighing_weights(labels, groups).tolist()


# Exercise 9.3 ---------------------------------------------------------------------------------


def fgsm_step(model, images, labels, epsilon):
    images = images.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(images), labels)
    (gradient,) = torch.autograd.grad(loss, images)
    return (images + epsilon * gradient.sign()).clamp(0, 1).detach()


def fgsm_without_clamp(model, images, labels, epsilon):
    images = images.detach().clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(F.cross_entropy(model(images), labels), images)
    return (images + epsilon * gradient.sign()).detach()


def fgsm_descending(model, images, labels, epsilon):
    return fgsm_step(model, images, labels, -epsilon)


def fgsm_raw_gradient(model, images, labels, epsilon):
    images = images.detach().clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(F.cross_entropy(model(images), labels), images)
    return (images + epsilon * gradient / gradient.abs().max()).clamp(0, 1).detach()


def fgsm_not_detached(model, images, labels, epsilon):
    images = images.detach().clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(F.cross_entropy(model(images), labels), images)
    return (images + epsilon * gradient.sign()).clamp(0, 1)


def fgsm_in_place(model, images, labels, epsilon):
    images.requires_grad_(True)
    (gradient,) = torch.autograd.grad(F.cross_entropy(model(images), labels), images)
    images.requires_grad_(False)
    images += epsilon * gradient.sign()
    return images.clamp_(0, 1)


# Exercise 9.4 ---------------------------------------------------------------------------------


def integrated_gradients(forward, inputs, baseline, steps):
    baseline = baseline.expand_as(inputs)
    total = torch.zeros_like(inputs)
    for step in range(1, steps + 1):
        point = (baseline + step / steps * (inputs - baseline)).requires_grad_(True)
        (gradient,) = torch.autograd.grad(forward(point).sum(), point)
        total += gradient
    return (inputs - baseline) * total / steps


def ig_left_sum(forward, inputs, baseline, steps):
    baseline = baseline.expand_as(inputs)
    total = torch.zeros_like(inputs)
    for step in range(steps):
        point = (baseline + step / steps * (inputs - baseline)).requires_grad_(True)
        (gradient,) = torch.autograd.grad(forward(point).sum(), point)
        total += gradient
    return (inputs - baseline) * total / steps


def ig_without_difference(forward, inputs, baseline, steps):
    return integrated_gradients(forward, inputs, baseline, steps) / (
        inputs - baseline.expand_as(inputs)
    )


def ig_summed_not_averaged(forward, inputs, baseline, steps):
    return integrated_gradients(forward, inputs, baseline, steps) * steps


def gradient_times_input(forward, inputs, baseline, steps):
    point = inputs.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(forward(point).sum(), point)
    return (inputs - baseline) * gradient


# The checks against them ----------------------------------------------------------------------

CHECKS = {
    "9.1": ch09.check_demographic_parity_difference,
    "9.2": ch09.check_reweighing_weights,
    "9.3": ch09.check_fgsm_step,
    "9.4": ch09.check_integrated_gradients,
}
SOLUTIONS = {
    "9.1": demographic_parity_difference,
    "9.2": reweighing_weights,
    "9.3": fgsm_step,
    "9.4": integrated_gradients,
}


def test_strict_mode_turns_a_wrong_answer_into_an_exception(monkeypatch) -> None:
    monkeypatch.setenv(config.STRICT_EXERCISES_ENV, "1")

    assert ch09.check_fgsm_step(fgsm_step).status == "passed"
    with pytest.raises(ExerciseFailed, match=r"Exercise 9.3 \(one FGSM step\): 2 of 7 checks"):
        ch09.check_fgsm_step(fgsm_without_clamp)


MIN_CASES = 4

MISTAKES = [
    ("9.1", parity_signed, "failed", "the difference is the largest selection rate minus the"),
    (
        "9.1",
        parity_first_two_groups,
        "failed",
        "three groups named by strings, selected 80%, 50% and 20% of the time: ",
    ),
    ("9.1", parity_in_percent, "failed", "expected a fraction (0.5), got 50 (a percentage?)"),
    ("9.1", parity_ratio, "failed", "a single group: demographic_parity_difference("),
    ("9.1", parity_against_overall, "failed", "two groups, group 0 selected more often: "),
    ("9.1", parity_sorting_in_place, "failed", "the arrays passed to demographic_parity_diff"),
    ("9.2", reweighing_inverted, "failed", "total weight of group 0 (its weighted size, expected"),
    ("9.2", reweighing_by_group_only, "failed", "(expected the overall positive rate)"),
    ("9.2", reweighing_as_list, "failed", "expected a ndarray, got list"),
    ("9.3", fgsm_without_clamp, "failed", "expected pixels inside the valid range [0, 1], got"),
    ("9.3", fgsm_descending, "failed", "an untargeted step must climb the loss"),
    ("9.3", fgsm_raw_gradient, "failed", "values differ, the first at index"),
    ("9.3", fgsm_not_detached, "failed", "the result still requires gradients"),
    ("9.3", fgsm_in_place, "failed", "the images passed in were modified"),
    ("9.4", ig_left_sum, "failed", "F(x) = x0 x1 x2 (curved), baseline of ones: "),
    ("9.4", ig_without_difference, "failed", "a small tanh network, zero baseline, 20 steps: "),
    ("9.4", ig_summed_not_averaged, "failed", "(expected F(x) - F(baseline))"),
    ("9.4", gradient_times_input, "failed", "completeness: with 300 steps"),
]


def test_a_linear_function_passes_the_left_sum_and_only_the_curved_cases_catch_it() -> None:
    result = ch09.check_integrated_gradients(ig_left_sum)

    failing = {line.split(":")[0] for line in result.messages}
    assert "F(x) = 2 x0 - x1 + 0.5 x2 (exact" not in " ".join(failing)
    assert result.passed >= 2


# Exercise 9.5 (derive) ------------------------------------------------------------------------


def test_the_reweighing_derivation_passes_with_the_formula() -> None:
    result = ch09.check_reweighing_derivation(0.4 * 0.42 / 0.12)
    assert (result.id, result.status, result.kind) == ("9.5", "passed", "derivation")
    assert "P(g) P(y) / P(g, y)" in result.messages[0]
    assert ch09.check_reweighing_derivation(1.4).status == "passed"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (0.714, "the formula upside down"),
        (0.84, "a hired applicant of group A"),
        (0.829, "a rejected applicant of group B"),
        (2.0, "you derived 2, the formula gives 1.4"),
    ],
)
def test_a_wrong_reweighing_derivation_fails_saying_why(answer, message) -> None:
    result = ch09.check_reweighing_derivation(answer)
    assert result.status == "failed"
    assert message in result.messages[0], result.messages


@pytest.mark.parametrize("stub_value", [None, ...])
def test_the_reweighing_derivation_stub_reads_as_not_done(stub_value) -> None:
    assert ch09.check_reweighing_derivation(stub_value).status == "not done"
