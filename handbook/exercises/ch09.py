"""Checks for the exercises of chapter 9, ethics and safety.

Each check runs the learner's function on several inputs, edge cases included, and compares it
with the library a practitioner would use (``fairlearn.metrics``, ``captum``) or with the tested
reference in :mod:`handbook.ethics`; where the answer is pinned down by properties (reweighing),
the properties are checked. Exercise 9.5 is a derivation, checked against
:func:`handbook.ethics.reweighing_weights` on the stated counts, with the typical slips named.
Call them from the check cells:
``ch09.check_demographic_parity_difference(demographic_parity_difference)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from handbook import ethics
from handbook.exercises.checks import (
    DERIVATION,
    Case,
    ExerciseResult,
    check_exercise,
    check_number,
    expect,
    expect_close,
    expect_shape,
    expect_type,
)
from handbook.i18n import N_, _

# Exercise 9.1 ---------------------------------------------------------------------------------


def check_demographic_parity_difference(
    demographic_parity_difference: Callable[[np.ndarray, np.ndarray], float],
) -> ExerciseResult:
    """Exercise 9.1: ``demographic_parity_difference(predictions, groups)``.

    ``predictions``: a NumPy array ``(n,)`` of 0/1 decisions; ``groups``: an array ``(n,)`` of
    group names (ints or strings, two groups or more). The answer is a float, the largest minus
    the smallest selection rate over the groups, compared with
    ``fairlearn.metrics.demographic_parity_difference``.
    """
    rng = np.random.default_rng(9)
    cases = [
        _parity_case(
            demographic_parity_difference,
            _("two groups, group 0 selected more often"),
            np.array([1, 1, 1, 0, 1, 0, 0, 0]),
            np.array([0, 0, 0, 0, 1, 1, 1, 1]),
        ),
        _parity_case(
            demographic_parity_difference,
            _("two groups, group 1 selected more often"),
            np.array([0, 0, 0, 1, 1, 1, 1, 0]),
            np.array([0, 0, 0, 0, 1, 1, 1, 1]),
        ),
        _parity_case(
            demographic_parity_difference,
            _("three groups named by strings, selected 80%, 50% and 20% of the time"),
            np.r_[np.arange(10) < 8, np.arange(10) < 5, np.arange(10) < 2].astype(int),
            np.repeat(np.array(["north", "south", "west"]), 10),
        ),
        _parity_case(
            demographic_parity_difference,
            _("four groups in random order"),
            (rng.random(120) < 0.5).astype(int),
            rng.integers(0, 4, 120),
        ),
        _parity_case(
            demographic_parity_difference,
            _("groups of very different sizes (2 and 48 members)"),
            np.r_[[1, 1], (np.arange(48) % 4 == 0).astype(int)],
            np.r_[[7, 7], np.full(48, 3)],
        ),
        _parity_case(
            demographic_parity_difference,
            _("a single group"),
            np.array([1, 0, 1, 1]),
            np.array(["all"] * 4),
        ),
        _parity_case(
            demographic_parity_difference,
            _("nobody selected"),
            np.zeros(6, dtype=int),
            np.array([0, 1, 2, 0, 1, 2]),
        ),
        Case(
            _("the input arrays are left unchanged"),
            lambda: _expect_arrays_unchanged(demographic_parity_difference),
        ),
    ]
    return check_exercise("9.1", _("demographic-parity difference"), cases)


def _parity_case(
    function: Callable, description: str, predictions: np.ndarray, groups: np.ndarray
) -> Case:
    def run() -> None:
        from fairlearn.metrics import demographic_parity_difference

        result = function(predictions.copy(), groups.copy())
        what = "demographic_parity_difference(predictions, groups)"
        expect_type(result, (float, np.floating), what)
        expected = demographic_parity_difference(
            predictions, predictions, sensitive_features=groups
        )
        expect(
            result >= 0 or not np.isclose(-result, expected),
            _(
                "{what}: expected {expected:.4g}, got {result:.4g}: the difference is the largest "
                "selection rate minus the smallest, never negative"
            ).format(what=what, expected=expected, result=result),
        )
        expect(
            expected == 0 or not np.isclose(result, 100 * expected),
            _(
                "{what}: expected a fraction ({expected:.4g}), got {result:.4g} (a percentage?)"
            ).format(what=what, expected=expected, result=result),
        )
        expect_close(result, float(expected), what, atol=1e-9)

    return Case(description, run)


def _expect_arrays_unchanged(function: Callable) -> None:
    predictions, groups = np.array([1, 0, 1, 1, 0, 0]), np.array([0, 0, 0, 1, 1, 1])
    function(predictions, groups)
    expect(
        np.array_equal(predictions, [1, 0, 1, 1, 0, 0])
        and np.array_equal(groups, [0, 0, 0, 1, 1, 1]),
        _(
            "the arrays passed to demographic_parity_difference were modified; expected them "
            "unchanged (compute on copies or with masks)"
        ),
    )


# Exercise 9.2 ---------------------------------------------------------------------------------


def check_reweighing_weights(
    reweighing_weights: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> ExerciseResult:
    """Exercise 9.2: ``reweighing_weights(labels, groups)``.

    ``labels``: a 0/1 array ``(n,)``; ``groups``: group names ``(n,)``. The answer is a float
    array ``(n,)`` of weights that depend only on a sample's (group, label) cell, keep the
    weighted size of every group and of the whole set, and make the weighted positive rate of
    every group equal to the overall positive rate; these properties fix the weights, and the
    check tests each of them.
    """
    rng = np.random.default_rng(92)
    skewed_labels = np.r_[(rng.random(60) < 0.7), (rng.random(40) < 0.2)].astype(int)
    cases = [
        _reweighing_case(
            reweighing_weights,
            _("two groups, 3 of 4 and 1 of 4 positive"),
            np.array([1, 1, 1, 0, 1, 0, 0, 0]),
            np.array([0, 0, 0, 0, 1, 1, 1, 1]),
        ),
        _reweighing_case(
            reweighing_weights,
            _("two groups of 60 and 40 with positive rates near 70% and 20%"),
            skewed_labels,
            np.r_[np.zeros(60, int), np.ones(40, int)],
        ),
        _reweighing_case(
            reweighing_weights,
            _("three groups named by strings"),
            (rng.random(120) < 0.4).astype(int),
            np.array(["a", "b", "c"])[rng.integers(0, 3, 120)],
        ),
        _reweighing_case(
            reweighing_weights,
            _("labels already independent of the group (every weight should be 1)"),
            np.array([1, 0, 1, 0, 1, 0, 1, 0]),
            np.array([0, 0, 0, 0, 1, 1, 1, 1]),
        ),
    ]
    return check_exercise("9.2", _("reweighing weights"), cases)


def _reweighing_case(
    function: Callable, description: str, labels: np.ndarray, groups: np.ndarray
) -> Case:
    def run() -> None:
        result = function(labels.copy(), groups.copy())
        what = "reweighing_weights(labels, groups)"
        expect_type(result, np.ndarray, what)
        expect_shape(result, labels.shape, what)
        weights = result.astype(np.float64)
        expect(
            np.all(np.isfinite(weights)) and np.all(weights >= 0),
            _("{what}: expected finite, non-negative weights, got {weights} ...").format(
                what=what, weights=weights[:8]
            ),
        )
        overall = labels.mean()
        for group_value in np.unique(groups):
            member = groups == group_value
            group = group_value.item()
            for label in (0, 1):
                cell = weights[member & (labels == label)]
                expect(
                    cell.size == 0 or np.allclose(cell, cell[0]),
                    _(
                        "{what}: samples of group {group} with label {label} got different "
                        "weights ({weights}); expected one weight per (group, label) cell"
                    ).format(
                        what=what, group=repr(group), label=label, weights=np.unique(cell)[:4]
                    ),
                )
            expect_close(
                weights[member].sum(),
                float(member.sum()),
                _(
                    "{what}: total weight of group {group} (its weighted size, expected its "
                    "number of members)"
                ).format(what=what, group=repr(group)),
                atol=1e-6,
            )
            expect_close(
                (weights * labels)[member].sum() / weights[member].sum(),
                overall,
                _(
                    "{what}: weighted positive rate of group {group} (expected the overall "
                    "positive rate)"
                ).format(what=what, group=repr(group)),
                atol=1e-6,
            )

    return Case(description, run)


# Exercise 9.3 ---------------------------------------------------------------------------------


def _check_models() -> dict[str, nn.Module]:
    """A linear classifier and a small convolutional one on 8x8 images, fixed weights."""
    generator = torch.Generator().manual_seed(93)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10))
    for model in (linear, conv):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        model.eval()
    # the names are shown translated (see check_fgsm_step) and looked up in English
    return {N_("a linear classifier"): linear, N_("a small convolutional network"): conv}


def _check_images(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits-like images in [0, 1]: many pixels exactly 0 or 1, as on real scans."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 1, 8, 8, generator=generator)
    images = torch.where(images < 0.4, torch.zeros_like(images), images)
    images = torch.where(images > 0.85, torch.ones_like(images), images)
    return images, torch.randint(0, 10, (count,), generator=generator)


def check_fgsm_step(
    fgsm_step: Callable[[nn.Module, torch.Tensor, torch.Tensor, float], torch.Tensor],
) -> ExerciseResult:
    """Exercise 9.3: ``fgsm_step(model, images, labels, epsilon)``.

    ``images``: a float tensor ``(n, 1, 8, 8)`` in [0, 1]; ``labels``: int64 ``(n,)``. The
    answer is the untargeted FGSM example: one step of ``epsilon`` along the sign of the
    gradient of the cross-entropy with respect to the pixels, clipped to [0, 1]; a tensor of
    the images' shape that does not require gradients, compared with
    :func:`handbook.ethics.fgsm`. The input tensor must not change.
    """
    models = _check_models()
    cases = []
    for name, model in models.items():
        for epsilon, count in ((0.1, 6), (0.3, 3)):
            cases.append(
                _fgsm_case(
                    fgsm_step,
                    _("{model}, {count} images, epsilon={epsilon}").format(
                        model=_(name), count=count, epsilon=epsilon
                    ),
                    model,
                    count,
                    epsilon,
                )
            )
    linear = models["a linear classifier"]
    cases += [
        _fgsm_case(fgsm_step, _("a single image (n=1), epsilon=0.2"), linear, 1, 0.2),
        _fgsm_case(fgsm_step, _("epsilon=0 (no change at all)"), linear, 4, 0.0),
        Case(
            _("the loss of every image goes up (the linear model's loss is convex in the pixels)"),
            lambda: _expect_loss_increase(fgsm_step, linear),
        ),
    ]
    return check_exercise("9.3", _("one FGSM step"), cases)


def _fgsm_case(
    fgsm_step: Callable, description: str, model: nn.Module, count: int, epsilon: float
) -> Case:
    def run() -> None:
        images, labels = _check_images(count, seed=count)
        original = images.clone()
        result = fgsm_step(model, images, labels, epsilon)
        what = f"fgsm_step(model, images, labels, epsilon={epsilon})"
        expect_type(result, torch.Tensor, what)
        expect_shape(result, tuple(images.shape), what)
        expect(
            torch.equal(images, original),
            _(
                "{what}: the images passed in were modified; expected them unchanged (work on a "
                "detached copy)"
            ).format(what=what),
        )
        expect(
            not result.requires_grad,
            _(
                "{what}: the result still requires gradients; expected a plain tensor (detach it)"
            ).format(what=what),
        )
        low, high = float(result.min()), float(result.max())
        expect(
            low >= 0.0 and high <= 1.0,
            _(
                "{what}: expected pixels inside the valid range [0, 1], got values in "
                "[{low:.3g}, {high:.3g}]"
            ).format(what=what, low=low, high=high),
        )
        change = float((result - images).abs().max())
        expect(
            change <= epsilon + 1e-6,
            _(
                "{what}: expected no pixel to move by more than epsilon={epsilon}, one moved by "
                "{change:.3g}"
            ).format(what=what, epsilon=epsilon, change=change),
        )
        expect_close(result, ethics.fgsm(model, images, labels, epsilon), what, atol=1e-6)

    return Case(description, run)


def _expect_loss_increase(fgsm_step: Callable, model: nn.Module) -> None:
    images, labels = _check_images(16, seed=16)
    with torch.no_grad():
        before = F.cross_entropy(model(images), labels, reduction="none")
    attacked = fgsm_step(model, images.clone(), labels, 0.1)
    with torch.no_grad():
        after = F.cross_entropy(model(attacked), labels, reduction="none")
    lowered = int((after < before - 1e-5).sum())
    expect(
        lowered == 0,
        _(
            "the attack lowered the loss of {lowered} of 16 images (mean loss {before:.3f} "
            "before, {after:.3f} after); an untargeted step must climb the loss"
        ).format(lowered=lowered, before=before.mean(), after=after.mean()),
    )


# Exercise 9.4 ---------------------------------------------------------------------------------


def check_integrated_gradients(
    integrated_gradients: Callable[
        [Callable[[torch.Tensor], torch.Tensor], torch.Tensor, torch.Tensor, int], torch.Tensor
    ],
) -> ExerciseResult:
    """Exercise 9.4: ``integrated_gradients(forward, inputs, baseline, steps)``.

    ``forward`` maps a float tensor ``(n, d)`` to ``(n,)``; ``baseline`` is ``(d,)`` or
    ``(n, d)``. The answer ``(n, d)`` is the right Riemann sum of integrated gradients with
    ``steps`` points ``alpha = 1/steps, 2/steps, ..., 1``, compared with captum's
    ``IntegratedGradients(..., method="riemann_right")``.
    """
    generator = torch.Generator().manual_seed(94)
    network = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))

    def tanh_network(inputs: torch.Tensor) -> torch.Tensor:
        return network(inputs).squeeze(-1)

    weights = torch.tensor([2.0, -1.0, 0.5])

    def linear(inputs: torch.Tensor) -> torch.Tensor:
        return inputs @ weights

    def product(inputs: torch.Tensor) -> torch.Tensor:
        return inputs.prod(dim=1)

    inputs = torch.randn(5, 4, generator=generator)
    cases = [
        _ig_case(
            integrated_gradients,
            _("F(x) = 2 x0 - x1 + 0.5 x2 (exact: w_i (x_i - b_i)), zero baseline"),
            linear,
            torch.randn(4, 3, generator=generator),
            torch.zeros(3),
            steps=5,
        ),
        _ig_case(
            integrated_gradients,
            _("F(x) = x0 x1 x2 (curved), baseline of ones"),
            product,
            torch.rand(3, 3, generator=generator) * 2,
            torch.ones(3),
            steps=4,
        ),
        _ig_case(
            integrated_gradients,
            _("a small tanh network, zero baseline, 20 steps"),
            tanh_network,
            inputs,
            torch.zeros(4),
            steps=20,
        ),
        _ig_case(
            integrated_gradients,
            _("a small tanh network, one baseline per input (n, d), 3 steps"),
            tanh_network,
            inputs,
            torch.randn(5, 4, generator=generator),
            steps=3,
        ),
        _ig_case(
            integrated_gradients,
            _("a single input (n=1), 2 steps"),
            tanh_network,
            inputs[:1],
            torch.zeros(4),
            steps=2,
        ),
        Case(
            _("completeness: with 300 steps the attributions add up to F(x) - F(baseline)"),
            lambda: _expect_completeness(integrated_gradients, tanh_network, inputs),
        ),
    ]
    return check_exercise("9.4", _("integrated gradients, Riemann sum"), cases)


def _ig_case(
    integrated_gradients: Callable,
    description: str,
    forward: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    baseline: torch.Tensor,
    steps: int,
) -> Case:
    def run() -> None:
        from captum.attr import IntegratedGradients

        result = integrated_gradients(forward, inputs.clone(), baseline.clone(), steps)
        what = f"integrated_gradients(forward, inputs, baseline, steps={steps})"
        expect_type(result, torch.Tensor, what)
        expect_shape(result, tuple(inputs.shape), what)
        expected = IntegratedGradients(forward).attribute(
            inputs, baseline.expand_as(inputs), n_steps=steps, method="riemann_right"
        )
        expect_close(result.detach(), expected, what, atol=1e-5, rtol=1e-4)

    return Case(description, run)


def _expect_completeness(
    integrated_gradients: Callable, forward: Callable[[torch.Tensor], torch.Tensor], inputs
) -> None:
    baseline = torch.zeros(inputs.shape[1])
    result = integrated_gradients(forward, inputs.clone(), baseline, 300)
    with torch.no_grad():
        change = forward(inputs) - forward(baseline.expand_as(inputs))
    expect_close(
        result.detach().sum(dim=1),
        change,
        _("sum of the attributions of each input (expected F(x) - F(baseline))"),
        atol=0.02,
        rtol=0.01,
    )


# Exercise 9.5 ---------------------------------------------------------------------------------

#: Exercise 9.5's history: (applicants, hired) per group.
DERIVATION_COUNTS = {"A": (600, 300), "B": (400, 120)}
DERIVATION_TOLERANCE = 0.005


def _cell_weights(counts: dict[str, tuple[int, int]]) -> dict[tuple[str, int], float]:
    """Each (group, label) cell's reweighing weight, computed by
    :func:`handbook.ethics.reweighing_weights` on the applicants the counts describe."""
    groups = np.concatenate([np.full(total, name) for name, (total, _) in counts.items()])
    labels = np.concatenate(
        [
            np.r_[np.ones(hired, dtype=int), np.zeros(total - hired, dtype=int)]
            for total, hired in counts.values()
        ]
    )
    weights = ethics.reweighing_weights(labels, groups)
    return {
        (name, label): float(weights[(groups == name) & (labels == label)][0])
        for name in counts
        for label in (0, 1)
    }


def reweighing_slips() -> dict[float, str]:
    """Exercise 9.5's typical wrong answers (value -> what it corresponds to)."""
    cells = _cell_weights(DERIVATION_COUNTS)
    return {
        1 / cells["B", 1]: _(
            "P(B, hired) / (P(B) P(hired)), the formula upside down: the hired B applicants "
            "are rarer than independence predicts, so they must count MORE"
        ),
        cells["A", 1]: _("the weight of a hired applicant of group A"),
        cells["B", 0]: _("the weight of a rejected applicant of group B"),
        cells["A", 0]: _("the weight of a rejected applicant of group A"),
    }


