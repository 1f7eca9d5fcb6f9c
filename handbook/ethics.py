"""Chapter 9 - Ethics and safety: measure bias, attack a model, explain its decisions.

Three toolboxes, each written from scratch and tested against the library a practitioner uses:

- **Fairness** (tested against ``fairlearn.metrics``): selection rates per group, the
  demographic-parity difference and ratio (the four-fifths rule), equal-opportunity and
  equalized-odds differences; two mitigations, reweighing before training and group-specific
  thresholds after it, set beside fairlearn's ``ThresholdOptimizer``.
- **Adversarial robustness**: the fast gradient sign method (FGSM) and projected gradient
  descent (PGD), untargeted and targeted, always inside the valid pixel range; adversarial
  training through :func:`handbook.train.fit` with :class:`AdversarialBatches`.
- **Explanations** (tested against ``captum``): integrated gradients with captum's five
  quadrature rules (its trapezoid rule is off by a factor (m-1)/m; ours is not), the plain
  gradient, and exact Shapley values by enumerating every coalition of features.

The models are the chapter's small hiring classifier (:class:`HiringMLP`, on
:func:`handbook.datasets.hiring`) and chapter 0's :class:`handbook.models.SmallCNN`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn
from torch.nn import functional as F
from torch.utils.data import BatchSampler, DataLoader, TensorDataset, WeightedRandomSampler

from handbook import bench, train
from handbook.datasets import HIRING_FEATURES

#: The US EEOC's rule of thumb: a selection rate below 4/5 of the highest is adverse impact.
FOUR_FIFTHS = 0.8

# Fairness metrics -------------------------------------------------------------------------------


def _as_flat_array(values: object, what: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"expected {what} as a flat sequence (n,), got shape {array.shape}")
    return array


def _as_binary(values: object, what: str) -> np.ndarray:
    array = _as_flat_array(values, what)
    unexpected = sorted(set(array.tolist()) - {0, 1}, key=repr)
    if unexpected:
        raise ValueError(f"expected {what} of 0s and 1s (or booleans), found {unexpected[:5]}")
    return array.astype(np.int64)


def _aligned(groups: object, *others: np.ndarray) -> np.ndarray:
    group_array = _as_flat_array(groups, "groups")
    lengths = {len(group_array), *(len(other) for other in others)}
    if len(lengths) != 1:
        raise ValueError(
            "expected one group per sample, got lengths "
            + " and ".join(str(len(array)) for array in (*others, group_array))
        )
    if len(group_array) == 0:
        raise ValueError("cannot measure fairness on zero samples")
    return group_array


def _group_key(value: object) -> object:
    """A NumPy scalar as the plain Python value (``np.int64(1)`` -> ``1``) for dict keys."""
    return value.item() if isinstance(value, np.generic) else value


def selection_rates(predictions: object, groups: object) -> dict[object, float]:
    """The fraction of positive decisions in each group: ``{group: rate}``, groups sorted.

    ``predictions``: 0/1 decisions ``(n,)`` (1 = selected, e.g. invited or hired); ``groups``:
    the protected attribute ``(n,)``, any sortable values (ints, strings).
    """
    decisions = _as_binary(predictions, "predictions")
    group_array = _aligned(groups, decisions)
    return {
        _group_key(group): float(decisions[group_array == group].mean())
        for group in np.unique(group_array)
    }


def demographic_parity_difference(predictions: object, groups: object) -> float:
    """Largest minus smallest selection rate over the groups (0 = parity), a fraction."""
    rates = selection_rates(predictions, groups).values()
    return max(rates) - min(rates)


def demographic_parity_ratio(predictions: object, groups: object) -> float:
    """Smallest over largest selection rate (1 = parity); NaN when no group selects anyone.

    A ratio below :data:`FOUR_FIFTHS` is what the four-fifths rule calls adverse impact.
    """
    rates = selection_rates(predictions, groups).values()
    return min(rates) / max(rates) if max(rates) > 0 else math.nan


def demographic_parity_standard_error(predictions: object, groups: object) -> float:
    """The sampling error of :func:`demographic_parity_difference`, a fraction.

    The normal approximation for a difference of two independent proportions,
    ``sqrt(r_hi (1 - r_hi) / n_hi + r_lo (1 - r_lo) / n_lo)`` for the groups with the highest
    and the lowest selection rate: about how much the gap moves between two test sets of this
    size drawn from the same applicants. A gap within two standard errors of 0 is no evidence
    of a gap. 0 for a single group.
    """
    decisions = _as_binary(predictions, "predictions")
    group_array = _aligned(groups, decisions)
    rates = selection_rates(decisions, group_array)
    highest, lowest = max(rates, key=rates.get), min(rates, key=rates.get)
    if highest == lowest:
        return 0.0
    variance = sum(
        rates[group] * (1 - rates[group]) / np.sum(group_array == group)
        for group in (highest, lowest)
    )
    return float(math.sqrt(variance))


def passes_four_fifths_rule(predictions: object, groups: object) -> bool:
    """True when every group's selection rate is at least 4/5 of the highest one."""
    return demographic_parity_ratio(predictions, groups) >= FOUR_FIFTHS


