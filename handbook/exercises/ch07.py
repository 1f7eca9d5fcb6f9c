"""Checks for the exercises of chapter 7, continual learning.

Each check runs the learner's function on several inputs, edge cases included, and compares it
with the tested reference in :mod:`handbook.continual` (the diagonal Fisher, the forgetting
measure) or, for reservoir sampling, whose answer is random, with the distribution it must
have: a chi-square test of thousands of seeded draws against the uniform. Exercise 7.4 is a
derivation: :func:`check_replay_saving_derivation` compares the learner's number with the
formula and names the typical slip it matches. Call them from the check cells:
``ch07.check_diagonal_fisher(diagonal_fisher)``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from handbook import continual
from handbook.exercises.checks import (
    DERIVATION,
    Case,
    ExerciseResult,
    check_exercise,
    check_number,
    check_open_answer,
    describe,
    expect,
    expect_close,
    expect_shape,
    expect_type,
    typical_slip,
)
from handbook.exercises.remote import OneShotStream as _OneShotStream
from handbook.i18n import N_, _

# Exercise 7.1 ---------------------------------------------------------------------------------


def _fisher_models() -> dict[str, nn.Module]:
    """A softmax regression, a binary logistic regression and a small tanh network, fixed."""
    generator = torch.Generator().manual_seed(71)
    models = {
        _("a softmax regression (5 features, 3 classes)"): nn.Linear(5, 3),
        _("a logistic regression (4 features, 2 classes)"): nn.Linear(4, 2),
        _("a tanh network (6 -> 4 -> 3)"): nn.Sequential(
            nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3)
        ),
    }
    for model in models.values():
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.7)
    return models


def check_diagonal_fisher(
    diagonal_fisher: Callable[[nn.Module, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]],
) -> ExerciseResult:
    """Exercise 7.1: ``diagonal_fisher(model, inputs, targets)``.

    ``inputs``: float ``(n, features)``; ``targets``: int64 ``(n,)``. The answer is a dict with
    one tensor per entry of ``model.named_parameters()`` (same names, same shapes): the mean
    over the ``n`` examples of the squared gradient of ``log p(target | input)``, compared with
    :func:`handbook.continual.diagonal_fisher`. The model's parameters must not change.
    """
    generator = torch.Generator().manual_seed(72)
    cases = []
    for name, model in _fisher_models().items():
        features = model.in_features if isinstance(model, nn.Linear) else model[0].in_features
        classes = model.out_features if isinstance(model, nn.Linear) else model[-1].out_features
        count = 9
        inputs = torch.randn(count, features, generator=generator)
        targets = torch.randint(0, classes, (count,), generator=generator)
        cases.append(
            _fisher_case(
                diagonal_fisher,
                _("{model}, {count} examples").format(model=name, count=count),
                model,
                inputs,
                targets,
            )
        )
    softmax = next(iter(_fisher_models().values()))
    one_input = torch.randn(1, 5, generator=generator)
    cases += [
        _fisher_case(
            diagonal_fisher,
            _("a single example (n=1)"),
            softmax,
            one_input,
            torch.tensor([2]),
        ),
        _fisher_case(
            diagonal_fisher,
            _("40 examples whose gradients point different ways"),
            softmax,
            torch.randn(40, 5, generator=generator) * 2,
            torch.randint(0, 3, (40,), generator=generator),
        ),
        Case(
            _("the model's parameters are left unchanged"),
            lambda: _expect_parameters_unchanged(diagonal_fisher),
        ),
    ]
    return check_exercise("7.1", _("the diagonal Fisher"), cases)


def _fisher_case(
    diagonal_fisher: Callable,
    description: str,
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
) -> Case:
    def run() -> None:
        result = diagonal_fisher(model, inputs.clone(), targets.clone())
        what = "diagonal_fisher(model, inputs, targets)"
        expect_type(result, dict, what)
        names = [name for name, _ in model.named_parameters()]
        expect(
            sorted(result) == sorted(names),
            _("{what}: expected one entry per parameter, named {names}, got keys {keys}").format(
                what=what, names=names, keys=sorted(map(str, result))
            ),
        )
        expected = continual.diagonal_fisher(model, inputs, targets)
        for name, parameter in model.named_parameters():
            value = result[name]
            expect_type(value, torch.Tensor, f"{what}[{name!r}]")
            expect_shape(value, tuple(parameter.shape), f"{what}[{name!r}]")
            value = value.detach()
            expect(
                bool((value >= 0).all()),
                _("{what}: expected non-negative values (a mean of squares), got {got}").format(
                    what=f"{what}[{name!r}]", got=describe(value)
                ),
            )
            ratio = float(value.sum() / expected[name].sum().clamp_min(1e-12))
            expect(
                not np.isclose(ratio, len(inputs), rtol=1e-3) or len(inputs) == 1,
                _(
                    "{what}: expected the mean over the {count} examples, got {count} times it "
                    "(a sum?)"
                ).format(what=f"{what}[{name!r}]", count=len(inputs)),
            )
            expect_close(value, expected[name], f"{what}[{name!r}]", atol=1e-6, rtol=1e-4)

    return Case(description, run)


def _expect_parameters_unchanged(diagonal_fisher: Callable) -> None:
    model = next(iter(_fisher_models().values()))
    before = [parameter.detach().clone() for parameter in model.parameters()]
    generator = torch.Generator().manual_seed(73)
    diagonal_fisher(
        model,
        torch.randn(6, 5, generator=generator),
        torch.randint(0, 3, (6,), generator=generator),
    )
    changed = [
        name
        for (name, parameter), old in zip(model.named_parameters(), before, strict=True)
        if not torch.equal(parameter.detach(), old)
    ]
    expect(
        not changed,
        _("the parameters {changed} changed; computing the Fisher must not train the model").format(
            changed=changed
        ),
    )


# Exercise 7.2 ---------------------------------------------------------------------------------


def check_reservoir_sample(
    reservoir_sample: Callable[[Iterable, int, np.random.Generator], list],
) -> ExerciseResult:
    """Exercise 7.2: ``reservoir_sample(stream, capacity, rng)``.

    ``stream``: an iterator that can be read once and has no length; ``capacity``: an int;
    ``rng``: a ``numpy.random.Generator`` for every random choice. The answer is a list of
    ``min(capacity, length of the stream)`` items of the stream, each position at most once,
    every subset of that size equally likely. Uniformity is tested with chi-square tests over
    thousands of seeded draws (a correct answer fails them with probability about 1e-4).
    """
    cases = [
        Case(
            _("10 items, capacity 3: three distinct items of the stream"),
            lambda: _expect_valid_sample(reservoir_sample, 10, 3),
        ),
        Case(
            _("a stream shorter than the capacity (4 items, capacity 6) is kept whole"),
            lambda: _expect_valid_sample(reservoir_sample, 4, 6),
        ),
        Case(_("capacity 0 keeps nothing"), lambda: _expect_valid_sample(reservoir_sample, 5, 0)),
        Case(
            _("an empty stream gives an empty sample"),
            lambda: _expect_valid_sample(reservoir_sample, 0, 3),
        ),
        Case(
            _("the stream is read to the end, once"),
            lambda: _expect_read_once(reservoir_sample),
        ),
        Case(
            _("every pair of 6 items is equally likely (capacity 2, 6000 draws, chi-square)"),
            lambda: _expect_uniform_subsets(reservoir_sample),
        ),
        Case(
            _("every one of 40 items is kept equally often (capacity 4, 3000 draws, chi-square)"),
            lambda: _expect_uniform_items(reservoir_sample),
        ),
    ]
    return check_exercise("7.2", _("reservoir sampling"), cases)


def _sample(reservoir_sample: Callable, length: int, capacity: int, seed: int) -> list:
    result = reservoir_sample(_OneShotStream(range(length)), capacity, np.random.default_rng(seed))
    expect_type(
        result,
        list,
        _("reservoir_sample(stream of {length} items, capacity={capacity})").format(
            length=length, capacity=capacity
        ),
    )
    return result


def _expect_valid_sample(reservoir_sample: Callable, length: int, capacity: int) -> None:
    what = _("reservoir_sample(stream of {length} items, capacity={capacity}, rng)").format(
        length=length, capacity=capacity
    )
    for seed in range(5):
        sample = _sample(reservoir_sample, length, capacity, seed)
        expected_size = min(capacity, length)
        expect(
            len(sample) == expected_size,
            _("{what}: expected {expected} items, got {count}: {sample}").format(
                what=what, expected=expected_size, count=len(sample), sample=describe(sample)
            ),
        )
        outside = [item for item in sample if item not in range(length)]
        expect(
            not outside,
            _("{what}: items {items} are not from the stream").format(what=what, items=outside[:5]),
        )
        repeated = [item for item, count in Counter(sample).items() if count > 1]
        expect(
            not repeated,
            _(
                "{what}: items {items} are kept more than once; each position of the "
                "stream may be kept at most once"
            ).format(what=what, items=repeated[:5]),
        )


def _expect_read_once(reservoir_sample: Callable) -> None:
    stream = _OneShotStream(range(25))
    reservoir_sample(stream, 3, np.random.default_rng(0))
    expect(
        stream.read == 25,
        _(
            "the stream of 25 items was read up to item {read}; every item must get its "
            "chance, so the sample can only be known at the end"
        ).format(read=stream.read),
    )


def _chi_square_p_value(counts: np.ndarray) -> float:
    from scipy.stats import chisquare

    return float(chisquare(counts).pvalue)


def _expect_uniform_subsets(reservoir_sample: Callable) -> None:
    subsets = list(itertools.combinations(range(6), 2))
    counts = Counter(tuple(sorted(_sample(reservoir_sample, 6, 2, seed))) for seed in range(6000))
    observed = np.array([counts.get(subset, 0) for subset in subsets])
    p_value = _chi_square_p_value(observed)
    rarest, commonest = subsets[int(observed.argmin())], subsets[int(observed.argmax())]
    expect(
        observed.sum() == 6000 and p_value > 1e-4,
        _(
            "pairs of a 6-item stream are not equally likely (chi-square p = {p_value:.2g}): "
            "expected each of the 15 pairs about 400 times in 6000 draws, got {commonest} "
            "{most} times and {rarest} {least} times"
        ).format(
            p_value=p_value,
            commonest=commonest,
            most=observed.max(),
            rarest=rarest,
            least=observed.min(),
        ),
    )


def _expect_uniform_items(reservoir_sample: Callable) -> None:
    counts = np.zeros(40, dtype=np.int64)
    for seed in range(3000):
        for item in _sample(reservoir_sample, 40, 4, 10_000 + seed):
            counts[item] += 1
    p_value = _chi_square_p_value(counts)
    expect(
        p_value > 1e-4,
        _(
            "items are not kept equally often (chi-square p = {p_value:.2g}): expected each of "
            "the 40 about 300 times in 3000 draws of 4, got the first five {first} and the "
            "last five {last}"
        ).format(p_value=p_value, first=counts[:5].tolist(), last=counts[-5:].tolist()),
    )


# Exercise 7.3 ---------------------------------------------------------------------------------


def check_average_forgetting(
    average_forgetting: Callable[[np.ndarray], float],
) -> ExerciseResult:
    """Exercise 7.3: ``average_forgetting(accuracy)``.

    ``accuracy``: a float array ``(T, T)``, entry ``[i, j]`` the accuracy on period ``j`` after
    training on period ``i``; entries above the diagonal (periods not yet trained on) hold
    anything and must be ignored. The answer is a float: for each period but the last, its best
    accuracy before the last period minus its final accuracy, averaged over those ``T - 1``
    periods; 0.0 for a single period. Compared with
    :func:`handbook.continual.average_forgetting`.
    """
    rng = np.random.default_rng(73)
    random_matrix = np.tril(rng.uniform(0.3, 1.0, (5, 5))) + np.triu(np.full((5, 5), 7.0), 1)
    cases = [
        _forgetting_case(
            average_forgetting,
            _("two periods, the first drops from 0.9 to 0.6"),
            np.array([[0.9, 0.0], [0.6, 0.8]]),
        ),
        _forgetting_case(
            average_forgetting,
            _("three periods, the first peaks after the second period"),
            np.array([[0.7, 0.1, 0.0], [0.9, 0.8, 0.0], [0.5, 0.6, 0.9]]),
        ),
        _forgetting_case(
            average_forgetting,
            _("three periods, one ends better than it ever was (negative forgetting)"),
            np.array([[0.8, 0.0, 0.0], [0.6, 0.7, 0.0], [0.5, 0.9, 0.95]]),
        ),
        _forgetting_case(
            average_forgetting,
            _("four periods with NaN above the diagonal"),
            np.array(
                [
                    [0.95, np.nan, np.nan, np.nan],
                    [0.40, 0.97, np.nan, np.nan],
                    [0.30, 0.50, 0.96, np.nan],
                    [0.20, 0.45, 0.70, 0.99],
                ]
            ),
        ),
        _forgetting_case(
            average_forgetting,
            _("five periods, random accuracies, 7.0 above the diagonal"),
            random_matrix,
        ),
        _forgetting_case(average_forgetting, _("a single period"), np.array([[0.9]])),
        Case(
            _("the accuracy matrix is left unchanged"),
            lambda: _expect_matrix_unchanged(average_forgetting),
        ),
    ]
    return check_exercise("7.3", _("average forgetting"), cases)


def _forgetting_case(average_forgetting: Callable, description: str, matrix: np.ndarray) -> Case:
    def run() -> None:
        result = average_forgetting(matrix.copy())
        what = "average_forgetting(accuracy)"
        expect_type(result, (float, np.floating), what)
        expected = continual.average_forgetting(matrix)
        expect(
            expected == 0 or not np.isclose(result, 100 * expected),
            _(
                "{what}: expected a fraction ({expected:.4g}), got {result:.4g} (a percentage?)"
            ).format(what=what, expected=expected, result=result),
        )
        expect(
            expected == 0 or not np.isclose(result, -expected),
            _(
                "{what}: expected {expected:.4g}, got {result:.4g}: forgetting is the best "
                "accuracy minus the final one, positive when accuracy was lost"
            ).format(what=what, expected=expected, result=result),
        )
        expect_close(result, expected, what, atol=1e-9)

    return Case(description, run)


def _expect_matrix_unchanged(average_forgetting: Callable) -> None:
    matrix = np.array([[0.9, 0.2, 0.1], [0.7, 0.8, 0.3], [0.5, 0.6, 0.9]])
    original = matrix.copy()
    average_forgetting(matrix)
    expect(
        np.array_equal(matrix, original),
        _("the matrix passed in was modified: expected it unchanged, got {matrix}").format(
            matrix=describe(matrix)
        ),
    )


# Exercise 7.4 ---------------------------------------------------------------------------------

#: Exercise 7.4's update: old data four times the new, a replay memory of 20% of the old data.
DERIVATION_OLD_TO_NEW = 4
DERIVATION_REPLAY_FRACTION = 0.2


def replay_saving_slips() -> dict[float, str]:
    """Exercise 7.4's typical wrong answers (value -> what it corresponds to)."""
    r, f = DERIVATION_OLD_TO_NEW, DERIVATION_REPLAY_FRACTION
    saved = 1 - float(continual.replay_compute_share(r, f))
    return {
        1 - float(continual.replay_compute_share(r, 0.1)): _(
            "the saving with the chapter's 10% replay; this update replays 20%"
        ),
        1 - f * r / (1 + r): _(
            "a saving that counts only the replayed examples; the update also trains on all "
            "of the new data"
        ),
        1 - f: _("1 - f, the saving's limit when the old data are infinitely larger than the new"),
        1 - saved: _("the update's share of retraining's compute, not the share it saves"),
        1 - (1 + f * r) / r: _("a saving measured against the old data alone"),
        100 * saved: _("the saving as a percentage; write it as a fraction (0.65 = 65% saved)"),
    }


