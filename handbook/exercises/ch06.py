"""Checks for the exercises of chapter 6, industry cases.

Each check runs the learner's function on several inputs, edge cases included, and compares it
with the library a practitioner would use (``torch.nn.LSTMCell``, scikit-learn's ``roc_curve``)
or with the tested reference in :mod:`handbook.cases`. Exercise 6.5 is a derivation:
:func:`check_alert_precision_derivation` compares the learner's number with Bayes' rule and names
the typical slip it matches. Call them from the check cells:
``ch06.check_lstm_cell_step(lstm_cell_step)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from handbook import cases
from handbook.exercises.checks import (
    DERIVATION,
    Case,
    ExerciseResult,
    check_exercise,
    check_number,
    check_open_answer,
    expect,
    expect_close,
    expect_shape,
    expect_type,
    typical_slip,
)
from handbook.i18n import N_, _

# Exercise 6.1 ---------------------------------------------------------------------------------

LSTMStep = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def check_lstm_cell_step(lstm_cell_step: LSTMStep) -> ExerciseResult:
    """Exercise 6.1: ``lstm_cell_step(inputs, hidden, cell, weight_ih, weight_hh, bias_ih,
    bias_hh)``.

    ``inputs`` ``(batch, input)``, ``hidden`` and ``cell`` ``(batch, hidden)``, the weights and
    biases in ``torch.nn.LSTMCell``'s layout (gates stacked in the order input, forget,
    candidate, output). The answer is the next ``(hidden, cell)``, compared with
    ``torch.nn.LSTMCell`` holding the same weights.
    """
    cases_ = [
        _lstm_case(lstm_cell_step, _("a batch of 3, 4 inputs, 5 hidden units"), 3, 4, 5, seed=1),
        _lstm_case(
            lstm_cell_step, _("a single sequence (batch 1), 1 input, 2 hidden units"), 1, 1, 2
        ),
        _lstm_case(lstm_cell_step, _("a batch of 8, 6 inputs, 3 hidden units"), 8, 6, 3, seed=3),
        _lstm_case(
            lstm_cell_step, _("large inputs that saturate the gates"), 4, 3, 4, seed=4, scale=6.0
        ),
        _lstm_case(
            lstm_cell_step,
            _("a zero state (the first step of a sequence)"),
            2,
            3,
            4,
            zero_state=True,
        ),
        _lstm_case(lstm_cell_step, _("float64 tensors"), 3, 2, 3, seed=6, dtype=torch.float64),
        Case(
            _("three steps in a row, each feeding the next"),
            lambda: _expect_unrolled_sequence(lstm_cell_step),
        ),
        Case(
            _("the tensors passed in are left unchanged"), lambda: _expect_unchanged(lstm_cell_step)
        ),
    ]
    return check_exercise("6.1", _("one LSTM step"), cases_)


def _lstm_inputs(
    batch: int,
    inputs: int,
    hidden: int,
    seed: int,
    *,
    scale: float = 1.0,
    zero_state: bool = False,
    dtype: torch.dtype = torch.float32,
) -> tuple[nn.LSTMCell, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    reference = nn.LSTMCell(inputs, hidden).to(dtype)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=dtype) * 0.5)
    x = torch.randn(batch, inputs, generator=generator, dtype=dtype) * scale
    if zero_state:
        h = torch.zeros(batch, hidden, dtype=dtype)
        c = torch.zeros(batch, hidden, dtype=dtype)
    else:
        h = torch.randn(batch, hidden, generator=generator, dtype=dtype)
        c = torch.randn(batch, hidden, generator=generator, dtype=dtype) * 2
    return reference, (x, h, c)


def _weights(reference: nn.LSTMCell) -> tuple[torch.Tensor, ...]:
    return tuple(
        getattr(reference, name).detach().clone()
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )


def _lstm_case(
    lstm_cell_step: LSTMStep,
    description: str,
    batch: int,
    inputs: int,
    hidden: int,
    *,
    seed: int = 0,
    scale: float = 1.0,
    zero_state: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Case:
    def run() -> None:
        reference, (x, h, c) = _lstm_inputs(
            batch, inputs, hidden, seed, scale=scale, zero_state=zero_state, dtype=dtype
        )
        result = lstm_cell_step(x.clone(), h.clone(), c.clone(), *_weights(reference))
        what = "lstm_cell_step(inputs, hidden, cell, weight_ih, weight_hh, bias_ih, bias_hh)"
        expect(
            isinstance(result, tuple) and len(result) == 2,
            _("{what}: expected a pair (hidden, cell), got {type}").format(
                what=what, type=type(result).__name__
            )
            + (
                _(" of length {length}").format(length=len(result))
                if isinstance(result, tuple)
                else ""
            ),
        )
        new_hidden, new_cell = result
        for name, value in (("hidden", new_hidden), ("cell", new_cell)):
            new = _("{what}: the new {name}").format(what=what, name=name)
            expect_type(value, torch.Tensor, new)
            expect_shape(value, (batch, hidden), new)
            expect(
                value.dtype == dtype,
                _("{what}: the new {name}: expected {dtype} like the inputs, got {got}").format(
                    what=what,
                    name=name,
                    dtype=str(dtype).removeprefix("torch."),
                    got=str(value.dtype).removeprefix("torch."),
                ),
            )
        with torch.no_grad():
            expected_hidden, expected_cell = reference(x, (h, c))
        tolerance = 1e-10 if dtype == torch.float64 else 1e-5
        expect_close(
            new_cell.detach(),
            expected_cell,
            _("{what}: the new cell state").format(what=what),
            atol=tolerance,
        )
        expect_close(
            new_hidden.detach(),
            expected_hidden,
            _("{what}: the new hidden state").format(what=what),
            atol=tolerance,
        )

    return Case(description, run)


def _expect_unrolled_sequence(lstm_cell_step: LSTMStep) -> None:
    reference, (x, h, c) = _lstm_inputs(2, 3, 4, seed=7, zero_state=True)
    generator = torch.Generator().manual_seed(70)
    sequence = torch.randn(3, 2, 3, generator=generator)
    weights = _weights(reference)
    ours, theirs = (h, c), (h, c)
    for step in sequence:
        ours = lstm_cell_step(step, ours[0], ours[1], *weights)
        with torch.no_grad():
            theirs = reference(step, theirs)
    expect_close(
        ours[0].detach(),
        theirs[0],
        _("the hidden state after three steps (each step's (hidden, cell) fed to the next)"),
        atol=1e-5,
    )


def _expect_unchanged(lstm_cell_step: LSTMStep) -> None:
    reference, tensors = _lstm_inputs(3, 2, 3, seed=8)
    weights = _weights(reference)
    copies = [tensor.clone() for tensor in (*tensors, *weights)]
    lstm_cell_step(*tensors, *weights)
    names = ("inputs", "hidden", "cell", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
    changed = [
        name
        for name, before, after in zip(names, copies, (*tensors, *weights), strict=True)
        if not torch.equal(before, after)
    ]
    expect(
        not changed,
        _(
            "lstm_cell_step modified {arguments}; expected every argument unchanged "
            "(build new tensors instead of writing into these)"
        ).format(arguments=", ".join(changed)),
    )


# Exercise 6.2 ---------------------------------------------------------------------------------


def check_threshold_for_false_positive_rate(
    threshold_for_false_positive_rate: Callable[[np.ndarray, np.ndarray, float], float],
) -> ExerciseResult:
    """Exercise 6.2: ``threshold_for_false_positive_rate(labels, scores, budget)``.

    ``labels``: 0/1 NumPy array ``(n,)`` (1 = fraud); ``scores``: float array ``(n,)``;
    ``budget``: the largest allowed false-positive rate, a fraction. The answer is the lowest
    threshold ``t`` such that alerting on ``score >= t`` keeps the false-positive rate at or
    under the budget (``inf`` if no threshold does, other than alerting on nobody), compared
    with scikit-learn's ``roc_curve``.
    """
    rng = np.random.default_rng(62)
    many_labels = (rng.random(400) < 0.15).astype(int)
    many_scores = rng.normal(many_labels * 1.5, 1.0)
    ties = np.array([0.9, 0.8, 0.8, 0.8, 0.5, 0.5, 0.3, 0.2, 0.2, 0.1])
    cases_ = [
        _threshold_case(
            threshold_for_false_positive_rate,
            _("ten users, budget 0.25"),
            np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0]),
            np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2, 0.1]),
            0.25,
        ),
        _threshold_case(
            threshold_for_false_positive_rate,
            _("400 users in random order, budget 0.05"),
            many_labels,
            many_scores,
            0.05,
        ),
        _threshold_case(
            threshold_for_false_positive_rate,
            _("400 users in random order, budget 0.2"),
            many_labels,
            many_scores,
            0.2,
        ),
        _threshold_case(
            threshold_for_false_positive_rate,
            _("tied scores (users with the same score are alerted together), budget 0.4"),
            np.array([1, 0, 1, 0, 1, 0, 0, 1, 0, 0]),
            ties,
            0.4,
        ),
        _threshold_case(
            threshold_for_false_positive_rate,
            _("budget 0: no legitimate user may be alerted"),
            np.array([0, 1, 1, 0, 1, 0]),
            np.array([0.7, 0.9, 0.8, 0.3, 0.2, 0.1]),
            0.0,
        ),
        _threshold_case(
            threshold_for_false_positive_rate,
            _("budget 1: everybody may be alerted"),
            np.array([0, 1, 0, 1, 0]),
            np.array([0.2, 0.6, 0.9, 0.4, 0.1]),
            1.0,
        ),
        _threshold_case(
            threshold_for_false_positive_rate,
            _("the top score is a legitimate user's and the budget allows none"),
            np.array([0, 1, 0, 1, 0]),
            np.array([0.99, 0.6, 0.5, 0.4, 0.1]),
            0.0,
        ),
        Case(
            _("the arrays passed in are left unchanged"),
            lambda: _expect_arrays_unchanged(threshold_for_false_positive_rate, 0.3),
        ),
    ]
    return check_exercise("6.2", _("threshold under a false-positive budget"), cases_)


def _threshold_case(
    function: Callable,
    description: str,
    labels: np.ndarray,
    scores: np.ndarray,
    budget: float,
) -> Case:
    def run() -> None:
        from sklearn.metrics import roc_curve

        result = function(labels.copy(), scores.copy(), budget)
        what = f"threshold_for_false_positive_rate(labels, scores, budget={budget})"
        expect_type(result, (float, np.floating), what)
        false_positive_rates, _rates, thresholds = roc_curve(
            labels, scores, drop_intermediate=False
        )
        expected = float(thresholds[np.flatnonzero(false_positive_rates <= budget)[-1]])
        negatives = scores[labels == 0]
        rate = float((negatives >= result).mean())
        expect(
            rate <= budget,
            _(
                "{what}: alerting on score >= {result:.4g} flags {rate:.3g} of the legitimate "
                "users, over the budget {budget}"
            ).format(what=what, result=result, rate=rate, budget=budget),
        )
        expect(
            np.isinf(expected) == np.isinf(result),
            _("{what}: expected {expected:.4g}, got {result:.4g}").format(
                what=what, expected=expected, result=result
            ),
        )
        expect_close(
            result,
            expected,
            _("{what} (the lowest threshold within budget)").format(what=what),
            atol=0,
        )

    return Case(description, run)


def _expect_arrays_unchanged(function: Callable, budget: float) -> None:
    labels = np.array([1, 0, 0, 1, 0, 0])
    scores = np.array([0.3, 0.9, 0.1, 0.8, 0.4, 0.2])
    function(labels, scores, budget)
    expect(
        np.array_equal(labels, [1, 0, 0, 1, 0, 0])
        and np.array_equal(scores, [0.3, 0.9, 0.1, 0.8, 0.4, 0.2]),
        _("the arrays passed in were modified (sorted in place?); expected them unchanged"),
    )


# Exercise 6.3 ---------------------------------------------------------------------------------


def check_late_fusion(
    late_fusion: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
) -> ExerciseResult:
    """Exercise 6.3: ``late_fusion(text_probabilities, image_probabilities, prior)``.

    Two ``(n, classes)`` tables of class probabilities (rows sum to 1) from a text-only and an
    image-only model, and the classes' prior ``(classes,)``. The answer ``(n, classes)`` is
    the posterior given both, assuming the modalities independent given the class, compared
    with :func:`handbook.cases.late_fusion`.
    """
    rng = np.random.default_rng(63)

    def table(rows: int, classes: int) -> np.ndarray:
        values = rng.random((rows, classes)) + 0.05
        return values / values.sum(axis=1, keepdims=True)

    five_prior = np.array([0.3, 0.2, 0.2, 0.15, 0.15])
    cases_ = [
        _fusion_case(
            late_fusion,
            _("two classes, uniform prior"),
            np.array([[0.8, 0.2], [0.3, 0.7], [0.5, 0.5]]),
            np.array([[0.6, 0.4], [0.6, 0.4], [0.1, 0.9]]),
            np.array([0.5, 0.5]),
        ),
        _fusion_case(
            late_fusion,
            _("five classes, the prior of the chapter's diagnoses"),
            table(6, 5),
            table(6, 5),
            five_prior,
        ),
        _fusion_case(
            late_fusion,
            _("three classes, a skewed prior (0.7, 0.2, 0.1)"),
            table(4, 3),
            table(4, 3),
            np.array([0.7, 0.2, 0.1]),
        ),
        _fusion_case(
            late_fusion,
            _("a single record (n=1), five classes"),
            table(1, 5),
            table(1, 5),
            five_prior,
        ),
        _fusion_case(
            late_fusion,
            _("an image model that only knows the prior (the answer is the text model's)"),
            table(5, 5),
            np.tile(five_prior, (5, 1)),
            five_prior,
        ),
        _fusion_case(
            late_fusion,
            _("two confident models that disagree"),
            np.array([[0.98, 0.01, 0.01], [0.01, 0.01, 0.98]]),
            np.array([[0.01, 0.98, 0.01], [0.01, 0.98, 0.01]]),
            np.array([0.5, 0.3, 0.2]),
        ),
        Case(
            _("the arrays passed in are left unchanged"),
            lambda: _expect_tables_unchanged(late_fusion),
        ),
    ]
    return check_exercise("6.3", _("late fusion"), cases_)


def _fusion_case(
    function: Callable,
    description: str,
    text: np.ndarray,
    image: np.ndarray,
    prior: np.ndarray,
) -> Case:
    def run() -> None:
        result = function(text.copy(), image.copy(), prior.copy())
        what = "late_fusion(text_probabilities, image_probabilities, prior)"
        expect_type(result, np.ndarray, what)
        expect_shape(result, text.shape, what)
        expect_close(
            result.sum(axis=1),
            np.ones(len(text)),
            _("{what}: the sum of each row (a probability table's rows sum to 1)").format(
                what=what
            ),
            atol=1e-6,
        )
        expect_close(result, cases.late_fusion(text, image, prior), what, atol=1e-6)

    return Case(description, run)


def _expect_tables_unchanged(function: Callable) -> None:
    text = np.array([[0.7, 0.3], [0.4, 0.6]])
    image = np.array([[0.2, 0.8], [0.5, 0.5]])
    prior = np.array([0.6, 0.4])
    function(text, image, prior)
    expect(
        np.array_equal(text, [[0.7, 0.3], [0.4, 0.6]])
        and np.array_equal(image, [[0.2, 0.8], [0.5, 0.5]])
        and np.array_equal(prior, [0.6, 0.4]),
        _(
            "the arrays passed to late_fusion were modified; expected them unchanged (compute "
            "new arrays instead of writing into these)"
        ),
    )


# Exercise 6.4 ---------------------------------------------------------------------------------


def check_recall_at_alerts(
    recall_at_alerts: Callable[[np.ndarray, np.ndarray, int], float],
) -> ExerciseResult:
    """Exercise 6.4: ``recall_at_alerts(labels, scores, alerts)``.

    ``labels``: 0/1 NumPy array ``(n,)`` (1 = fraud, at least one); ``scores``: ``(n,)``
    distinct floats; ``alerts``: how many users the analysts can review (0 or more). The answer
    is the share of the frauds among the ``alerts`` highest-scored users (a float), compared
    with :func:`handbook.cases.operating_point_at_alerts`.
    """
    rng = np.random.default_rng(64)
    labels = (rng.random(300) < 0.1).astype(int)
    labels[0] = 1
    scores = rng.permutation(300) + rng.normal(labels * 60.0, 20.0)
    small_labels = np.array([0, 1, 0, 0, 1, 1, 0, 0])
    small_scores = np.array([0.1, 0.9, 0.35, 0.8, 0.3, 0.7, 0.2, 0.05])
    cases_ = [
        _alerts_case(recall_at_alerts, _("8 users, 3 alerts"), small_labels, small_scores, 3),
        _alerts_case(recall_at_alerts, _("8 users, 5 alerts"), small_labels, small_scores, 5),
        _alerts_case(
            recall_at_alerts, _("300 users in random order, 20 alerts"), labels, scores, 20
        ),
        _alerts_case(
            recall_at_alerts, _("300 users in random order, 60 alerts"), labels, scores, 60
        ),
        _alerts_case(
            recall_at_alerts, _("no alert at all (alerts=0)"), small_labels, small_scores, 0
        ),
        _alerts_case(
            recall_at_alerts,
            _("more alerts than users (everybody is reviewed)"),
            small_labels,
            small_scores,
            12,
        ),
        Case(
            _("the arrays passed in are left unchanged"),
            lambda: _expect_arrays_unchanged(
                lambda labels, scores, _: recall_at_alerts(labels, scores, 2), 0.0
            ),
        ),
    ]
    return check_exercise("6.4", _("recall at an alert budget"), cases_)


def _alerts_case(
    function: Callable, description: str, labels: np.ndarray, scores: np.ndarray, alerts: int
) -> Case:
    def run() -> None:
        result = function(labels.copy(), scores.copy(), alerts)
        what = f"recall_at_alerts(labels, scores, alerts={alerts})"
        expect_type(result, (float, np.floating), what)
        expected = cases.operating_point_at_alerts(labels, scores, alerts).recall
        precision = cases.operating_point_at_alerts(labels, scores, alerts).precision
        expect(
            expected == precision or not np.isclose(result, precision),
            _(
                "{what}: expected {expected:.4g}, got {result:.4g}, the share of the alerts that "
                "are frauds (precision); recall is a share of all the frauds"
            ).format(what=what, expected=expected, result=result),
        )
        expect_close(result, expected, what, atol=1e-9)

    return Case(description, run)


# Exercise 6.5 ---------------------------------------------------------------------------------

#: Exercise 6.5's detector and bank: its recall and false-positive rate at one threshold, and
#: the share of the bank's users who are fraudsters.
DERIVATION_RECALL = 0.8
DERIVATION_FALSE_POSITIVE_RATE = 0.01
DERIVATION_FRAUD_RATE = 0.005
#: The fraud rate of the chapter's synthetic shop (the training data), a typical slip.
TRAINING_FRAUD_RATE = 0.1


def alert_precision(recall: float, false_positive_rate: float, fraud_rate: float) -> float:
    """The share of alerts that are fraud (precision), by Bayes' rule, for a detector with this
    ``recall`` and ``false_positive_rate`` on users of whom ``fraud_rate`` are fraudsters."""
    caught = recall * fraud_rate
    return caught / (caught + false_positive_rate * (1 - fraud_rate))


def alert_precision_slips() -> dict[float, str]:
    """Exercise 6.5's typical wrong answers (value -> what it corresponds to)."""
    recall, rate, base = (
        DERIVATION_RECALL,
        DERIVATION_FALSE_POSITIVE_RATE,
        DERIVATION_FRAUD_RATE,
    )
    return {
        recall: _(
            "the recall, the share of the frauds that are alerted; the question is the "
            "share of the alerts that are fraud"
        ),
        1 - rate: _("1 - the false-positive rate, the share of legitimate users left alone"),
        alert_precision(recall, rate, TRAINING_FRAUD_RATE): _(
            "the precision at the synthetic shop's {shop_rate:.0%} fraud rate; this "
            "bank has {bank_rate:.1%}"
        ).format(shop_rate=TRAINING_FRAUD_RATE, bank_rate=base),
        base / (base + rate * (1 - base)): _(
            "a precision that leaves out the recall: only that share of the frauds is alerted"
        ),
        100 * alert_precision(recall, rate, base): _(
            "the precision as a percentage; write it as a fraction (0.5 = half the alerts)"
        ),
    }