def _conditional_rates(
    labels: object, predictions: object, groups: object, label: int, name: str
) -> dict[object, float]:
    """Selection rate of each group among the samples whose label is ``label``."""
    truth = _as_binary(labels, "labels")
    decisions = _as_binary(predictions, "predictions")
    if len(truth) != len(decisions):
        raise ValueError(
            f"expected as many labels as predictions, got {len(truth)} and {len(decisions)}"
        )
    group_array = _aligned(groups, decisions)
    rates = {}
    for group in np.unique(group_array):
        members = (group_array == group) & (truth == label)
        if not members.any():
            raise ValueError(
                f"group {_group_key(group)!r} has no samples with label {label}: its {name} is "
                "undefined (fairlearn would silently report 0)"
            )
        rates[_group_key(group)] = float(decisions[members].mean())
    return rates


def true_positive_rates(labels: object, predictions: object, groups: object) -> dict:
    """``{group: P(prediction = 1 | label = 1, group)}``; raises if a group has no positives."""
    return _conditional_rates(labels, predictions, groups, 1, "true-positive rate")


def false_positive_rates(labels: object, predictions: object, groups: object) -> dict:
    """``{group: P(prediction = 1 | label = 0, group)}``; raises if a group has no negatives."""
    return _conditional_rates(labels, predictions, groups, 0, "false-positive rate")


def equal_opportunity_difference(labels: object, predictions: object, groups: object) -> float:
    """Largest minus smallest true-positive rate over the groups: are the qualified (label 1)
    selected equally often whatever their group? A fraction, 0 = equal opportunity."""
    rates = true_positive_rates(labels, predictions, groups).values()
    return max(rates) - min(rates)


def equalized_odds_difference(labels: object, predictions: object, groups: object) -> float:
    """The larger of the true-positive-rate and false-positive-rate differences (0 = equalized
    odds, both error rates equal across groups)."""
    true_positive = true_positive_rates(labels, predictions, groups).values()
    false_positive = false_positive_rates(labels, predictions, groups).values()
    return max(max(true_positive) - min(true_positive), max(false_positive) - min(false_positive))


def compare_decisions(
    decisions: Mapping[str, object],
    *,
    hired: object,
    qualified: object,
    groups: object,
    group_names: Sequence[str] = ("A", "B"),
):
    """A ``pandas.DataFrame`` with one row per decision rule and its fairness and accuracy.

    ``decisions``: ``{name: 0/1 decisions (n,)}``; ``hired``: the historical labels a
    practitioner has; ``qualified``: the ground truth only a synthetic dataset can give;
    ``groups``: 0/1 group indices named by ``group_names``. Every column is in percent (gaps in
    percentage points, "±" is the gap's standard error); the rate ratio is the smallest pass rate
    over the largest, which the four-fifths rule wants at 80% or more.
    """
    import pandas as pd

    hired_array = _as_binary(hired, "hired")
    qualified_array = _as_binary(qualified, "qualified")
    present = set(selection_rates(hired_array, groups))
    if not present <= set(range(len(group_names))):
        raise ValueError(
            f"expected groups numbered 0..{len(group_names) - 1} (named {list(group_names)}), "
            f"found {sorted(present, key=repr)}"
        )
    rows = {}
    for name, values in decisions.items():
        predicted = _as_binary(values, f"decisions[{name!r}]")
        rates = selection_rates(predicted, groups)
        row = {"accuracy vs hired": 100 * float((predicted == hired_array).mean())}
        row["accuracy vs qualified"] = 100 * float((predicted == qualified_array).mean())
        for index, group_name in enumerate(group_names):
            row[f"pass rate {group_name}"] = 100 * rates.get(index, math.nan)
        row["pass-rate gap (pp)"] = 100 * demographic_parity_difference(predicted, groups)
        row["± (pp)"] = 100 * demographic_parity_standard_error(predicted, groups)
        row["rate ratio (%)"] = 100 * demographic_parity_ratio(predicted, groups)
        row["equal-opportunity gap (pp)"] = 100 * equal_opportunity_difference(
            qualified_array, predicted, groups
        )
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