def check_replay_saving_derivation(saving: object) -> ExerciseResult:
    """Exercise 7.4 (derive): the compute one update saves against retraining, as a fraction,
    when the old data are :data:`DERIVATION_OLD_TO_NEW` times the new and the replay memory
    holds :data:`DERIVATION_REPLAY_FRACTION` of the old data (same epochs for both).

    The true value is ``1 - continual.replay_compute_share(4, 0.2)``; the tolerance (0.005)
    admits rounding to two decimals. A typical slip is named in the message.
    """
    r, f = DERIVATION_OLD_TO_NEW, DERIVATION_REPLAY_FRACTION
    expected = 1 - float(continual.replay_compute_share(r, f))
    explain = _(
        "Retraining goes through the new data n and the old data {r}n: n(1 + {r}) examples per "
        "epoch. The update goes through the new data and the replayed {f:g} x {r}n: "
        "n(1 + {f:g} x {r}). Saved = 1 - (1 + f r) / (1 + r) = 1 - {update:g} / {retrain:g}."
    ).format(r=r, f=f, update=1 + f * r, retrain=1 + r)
    return check_number(
        "7.4",
        _("the saving at another replay ratio"),
        saving,
        expected,
        tolerance=0.005,
        unit="",
        kind=DERIVATION,
        explain=typical_slip(saving, expected, replay_saving_slips(), tolerance=0.005) + explain,
    )