def check_alert_precision_derivation(precision: object) -> ExerciseResult:
    """Exercise 6.5 (derive): the share of alerts that are fraud for a detector with
    :data:`DERIVATION_RECALL` recall and a :data:`DERIVATION_FALSE_POSITIVE_RATE` false-positive
    rate at a bank where :data:`DERIVATION_FRAUD_RATE` of the users are fraudsters.

    The true value is :func:`alert_precision` (Bayes' rule); the tolerance (0.005) admits
    rounding and the approximation ``1 - fraud rate ~ 1``. A typical slip is named.
    """
    recall, rate, base = (
        DERIVATION_RECALL,
        DERIVATION_FALSE_POSITIVE_RATE,
        DERIVATION_FRAUD_RATE,
    )
    expected = alert_precision(recall, rate, base)
    explain = _(
        "Of N users, {base:g} N are fraudsters and the detector alerts {recall:g} of them: "
        "{true_alerts:g} N true alerts. Of the {legitimate:g} N legitimate users it alerts "
        "{rate:g}: {false_alerts:.5g} N false alerts. Precision = true alerts / all "
        "alerts = {true_alerts:g} / ({true_alerts:g} + {false_alerts:.5g})."
    ).format(
        base=base,
        recall=recall,
        true_alerts=recall * base,
        legitimate=1 - base,
        rate=rate,
        false_alerts=rate * (1 - base),
    )
    slip = typical_slip(precision, expected, alert_precision_slips(), tolerance=0.005)
    return check_number(
        "6.5",
        _("the share of alerts that are fraud"),
        precision,
        expected,
        tolerance=0.005,
        kind=DERIVATION,
        explain=slip + explain,
    )