# The hiring model -------------------------------------------------------------------------------


@dataclass
class Applicants:
    """A hiring split as tensors: standardised features and the outcomes.

    ``inputs``: float32 ``(n, features)``, each column standardised with ``mean``/``std`` (of the
    training split, so 0 is the average training applicant); ``hired``, ``qualified``,
    ``groups``: int64 ``(n,)`` (group 0 = A, 1 = B).
    """

    inputs: torch.Tensor
    hired: torch.Tensor
    qualified: torch.Tensor
    groups: torch.Tensor
    feature_names: tuple[str, ...]
    mean: torch.Tensor
    std: torch.Tensor


def applicant_tensors(
    split, features: Sequence[str] = HIRING_FEATURES, *, standardize_like: Applicants | None = None
) -> Applicants:
    """Turn a split of :func:`handbook.datasets.hiring` into :class:`Applicants`.

    ``features`` picks the model's columns (drop ``"group"`` for a model that never sees the
    protected attribute); ``standardize_like`` reuses the training split's mean and std.
    """
    unknown = sorted(set(features) - set(split.column_names))
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}: the split has {split.column_names}")
    table = split.to_pandas()  # one Arrow conversion: 20x faster than a list per column
    inputs = torch.from_numpy(table[list(features)].to_numpy(dtype=np.float32, copy=True))
    if standardize_like is None:
        mean, std = inputs.mean(dim=0), inputs.std(dim=0).clamp_min(1e-6)
    else:
        if standardize_like.feature_names != tuple(features):
            raise ValueError(
                f"standardize_like has features {standardize_like.feature_names}, "
                f"expected {tuple(features)}"
            )
        mean, std = standardize_like.mean, standardize_like.std

    def column(name: str) -> torch.Tensor:
        return torch.from_numpy(table[name].to_numpy(dtype=np.int64, copy=True))

    return Applicants(
        inputs=(inputs - mean) / std,
        hired=column("hired"),
        qualified=column("qualified"),
        groups=column("group"),
        feature_names=tuple(features),
        mean=mean,
        std=std,
    )


class HiringMLP(nn.Module):
    """A one-hidden-layer network: ``(batch, features) -> (batch, 2)`` logits (reject, hire)."""

    def __init__(self, features: int, hidden: int = 16):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, applicants: torch.Tensor) -> torch.Tensor:
        return self.layers(applicants)


def reweighing_weights(labels: object, groups: object) -> np.ndarray:
    """Kamiran and Calders' reweighing: ``w(g, y) = P(g) P(y) / P(g, y)`` per sample, ``(n,)``.

    Under these weights the label is independent of the group: every group has the same
    weighted positive rate. A (group, label) cell with no sample gets no weight (none needed).
    """
    truth = _as_binary(labels, "labels")
    group_array = _aligned(groups, truth)
    weights = np.zeros(len(truth), dtype=np.float64)
    for group in np.unique(group_array):
        in_group = group_array == group
        for label in (0, 1):
            cell = in_group & (truth == label)
            if cell.any():
                weights[cell] = in_group.mean() * (truth == label).mean() / cell.mean()
    return weights