# Exercise 7.5 ---------------------------------------------------------------------------------

#: What an instructor reads exercise 7.5's answer against (English; each criterion is
#: translated where the check prints it).
EWC_INVESTIGATION_RUBRIC = (
    N_(
        "Names the class-incremental setting: one output layer shared by all topics, whose new "
        "topics' outputs did not exist (or were never trained) when period 0's Fisher was "
        "measured."
    ),
    N_(
        "Explains why a penalty on parameters cannot keep the old topics competitive: the "
        "cross-entropy on new data pushes the old topics' logits down relative to the new ones, "
        "and a lambda large enough to stop that also freezes the weights the new topics need."
    ),
    N_(
        "Proposes a change that can be tested with the chapter's code (for example a separate "
        "head per period, which needs the period at test time; a small replay memory; or "
        "training only the logits of the classes present) and says what it would measure."
    ),
    N_(
        "Says what result would support or refute the explanation, with lambda chosen on the "
        "validation stream and not on the test periods."
    ),
)


def check_ewc_investigation(answer: object) -> ExerciseResult:
    """Exercise 7.5 (open investigation): why no lambda lets EWC alone keep both the old and the
    newest topics (section 4), and how to test it. Submitted, never scored: the rubric
    :data:`EWC_INVESTIGATION_RUBRIC` is printed for the instructor and the learner."""
    return check_open_answer(
        "7.5",
        _("why EWC alone falls short"),
        answer,
        rubric=[_(criterion) for criterion in EWC_INVESTIGATION_RUBRIC],
        min_words=40,
    )