# Exercise 6.6 ---------------------------------------------------------------------------------

#: What an instructor reads exercise 6.6's answer against (English; each criterion is
#: translated where the check prints it).
TRANSFER_INVESTIGATION_RUBRIC = (
    N_(
        "Asks for the operating point: at which recall (or alert budget) the false positives "
        "were compared, and against which baseline detector."
    ),
    N_(
        "Asks what 'false positives' means: the false-positive rate among legitimate users or "
        "the share of alerts that are false (1 - precision), and notes that the base rate moves "
        "the latter."
    ),
    N_(
        "Names the fraud mix as the main reason the gain may not transfer: section 5 shows the "
        "gain grows with the share of fraud that lives only in the order of events."
    ),
    N_(
        "Asks how it was evaluated: users in one split only, a split in time (train on the past, "
        "test on the future), several seeds or a confidence interval."
    ),
    N_(
        "Proposes to measure on the bank's own data: the vendor's model and the bank's current "
        "baseline, side by side, at the bank's own operating point."
    ),
)


def check_transfer_investigation(answer: object) -> ExerciseResult:
    """Exercise 6.6 (open investigation): what a bank must know before it believes a vendor's
    '-35% false positives' applies to it. Submitted, never scored: the rubric
    :data:`TRANSFER_INVESTIGATION_RUBRIC` is printed for the instructor and the learner."""
    return check_open_answer(
        "6.6",
        _("does a fraud model's gain transfer"),
        answer,
        rubric=[_(criterion) for criterion in TRANSFER_INVESTIGATION_RUBRIC],
        min_words=40,
    )