def weighted_loader(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    weights: object,
    *,
    batch_size: int,
    seed: int = 0,
) -> DataLoader:
    """A loader that draws samples with probability proportional to ``weights`` (with
    replacement, one epoch = ``len(inputs)`` draws): reweighing for any unweighted loss."""
    weight_array = np.asarray(weights, dtype=np.float64)
    if weight_array.shape != (len(inputs),) or len(targets) != len(inputs):
        raise ValueError(
            f"expected one weight and one target per input ({len(inputs)}), got "
            f"{weight_array.shape[0] if weight_array.ndim else 0} weights, {len(targets)} targets"
        )
    if (weight_array < 0).any() or weight_array.sum() <= 0:
        raise ValueError("expected non-negative weights with a positive sum")
    sampler = WeightedRandomSampler(
        torch.as_tensor(weight_array),
        num_samples=len(inputs),
        replacement=True,
        generator=torch.Generator().manual_seed(seed),
    )
    # a batch of indices at a time: each batch is indexed at once, not stacked example by example
    return DataLoader(
        TensorDataset(inputs, targets),
        batch_size=None,
        sampler=BatchSampler(sampler, batch_size, drop_last=False),
        num_workers=0,
    )


def train_hiring_model(
    applicants: Applicants,
    *,
    weights: object | None = None,
    epochs: int = 30,
    batch_size: int = 128,
    learning_rate: float = 1e-2,
    seed: int = 0,
    description: str = "hiring model",
) -> HiringMLP:
    """Fit a :class:`HiringMLP` to the historical ``hired`` labels with :func:`train.fit`;
    ``weights`` (optional, ``(n,)``) resample the training set (see :func:`weighted_loader`)."""
    train.set_seed(seed)
    model = HiringMLP(applicants.inputs.shape[1])
    if weights is None:
        loader = train.make_loader(
            applicants.inputs,
            applicants.hired,
            batch_size=batch_size,
            shuffle=True,
            seed=seed,
            whole_batches=True,
        )
    else:
        loader = weighted_loader(
            applicants.inputs, applicants.hired, weights, batch_size=batch_size, seed=seed
        )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=learning_rate, weight_decay=1e-4, foreach=True
    )
    train.fit(
        model, loader, epochs=epochs, optimizer=optimizer, device="cpu", description=description
    )
    return model.eval()


@torch.no_grad()
def hire_probabilities(model: nn.Module, inputs: torch.Tensor) -> np.ndarray:
    """``P(hire)`` for each applicant, ``(n,)`` floats in [0, 1]."""
    model.eval()
    return torch.softmax(model(inputs), dim=-1)[:, 1].numpy()