def check_reweighing_derivation(weight: object) -> ExerciseResult:
    """Exercise 9.5 (derive): the reweighing weight of a hired applicant of group B in the
    history :data:`DERIVATION_COUNTS`. The true value is what
    :func:`handbook.ethics.reweighing_weights` gives those applicants; tolerance 0.005."""
    (total_a, hired_a), (total_b, hired_b) = DERIVATION_COUNTS["A"], DERIVATION_COUNTS["B"]
    n = total_a + total_b
    expected = _cell_weights(DERIVATION_COUNTS)["B", 1]
    explain = _(
        "w(g, y) = P(g) P(y) / P(g, y). P(B) = {total_b}/{n} = {p_b:g}, P(hired) = "
        "{hired}/{n} = {p_hired:g}, P(B, hired) = {hired_b}/{n} = "
        "{p_b_hired:g}: w = {p_b:g} x {p_hired:g} / "
        "{p_b_hired:g} = {expected:.3f}. Equivalently P(hired) / P(hired | B): a hired B "
        "applicant counts as many times as the overall hiring rate exceeds group B's."
    ).format(
        total_b=total_b,
        n=n,
        p_b=total_b / n,
        hired=hired_a + hired_b,
        p_hired=(hired_a + hired_b) / n,
        hired_b=hired_b,
        p_b_hired=hired_b / n,
        expected=expected,
    )
    slip = ""
    if isinstance(weight, (int, float, np.integer, np.floating)) and not isinstance(weight, bool):
        value = float(weight)
        if np.isfinite(value) and abs(value - expected) > DERIVATION_TOLERANCE:
            for wrong, meaning in reweighing_slips().items():
                if abs(value - wrong) <= DERIVATION_TOLERANCE:
                    slip = _("Your number is {meaning}. ").format(meaning=meaning)
                    break
    return check_number(
        "9.5",
        _("a reweighing weight"),
        weight,
        expected,
        tolerance=DERIVATION_TOLERANCE,
        kind=DERIVATION,
        explain=slip + explain,
    )