def hire_log_odds(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function that attributions explain: applicants ``(n, features)`` -> log-odds of
    hiring ``(n,)`` (the hire logit minus the reject logit; 0 means a coin flip)."""
    model.eval()

    def log_odds(applicants: torch.Tensor) -> torch.Tensor:
        logits = model(applicants)
        return logits[:, 1] - logits[:, 0]

    return log_odds


class PrefitClassifier(ClassifierMixin, BaseEstimator):
    """A trained torch classifier seen through scikit-learn's eyes, for fairlearn's
    ``ThresholdOptimizer(prefit=True)``: ``predict_proba(X)`` on a NumPy array ``(n, features)``
    returns ``(n, 2)`` probabilities. It cannot be refitted: train it with :mod:`handbook.train`.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.classes_ = np.array([0, 1])  # scikit-learn's mark of a fitted classifier

    def fit(self, *_: object, **__: object) -> PrefitClassifier:
        raise TypeError(
            "PrefitClassifier wraps a model that is already trained; use it with prefit=True"
        )

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        inputs = torch.as_tensor(np.asarray(features, dtype=np.float32))
        probability = hire_probabilities(self.model, inputs).astype(np.float64)
        return np.stack([1 - probability, probability], axis=1)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return (self.predict_proba(features)[:, 1] >= 0.5).astype(np.int64)


def parity_thresholds(scores: object, groups: object, target_rate: float) -> dict[object, float]:
    """One threshold per group so that each group selects ``target_rate`` of its members.

    Post-processing for demographic parity: within each group, the ``round(target_rate *
    members)`` highest scores are at or above the group's threshold (ties may add a few).
    Returns ``{group: threshold}``; apply with :func:`apply_thresholds`.
    """
    if not 0.0 <= target_rate <= 1.0:
        raise ValueError(f"target_rate must be a fraction between 0 and 1, got {target_rate}")
    score_array = _as_flat_array(scores, "scores").astype(np.float64)
    group_array = _aligned(groups, score_array)
    thresholds = {}
    for group in np.unique(group_array):
        ranked = np.sort(score_array[group_array == group])[::-1]
        selected = int(round(target_rate * len(ranked)))
        thresholds[_group_key(group)] = float(ranked[selected - 1]) if selected else math.inf
    return thresholds


def apply_thresholds(
    scores: object, groups: object, thresholds: Mapping[object, float]
) -> np.ndarray:
    """0/1 decisions ``(n,)``: 1 where a score reaches its group's threshold."""
    score_array = _as_flat_array(scores, "scores")
    group_array = _aligned(groups, score_array)
    missing = sorted({_group_key(group) for group in np.unique(group_array)} - set(thresholds))
    if missing:
        raise ValueError(
            f"no threshold for group(s) {missing}; thresholds cover {list(thresholds)}"
        )
    limits = np.array([thresholds[_group_key(group)] for group in group_array])
    return (score_array >= limits).astype(np.int64)


# Adversarial examples ---------------------------------------------------------------------------


def _check_attack_inputs(
    images: torch.Tensor, labels: torch.Tensor, epsilon: float, bounds: tuple[float, float]
) -> None:
    if epsilon < 0:
        raise ValueError(f"epsilon is a perturbation size and must be >= 0, got {epsilon}")
    if len(images) != len(labels):
        raise ValueError(f"expected one label per image, got {len(images)} and {len(labels)}")
    low, high = bounds
    if len(images) and (images.min() < low or images.max() > high):
        raise ValueError(
            f"expected images inside the valid range [{low}, {high}], got values in "
            f"[{float(images.min()):.3g}, {float(images.max()):.3g}]"
        )


def _loss_and_gradient(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample cross-entropy ``(n,)`` and its gradient with respect to the images."""
    images = images.detach().requires_grad_(True)
    losses = F.cross_entropy(model(images), labels, reduction="none")
    (gradient,) = torch.autograd.grad(losses.sum(), images)
    return losses.detach(), gradient


def fgsm(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
    *,
    targeted: bool = False,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """The fast gradient sign method: one step of size ``epsilon`` per pixel.

    Untargeted: ``x + epsilon * sign(grad_x loss(model(x), labels))``, away from the true
    labels. Targeted (``labels`` are the targets): ``x - epsilon * sign(grad_x loss)``,
    towards them. The result is clipped to ``bounds`` (the valid pixel range), so
    ``|x_adv - x|_inf <= epsilon``. ``images``: ``(n, ...)`` in ``bounds``; returns the same
    shape, detached. The model is run in evaluation mode and left in the mode it was in.
    """
    _check_attack_inputs(images, labels, epsilon, bounds)
    with train.evaluation_mode(model):
        _, gradient = _loss_and_gradient(model, images, labels)
    direction = -1.0 if targeted else 1.0
    return (images.detach() + direction * epsilon * gradient.sign()).clamp(*bounds)


def pgd(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
    *,
    steps: int = 10,
    step_size: float | None = None,
    targeted: bool = False,
    random_start: bool = True,
    bounds: tuple[float, float] = (0.0, 1.0),
    seed: int = 0,
) -> torch.Tensor:
    """Projected gradient descent (Madry et al.): ``steps`` FGSM steps of ``step_size``
    (default ``2.5 * epsilon / steps``), each followed by a projection back onto the
    ``epsilon``-ball around ``images`` and into ``bounds``.

    Returns, per image, the worst point seen (highest loss; lowest target loss when
    ``targeted``), the clean image included, so the attack never makes the loss better for the
    model than no attack. ``random_start`` begins at a uniform point of the ball (``seed``).
    """
    _check_attack_inputs(images, labels, epsilon, bounds)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    step_size = 2.5 * epsilon / steps if step_size is None else step_size
    clean = images.detach()
    sign = -1.0 if targeted else 1.0
    current = clean.clone()
    if random_start and epsilon > 0:
        generator = torch.Generator(device=clean.device).manual_seed(seed)
        noise = torch.rand(clean.shape, generator=generator, device=clean.device)
        current = (clean + epsilon * (2 * noise - 1)).clamp(*bounds)
    with train.evaluation_mode(model):
        best = clean.clone()
        with torch.no_grad():
            best_score = sign * F.cross_entropy(model(clean), labels, reduction="none")
        for _ in range(steps):
            losses, gradient = _loss_and_gradient(model, current, labels)
            improved = sign * losses > best_score
            best[improved], best_score[improved] = current[improved], sign * losses[improved]
            current = current + sign * step_size * gradient.sign()
            current = torch.minimum(torch.maximum(current, clean - epsilon), clean + epsilon)
            current = current.clamp(*bounds).detach()
        with torch.no_grad():
            losses = F.cross_entropy(model(current), labels, reduction="none")
        improved = sign * losses > best_score
        best[improved] = current[improved]
    return best


ATTACKS = {"fgsm": fgsm, "pgd": pgd}


def accuracy_under_attack(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    epsilons: Sequence[float],
    *,
    attack: str = "fgsm",
    batch_size: int = 512,
    **options: object,
) -> list[float]:
    """Accuracy (fraction) on untargeted adversarial versions of ``images``, one per epsilon
    (epsilon 0 is the clean accuracy). ``options`` go to the attack (``steps`` for PGD)."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}: expected one of {sorted(ATTACKS)}")
    accuracies = []
    for epsilon in epsilons:
        correct = 0
        for image_batch, label_batch in zip(
            images.split(batch_size), labels.split(batch_size), strict=True
        ):
            attacked = ATTACKS[attack](model, image_batch, label_batch, epsilon, **options)
            correct += int((train.predict(model, attacked) == label_batch).sum())
        accuracies.append(correct / len(labels))
    return accuracies


class AdversarialBatches:
    """Wraps a loader of ``(images, labels)`` for adversarial training with :func:`train.fit`.

    Every batch comes back as ``(images + their adversarial versions, labels twice)``: the
    adversarial half is crafted with ``attack`` (FGSM by default, ``epsilon`` per pixel) against
    the model's weights of that moment, so the model trains on the mix of clean and attacked
    examples of Goodfellow et al. With ``keep_clean=False`` only the attacked half is used
    (Madry et al.). ``attack_options`` go to the attack.
    """

    def __init__(
        self,
        loader: DataLoader,
        model: nn.Module,
        epsilon: float,
        *,
        attack: str = "fgsm",
        keep_clean: bool = True,
        **attack_options: object,
    ):
        if attack not in ATTACKS:
            raise ValueError(f"unknown attack {attack!r}: expected one of {sorted(ATTACKS)}")
        self.loader, self.model, self.epsilon = loader, model, epsilon
        self.attack, self.keep_clean, self.attack_options = attack, keep_clean, attack_options
        self.batches_attacked = 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        device = next(self.model.parameters()).device
        for images, labels in self.loader:
            images, labels = images.to(device), labels.to(device)
            options = dict(self.attack_options)
            if self.attack == "pgd":  # a new random start for every batch, reproducibly
                options["seed"] = int(options.get("seed", 0)) + self.batches_attacked
            attacked = ATTACKS[self.attack](self.model, images, labels, self.epsilon, **options)
            self.batches_attacked += 1
            if self.keep_clean:
                yield torch.cat([images, attacked]), torch.cat([labels, labels])
            else:
                yield attacked, labels


# Explanations -----------------------------------------------------------------------------------

#: Quadrature rules of integrated gradients, named as in captum.
IG_METHODS = (
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
    "gausslegendre",
)


def path_points(steps: int, method: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """Where on the straight path (``alphas`` in [0, 1]) the gradient is taken, and the
    weight of each point (``weights``, summing to 1), for a quadrature rule of
    :data:`IG_METHODS`; both ``(steps,)``."""
    if method not in IG_METHODS:
        raise ValueError(f"unknown method {method!r}: expected one of {IG_METHODS}")
    minimum = 1 if method == "gausslegendre" else 2
    if steps < minimum:
        raise ValueError(f"{method} needs at least {minimum} steps, got {steps}")
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (nodes + 1), 0.5 * weights
    if method == "riemann_trapezoid":
        # The trapezoid rule proper: points 1/(steps-1) apart, weights summing to 1. captum
        # gives these points weights of 1/steps, so its result is (steps-1)/steps of this one.
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
        return np.linspace(0.0, 1.0, steps), weights
    weights = np.full(steps, 1.0 / steps)
    start = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method] / steps
    return start + np.arange(steps) / steps, weights


def _as_target(target: object) -> int | torch.Tensor | None:
    """``None``, an int (one output for every input) or an int64 tensor ``(n,)``."""
    if target is None or isinstance(target, int):
        return target
    target = torch.as_tensor(target, dtype=torch.int64)
    return int(target) if target.ndim == 0 else target


def _select(outputs: torch.Tensor, target: int | torch.Tensor | None) -> torch.Tensor:
    """The explained scalar of each row: ``outputs (n,)`` as is, or ``outputs[i, target_i]``."""
    if outputs.ndim == 1:
        if target is not None:
            raise ValueError("the model returns one number per input (n,): leave target=None")
        return outputs
    if target is None:
        raise ValueError(
            f"the model returns {tuple(outputs.shape)}: say which output to explain with target"
        )
    if isinstance(target, int):
        return outputs[:, target]
    return outputs.gather(1, torch.as_tensor(target).reshape(-1, 1)).squeeze(1)


def integrated_gradients(
    forward: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    baselines: torch.Tensor | float | None = None,
    *,
    target: int | torch.Tensor | None = None,
    steps: int = 50,
    method: str = "gausslegendre",
) -> torch.Tensor:
    """Integrated gradients (Sundararajan et al. 2017), one attribution per input value.

    ``IG_i(x) = (x_i - b_i) * integral_0^1 dF/dx_i (b + alpha (x - b)) d alpha``, approximated
    by ``sum_k w_k dF/dx_i(b + alpha_k (x - b))`` at the points of :func:`path_points`.
    ``forward`` maps ``(n, ...)`` to ``(n,)`` or ``(n, classes)`` (then ``target``: an int or
    ``(n,)`` indices picks the output); ``baselines`` (default zeros) broadcast to ``inputs``.
    Returns a tensor shaped like ``inputs``; their sum over each input approaches
    ``F(x) - F(b)`` (completeness). Memory grows with ``steps * n``.
    """
    inputs = inputs.detach()
    baseline = torch.zeros_like(inputs) if baselines is None else baselines
    baseline = torch.as_tensor(baseline, dtype=inputs.dtype).expand_as(inputs)
    alphas, weights = path_points(steps, method)
    shape = (steps,) + (1,) * inputs.ndim
    alpha = torch.as_tensor(alphas, dtype=inputs.dtype).reshape(shape)
    points = (baseline + alpha * (inputs - baseline)).reshape(-1, *inputs.shape[1:])
    points.requires_grad_(True)
    target = _as_target(target)
    if isinstance(target, torch.Tensor):  # the points are ordered step by step, then by input
        target = target.repeat(steps)
    explained = _select(forward(points), target)
    (gradients,) = torch.autograd.grad(explained.sum(), points)
    weight = torch.as_tensor(weights, dtype=inputs.dtype).reshape(shape)
    average_gradient = (weight * gradients.reshape(steps, *inputs.shape)).sum(dim=0)
    return (inputs - baseline) * average_gradient


def gradient_saliency(
    forward: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    *,
    target: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """The plain gradient ``dF/dx`` of the explained output, shaped like ``inputs`` (captum's
    ``Saliency`` with ``abs=False``): how a small change of each input value moves the output."""
    points = inputs.detach().clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(_select(forward(points), _as_target(target)).sum(), points)
    return gradient


def completeness_gap(
    forward: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    attributions: torch.Tensor,
    baselines: torch.Tensor | float | None = None,
    *,
    target: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """``sum(attributions) - (F(x) - F(b))`` per input, ``(n,)``: how far an attribution is
    from adding up to the change of the output (0 for exact integrated gradients)."""
    baseline = torch.zeros_like(inputs) if baselines is None else baselines
    baseline = torch.as_tensor(baseline, dtype=inputs.dtype).expand_as(inputs)
    target = _as_target(target)
    with torch.no_grad():
        change = _select(forward(inputs), target) - _select(forward(baseline), target)
    return attributions.reshape(len(inputs), -1).sum(dim=1) - change


def shapley_values(
    forward: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    background: torch.Tensor,
    *,
    target: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """Exact Shapley values of each feature, by enumerating all ``2^d`` coalitions.

    A coalition S keeps the features of S from the input and takes the others from a
    background row; the value of feature i is its marginal contribution
    ``v(S + i) - v(S)`` averaged with weights ``|S|! (d - |S| - 1)! / d!``. With a one-row
    ``background`` this is the baseline Shapley value of captum's ``ShapleyValues``; with a
    sample of the data it is SHAP's interventional value (averaged over the rows).
    ``inputs``: ``(n, d)``; ``background``: ``(k, d)``; returns ``(n, d)``, each row summing
    to ``F(x)`` minus the mean of ``F`` over the background. Costs ``n * k * 2^d`` evaluations.
    """
    if inputs.ndim != 2 or background.ndim != 2 or background.shape[1] != inputs.shape[1]:
        raise ValueError(
            "expected inputs (n, d) and background (k, d) with the same d, got "
            f"{tuple(inputs.shape)} and {tuple(background.shape)}"
        )
    count, features = inputs.shape
    if features > 16:
        raise ValueError(f"exact Shapley values need 2^d evaluations: d={features} is too many")
    coalitions = torch.arange(2**features)
    masks = ((coalitions.reshape(-1, 1) >> torch.arange(features)) & 1).to(inputs.dtype)
    sizes = masks.sum(dim=1).long()
    weight_of_size = torch.tensor(
        [
            math.factorial(size) * math.factorial(features - size - 1) / math.factorial(features)
            for size in range(features)
        ],
        dtype=torch.float64,
    )
    target = _as_target(target)
    if isinstance(target, torch.Tensor):  # each input is followed by its 2^d coalitions
        target = target.repeat_interleave(2**features)
    values = torch.zeros(count, features, dtype=torch.float64)
    with torch.no_grad():
        for row in background:
            mixed = masks * inputs[:, None, :] + (1 - masks) * row  # (n, 2^d, d)
            worth = _select(forward(mixed.reshape(-1, features)), target)
            worth = worth.reshape(count, 2**features).double()
            for feature in range(features):
                without = coalitions[(coalitions >> feature) & 1 == 0]
                gain = worth[:, without | (1 << feature)] - worth[:, without]
                values[:, feature] += (gain * weight_of_size[sizes[without]]).sum(dim=1)
    return (values / len(background)).to(inputs.dtype)


def mean_absolute_attribution(
    attributions: torch.Tensor, feature_names: Sequence[str]
) -> dict[str, float]:
    """Global importance: the mean of ``|attribution|`` of each feature, ``{name: value}``."""
    if attributions.ndim != 2 or attributions.shape[1] != len(feature_names):
        raise ValueError(
            f"expected attributions (n, {len(feature_names)}), got {tuple(attributions.shape)}"
        )
    means = attributions.abs().mean(dim=0)
    return {name: float(value) for name, value in zip(feature_names, means, strict=True)}


# Benchmarks -------------------------------------------------------------------------------------


def benchmarks(smoke: bool = False) -> list[bench.Measurement]:
    """Cost of the chapter's attacks and explanations with an untrained SmallCNN on digits:
    FGSM (one gradient per image) against PGD (one per step), and integrated gradients from
    scratch against captum's (the same 32 Gauss-Legendre points). Smoke mode: 64 digits, no
    PGD-40, fewer repeats."""
    from captum.attr import IntegratedGradients

    from handbook.datasets import digits, image_tensors
    from handbook.models import SmallCNN

    count = 64 if smoke else 256
    images, labels = image_tensors(digits()["test"])
    images, labels = images[:count], labels[:count]
    train.set_seed(0)
    model = SmallCNN().eval()
    repeats = 3 if smoke else 10
    attacks = {"FGSM": lambda: fgsm(model, images, labels, 0.1)}
    for steps in (10,) if smoke else (10, 40):
        attacks[f"PGD, {steps} steps"] = partial(pgd, model, images, labels, 0.1, steps=steps)
    rows = bench.compare(
        f"ch09 attacks: {count} digits, eps 0.1",
        attacks,
        baseline="FGSM",
        repeats=repeats,
        details={"FGSM": "1 gradient per image"}
        | {name: f"{name.split()[1]} gradients per image" for name in attacks if "PGD" in name},
    )
    explainer = IntegratedGradients(model)
    batch = images[:32]
    return rows + bench.compare(
        "ch09 integrated gradients: 32 digits",
        {
            "captum": lambda: explainer.attribute(batch, target=0, n_steps=32),
            "from scratch": lambda: integrated_gradients(model, batch, target=0, steps=32),
        },
        baseline="captum",
        repeats=repeats,
        details={"from scratch": "handbook.ethics.integrated_gradients"},
    )
