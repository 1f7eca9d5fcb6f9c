"""Chapter 7 - Continual learning: keep what a model knows while it learns what is new.

A news classifier meets a stream in which new topics arrive period after period
(:func:`handbook.datasets.news_stream`). Trained on the new period alone it forgets the old
topics (catastrophic forgetting). The article's two remedies, each written from scratch and
tested against an independent computation:

- **Elastic Weight Consolidation** (Kirkpatrick et al. 2017): the diagonal of the Fisher
  information, :func:`diagonal_fisher` (per-example gradients with ``torch.func``; the loop of
  :func:`diagonal_fisher_loop` and the closed form of a softmax regression agree with it), and
  the quadratic penalty ``lambda/2 sum_i F_i (theta_i - theta*_i)^2`` of :class:`EWC`, a wrapper
  that plugs into :func:`handbook.train.fit` like :class:`handbook.compression.Distiller`.
- **Replay**: :func:`reservoir_sample` (Vitter's algorithm R, one pass, uniform) and
  :class:`ReplayMemory`, which keeps a fixed fraction (the article's 10%) of every period.

:func:`run_stream` trains one strategy of :data:`STRATEGY_NAMES` through the stream and counts
its compute exactly (examples through forward + backward, and the FLOPs that
``torch.utils.flop_counter.FlopCounterMode`` counts for them), so that the article's "65% of
compute saved" (claim C20) is measured rather than assumed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from handbook import bench, config, sharing, train

#: Hashed bag-of-words features per sentence (see :func:`bag_of_words`).
FEATURES = 1024

# Features and the model -------------------------------------------------------------------------


def bag_of_words(texts: Sequence[str], features: int = FEATURES) -> Tensor:
    """Word counts hashed into ``features`` buckets: float32 ``(n, features)``.

    The hashing trick (scikit-learn's ``HashingVectorizer``, MurmurHash3, no sign flipping, no
    normalisation) needs no vocabulary, so words of topics that arrive later get features
    without refitting anything: what a stream needs. Different words may share a bucket.
    """
    from sklearn.feature_extraction.text import HashingVectorizer

    vectorizer = HashingVectorizer(n_features=features, alternate_sign=False, norm=None)
    counts = vectorizer.transform(list(texts)).toarray()
    return torch.from_numpy(counts.astype(np.float32))


#: Hidden-layer activations :class:`NewsClassifier` accepts.
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class NewsClassifier(nn.Module):
    """A one-hidden-layer network: ``(batch, features)`` counts -> ``(batch, classes)`` logits.

    One output per topic of the whole stream from the start (a single head, no task id): the
    logits of topics not yet seen are trained down, which is part of why fine-tuning forgets.
    ``activation`` defaults to tanh: with ReLU, fine-tuning period after period leaves most
    hidden units dead (never positive), and the network loses the plasticity to learn the
    topics that come later (the chapter shows it).
    """

    def __init__(
        self,
        features: int = FEATURES,
        classes: int = 8,
        hidden: int = 64,
        activation: str = "tanh",
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}: expected one of {sorted(ACTIVATIONS)}"
            )
        self.layers = nn.Sequential(
            nn.Linear(features, hidden), ACTIVATIONS[activation](), nn.Linear(hidden, classes)
        )

    def forward(self, inputs: Tensor) -> Tensor:
        return self.layers(inputs)

    @torch.no_grad()
    def dead_units(self, inputs: Tensor) -> float:
        """Fraction of hidden units whose activation is never positive on ``inputs`` (a dead
        ReLU gets no gradient again: it is lost for every later period)."""
        hidden = self.layers[1](self.layers[0](inputs))
        return float((hidden.max(dim=0).values <= 0).float().mean())


@dataclass
class Period:
    """One period of the stream as tensors: training and test features ``(n, features)``,
    int64 labels ``(n,)``, and the topics (label ids) that first appear in it; ``first_runs``
    keeps the network :func:`run_stream` trained on it as a stream's first period."""

    inputs: Tensor
    targets: Tensor
    test_inputs: Tensor
    test_targets: Tensor
    new_classes: tuple[int, ...]
    #: What :func:`run_stream` trained on this period when it came first, by seed and settings.
    first_runs: dict = field(default_factory=dict, init=False, repr=False, compare=False)


def stream_periods(data, features: int = FEATURES) -> list[Period]:
    """Split a :func:`handbook.datasets.news_stream` ``DatasetDict`` into :class:`Period` s.

    Any ``DatasetDict`` with ``text``, ``label`` and ``period`` columns in its ``train`` and
    ``test`` splits works (AG News with a period assigned per class, for instance).
    """
    splits = {}
    for name in ("train", "test"):
        table = data[name].to_pandas()
        missing = {"text", "label", "period"} - set(table.columns)
        if missing:
            raise ValueError(f"the {name} split lacks the column(s) {sorted(missing)}")
        splits[name] = (
            bag_of_words(table["text"].tolist(), features),
            torch.from_numpy(table["label"].to_numpy(dtype=np.int64, copy=True)),
            table["period"].to_numpy(),
        )
    train_inputs, train_targets, train_period = splits["train"]
    test_inputs, test_targets, test_period = splits["test"]
    periods, seen = [], set()
    for period in sorted(set(train_period.tolist())):
        rows, test_rows = train_period == period, test_period == period
        if not test_rows.any():
            raise ValueError(f"period {period} has training rows but no test rows")
        labels = set(train_targets[torch.from_numpy(rows)].tolist())
        periods.append(
            Period(
                train_inputs[torch.from_numpy(rows)],
                train_targets[torch.from_numpy(rows)],
                test_inputs[torch.from_numpy(test_rows)],
                test_targets[torch.from_numpy(test_rows)],
                tuple(sorted(labels - seen)),
            )
        )
        seen |= labels
    return periods


# The Fisher information ---------------------------------------------------------------------------

FISHER_KINDS = ("empirical", "expected")


def per_example_gradients(model: nn.Module, inputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
    """The gradient of ``log p(target | input)`` for every example: ``{name: (n, *shape)}``.

    ``torch.func``: ``grad`` differentiates the log-likelihood of one example with respect to
    the parameters, ``vmap`` maps it over the batch, so all ``n`` gradients come from one
    batched computation. The model is run in evaluation mode (no dropout noise in the Fisher).
    """
    from torch.func import functional_call, grad, vmap

    parameters = {name: value.detach() for name, value in model.named_parameters()}
    buffers = {name: value.detach() for name, value in model.named_buffers()}

    def log_likelihood(params: dict[str, Tensor], example: Tensor, target: Tensor) -> Tensor:
        logits = functional_call(model, (params, buffers), (example.unsqueeze(0),))
        return -F.cross_entropy(logits, target.unsqueeze(0))

    with train.evaluation_mode(model):
        return vmap(grad(log_likelihood), in_dims=(None, 0, 0))(parameters, inputs, targets)


def _check_examples(inputs: Tensor, targets: Tensor) -> None:
    if len(inputs) != len(targets):
        raise ValueError(f"expected one target per input, got {len(inputs)} and {len(targets)}")
    if len(inputs) == 0:
        raise ValueError("the Fisher information is an average over examples: got none")


def diagonal_fisher(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    *,
    kind: str = "empirical",
    batch_size: int = 64,
) -> dict[str, Tensor]:
    """The diagonal of the Fisher information of ``model``'s parameters: ``{name: shape}``.

    ``F_i = (1/n) sum_n (d log p(y_n | x_n) / d theta_i)^2``, the mean of squared per-example
    gradients (never the square of a batch gradient). ``kind="empirical"`` takes ``y_n`` = the
    given ``targets`` (what EWC implementations usually compute); ``kind="expected"`` averages
    over the model's own predictive distribution, ``sum_c p(c | x_n) (d log p(c | x_n))^2``,
    the Fisher proper (``targets`` are then unused; it costs one gradient per class).
    ``inputs``: ``(n, ...)``; ``targets``: int64 ``(n,)``; processed ``batch_size`` at a time:
    ``vmap`` holds one gradient per example of the batch (``batch_size`` copies of the
    parameters), so a large batch trades arithmetic for memory traffic and can be slower than
    a loop (``make bench`` times both).
    """
    if kind not in FISHER_KINDS:
        raise ValueError(f"unknown Fisher kind {kind!r}: expected one of {FISHER_KINDS}")
    _check_examples(inputs, targets)
    total = {name: torch.zeros_like(value) for name, value in model.named_parameters()}
    for batch, batch_targets in zip(
        inputs.split(batch_size), targets.split(batch_size), strict=True
    ):
        if kind == "empirical":
            weighted = [(per_example_gradients(model, batch, batch_targets), None)]
        else:
            with torch.no_grad(), train.evaluation_mode(model):
                probabilities = F.softmax(model(batch), dim=-1)
            weighted = [
                (per_example_gradients(model, batch, torch.full_like(batch_targets, c)), c)
                for c in range(probabilities.shape[1])
            ]
        for gradients, label in weighted:
            for name, gradient in gradients.items():
                squares = gradient.pow(2)
                if label is not None:
                    shape = (-1,) + (1,) * (squares.ndim - 1)
                    squares = squares * probabilities[:, label].reshape(shape)
                total[name] += squares.sum(dim=0)
    return {name: value / len(inputs) for name, value in total.items()}


def diagonal_fisher_loop(model: nn.Module, inputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
    """The empirical :func:`diagonal_fisher` the slow way: one backward pass per example.

    The same numbers; kept as the reference that ``make bench`` times against ``vmap``.
    """
    _check_examples(inputs, targets)
    names, parameters = zip(*model.named_parameters(), strict=True)
    total = [torch.zeros_like(parameter) for parameter in parameters]
    with train.evaluation_mode(model):
        for example, target in zip(inputs, targets, strict=True):
            log_likelihood = -F.cross_entropy(model(example.unsqueeze(0)), target.unsqueeze(0))
            gradients = torch.autograd.grad(log_likelihood, parameters)
            for accumulated, gradient in zip(total, gradients, strict=True):
                accumulated += gradient.pow(2)
    return {name: value / len(inputs) for name, value in zip(names, total, strict=True)}


# Elastic Weight Consolidation -------------------------------------------------------------------


class EWC(nn.Module):
    """A network with the EWC penalty, in the shape :func:`handbook.train.fit` wants.

    ``learner(inputs)`` (or ``learner(inputs, weights)``, one loss weight per example) returns
    the network's logits; :meth:`loss` is the ``loss_fn`` to pass to ``fit``: the (weighted)
    cross-entropy plus, in training mode, :meth:`penalty`,
    ``strength / 2 * sum_i F_i (theta_i - theta*_i)^2``. :meth:`consolidate` is called after
    each period: it adds that period's Fisher to the accumulated one and moves the anchor
    ``theta*`` to the current parameters (the "online" EWC of Schwarz et al. 2018; with one
    old period it is Kirkpatrick et al.'s). With ``strength=0`` or before the first
    consolidation the penalty is 0, so the same wrapper trains every strategy.

    ``examples_trained`` counts the examples forwarded in training mode: the compute ledger.
    """

    def __init__(self, network: nn.Module, strength: float = 0.0):
        super().__init__()
        if strength < 0:
            raise ValueError(f"the EWC strength (lambda) must be non-negative, got {strength}")
        self.network = network
        self.strength = float(strength)
        self.fisher: dict[str, Tensor] = {}
        self.anchor: dict[str, Tensor] = {}
        self.examples_trained = 0
        self._weights: Tensor | None = None

    def forward(self, inputs: Tensor, weights: Tensor | None = None) -> Tensor:
        if self.training:
            self.examples_trained += len(inputs)
            self._weights = weights
        return self.network(inputs)

    def penalty(self) -> Tensor:
        """``strength / 2 * sum_i F_i (theta_i - theta*_i)^2``, a scalar tensor (0 when there
        is nothing to consolidate); its gradient is ``strength * F * (theta - theta*)``."""
        first = next(self.network.parameters())
        penalty = torch.zeros((), dtype=first.dtype, device=first.device)
        if self.strength == 0 or not self.fisher:
            return penalty
        for name, parameter in self.network.named_parameters():
            penalty = penalty + (self.fisher[name] * (parameter - self.anchor[name]) ** 2).sum()
        return self.strength / 2 * penalty

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """The cross-entropy (weighted when the batch came with weights) + the penalty while
        training; the plain mean cross-entropy in evaluation mode."""
        losses = F.cross_entropy(logits, targets, reduction="none")
        weights, self._weights = self._weights, None
        if not self.training:
            return losses.mean()
        data_loss = losses.mean() if weights is None else (losses * weights).sum() / weights.sum()
        return data_loss + self.penalty()

    @torch.no_grad()
    def consolidate(self, fisher: Mapping[str, Tensor]) -> None:
        """Add ``fisher`` (``{name: tensor}``, as :func:`diagonal_fisher` returns) to the
        accumulated Fisher and anchor the penalty at the current parameters."""
        for name, parameter in self.network.named_parameters():
            if name not in fisher or fisher[name].shape != parameter.shape:
                raise ValueError(
                    f"expected a Fisher entry of shape {tuple(parameter.shape)} for {name!r}"
                )
            previous = self.fisher.get(name, torch.zeros_like(parameter))
            self.fisher[name] = previous + fisher[name].detach().to(parameter.device)
            self.anchor[name] = parameter.detach().clone()


# Replay -----------------------------------------------------------------------------------------


def reservoir_sample(stream: Iterable, capacity: int, rng: np.random.Generator) -> list:
    """A uniform random sample of ``capacity`` items of ``stream``, read once (Vitter's R).

    Keep the first ``capacity`` items; item ``i`` (counting from 0) then replaces a random
    slot with probability ``capacity / (i + 1)``. Every subset of ``capacity`` items is equally
    likely, whatever the stream's length, which need not be known in advance; memory holds
    ``capacity`` items. A stream shorter than ``capacity`` is kept whole. Slots keep their
    order of replacement, not the stream's order.
    """
    if capacity < 0:
        raise ValueError(f"capacity must be non-negative, got {capacity}")
    reservoir: list = []
    for index, item in enumerate(stream):
        if index < capacity:
            reservoir.append(item)
            continue
        slot = int(rng.integers(index + 1))
        if slot < capacity:
            reservoir[slot] = item
    return reservoir


class ReplayMemory:
    """Keeps a fraction of every period's training examples for replay.

    ``add(inputs, targets)`` streams a period's examples through :func:`reservoir_sample`
    with a capacity of ``round(fraction * len(period))`` (per class with ``balanced=True``:
    ``round(fraction * count)`` of every class), so the memory always holds the article's
    "10% of the old data", every old example with the same chance. One reservoir per period:
    a single fixed-capacity reservoir would keep a shrinking share of a growing stream, and a
    uniform sample cannot be enlarged without the examples it already dropped.
    """

    def __init__(self, fraction: float, *, seed: int = 0, balanced: bool = False):
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.fraction, self.balanced = fraction, balanced
        self.rng = np.random.default_rng(seed)
        self.seen = 0
        self._inputs: list[Tensor] = []
        self._targets: list[Tensor] = []

    def add(self, inputs: Tensor, targets: Tensor) -> None:
        """Offer one period's examples ``(n, ...)`` and labels ``(n,)``; keep a fraction."""
        if len(inputs) != len(targets):
            raise ValueError(f"expected one target per input, got {len(inputs)} and {len(targets)}")
        if self.balanced:
            chosen = []
            for label in torch.unique(targets).tolist():
                members = torch.nonzero(targets == label).flatten().tolist()
                chosen += reservoir_sample(members, round(self.fraction * len(members)), self.rng)
        else:
            chosen = reservoir_sample(
                range(len(inputs)), round(self.fraction * len(inputs)), self.rng
            )
        kept = torch.as_tensor(sorted(chosen), dtype=torch.int64)
        self._inputs.append(inputs[kept])
        self._targets.append(targets[kept])
        self.seen += len(inputs)

    def __len__(self) -> int:
        return sum(len(targets) for targets in self._targets)

    @property
    def inputs(self) -> Tensor:
        """Every kept example, ``(len(self), ...)``."""
        return torch.cat(self._inputs) if self._inputs else torch.empty(0)

    @property
    def targets(self) -> Tensor:
        """Their labels, int64 ``(len(self),)``."""
        return torch.cat(self._targets) if self._targets else torch.empty(0, dtype=torch.int64)


# Strategies and compute -------------------------------------------------------------------------

#: The strategies :func:`run_stream` knows, in the order the chapter compares them.
STRATEGY_NAMES = ("fine-tune", "EWC", "replay", "EWC + replay", "retrain")


@dataclass
class StreamConfig:
    """How every strategy trains: ``epochs`` over its training set in each period, Adam at
    ``learning_rate``, batches of ``batch_size``; EWC's ``ewc_strength`` (lambda) and the
    ``fisher_samples`` examples of each period its Fisher is averaged over; the replay
    memory's ``replay_fraction``, with ``replay_weight`` the loss weight of a replayed example
    (``None``: ``1 / replay_fraction``, so the memory counts as much as the old data it stands
    for); the network's ``hidden`` width."""

    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 3e-3
    hidden: int = 64
    ewc_strength: float = 100.0
    fisher_samples: int = 500
    replay_fraction: float = 0.1
    replay_weight: float | None = None
    activation: str = "tanh"


@dataclass
class StreamResult:
    """One strategy through the whole stream.

    ``accuracy[i, j]``: accuracy (fraction) on period ``j``'s test set after training on
    period ``i`` (0 for topics not yet seen: a single head cannot guess them); ``seen_accuracy
    [i]``: accuracy on the test sets of periods ``0..i`` together, after period ``i``. Per
    period: ``training_examples`` (examples through forward + backward while training),
    ``fisher_examples`` (through forward + backward for EWC's Fisher), ``flops`` (both, as
    ``FlopCounterMode`` counts them), ``memory_size`` (replayed examples) and ``seconds``.
    """

    strategy: str
    accuracy: np.ndarray
    seen_accuracy: list[float] = field(default_factory=list)
    training_examples: list[int] = field(default_factory=list)
    fisher_examples: list[int] = field(default_factory=list)
    flops: list[float] = field(default_factory=list)
    memory_size: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def total_flops(self) -> float:
        return float(sum(self.flops))

    @property
    def final_accuracy(self) -> float:
        """Accuracy on every period's test set after the last period."""
        return self.seen_accuracy[-1]


def training_flops_per_example(model: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    """FLOPs of one training step (forward + backward of the cross-entropy) per example.

    Measured with ``torch.utils.flop_counter.FlopCounterMode`` on ``inputs`` ``(n, ...)``: it
    counts matrix products (a multiply-add = 2 FLOPs) and nothing element-wise (activations,
    the loss, the optimizer's update, EWC's penalty). For a stack of linear layers the count is
    exactly proportional to the batch size, so examples x this number is the training cost.
    """
    from torch.utils.flop_counter import FlopCounterMode

    probe = copy.deepcopy(model)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(probe(inputs), targets).backward()
    return counter.get_total_flops() / len(inputs)


def counted_flops(function: Callable[[], object]) -> tuple[object, int]:
    """``(function(), FLOPs it ran)`` as ``FlopCounterMode`` counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        result = function()
    return result, int(counter.get_total_flops())


def accuracy_of(model: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    """Fraction of ``inputs`` whose predicted class is the target."""
    return float((train.predict(model, inputs) == targets).float().mean())


def run_stream(
    periods: Sequence[Period],
    strategy: str,
    settings: StreamConfig | None = None,
    *,
    classes: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> StreamResult:
    """Train ``strategy`` through ``periods`` and measure accuracy and compute after each.

    - ``"fine-tune"``: each period, train the current network on the new period only;
    - ``"EWC"``: the same with :class:`EWC`'s penalty; after each period the Fisher of
      ``fisher_samples`` of its examples is consolidated;
    - ``"replay"``: train on the new period plus :class:`ReplayMemory` (``replay_fraction``
      of every earlier period), replayed examples weighted by ``replay_weight``;
    - ``"EWC + replay"``: both;
    - ``"retrain"``: each period, a fresh network trained on every period so far.

    Every strategy trains ``epochs`` epochs per period with the same optimizer settings and
    starts from the same initial network (``seed``). ``classes`` defaults to the largest label
    + 1. Compute counts training and Fisher passes, not evaluation (the same for all); the
    Fisher's FLOPs are counted on its first computation and reused for later ones of as many
    examples (the same matrix products).

    The first period is the same for every strategy (nothing old to keep, no replay, no Fisher
    yet), so it is trained once per seed and training settings: the network, its Fisher and
    the seconds they took are kept in ``periods[0].first_runs``, and a later run on the same
    periods starts from them, counting the same examples, FLOPs and seconds.
    """
    if strategy not in STRATEGY_NAMES:
        raise ValueError(f"unknown strategy {strategy!r}: expected one of {STRATEGY_NAMES}")
    if not periods:
        raise ValueError("expected at least one period")
    settings = settings or StreamConfig()
    classes = classes or 1 + max(int(period.targets.max()) for period in periods)
    features = periods[0].inputs.shape[1]
    uses_ewc, uses_replay = "EWC" in strategy, "replay" in strategy

    def fresh_network() -> nn.Module:
        train.set_seed(seed)
        return NewsClassifier(features, classes, settings.hidden, settings.activation)

    learner = EWC(fresh_network(), settings.ewc_strength if uses_ewc else 0.0)
    memory = ReplayMemory(settings.replay_fraction, seed=seed) if uses_replay else None
    replay_weight = settings.replay_weight or 1.0 / settings.replay_fraction
    per_example_flops = training_flops_per_example(
        learner.network, periods[0].inputs[:8], periods[0].targets[:8]
    )
    result = StreamResult(strategy, np.zeros((len(periods), len(periods))))
    # FlopCounterMode counts matrix products by their shapes, so a Fisher of as many examples
    # costs what the first one counted; counting again would only slow the run down
    fisher_flops_by_size: dict[int, int] = {}
    from tqdm.auto import tqdm

    first_runs = periods[0].first_runs.setdefault(
        (seed, classes)
        + tuple(
            getattr(settings, name)
            for name in ("epochs", "batch_size", "learning_rate", "hidden", "activation")
        ),
        {},
    )
    live = progress and config.live_progress()
    for index in tqdm(range(len(periods)), desc=strategy, disable=not live, leave=False):
        period = periods[index]
        start, earlier_seconds = sharing.clock(), 0.0
        if strategy == "retrain":
            learner = EWC(fresh_network())
        before = learner.examples_trained
        if index == 0 and "network" in first_runs:
            learner.network.load_state_dict(first_runs["network"])
            learner.examples_trained += first_runs["examples"]
            earlier_seconds += first_runs["seconds"]
        else:
            _train_period(
                learner, periods[: index + 1], strategy, memory, replay_weight, settings, seed
            )
            if index == 0:
                first_runs.update(
                    network=copy.deepcopy(learner.network.state_dict()),
                    examples=learner.examples_trained - before,
                    seconds=sharing.clock() - start,
                )
        trained = learner.examples_trained - before
        fisher_examples, fisher_flops = 0, 0
        if uses_ewc:
            sample = (
                period.inputs[: settings.fisher_samples],
                period.targets[: settings.fisher_samples],
            )
            fisher_examples = len(sample[1])
            if index == 0 and ("fisher", fisher_examples) in first_runs:
                fisher, fisher_flops, seconds = first_runs["fisher", fisher_examples]
                earlier_seconds += seconds
            else:
                fisher_start = sharing.clock()
                fisher_call = partial(diagonal_fisher, learner.network, *sample)
                if fisher_examples in fisher_flops_by_size:
                    fisher, fisher_flops = fisher_call(), fisher_flops_by_size[fisher_examples]
                else:
                    fisher, fisher_flops = counted_flops(fisher_call)
                    fisher_flops_by_size[fisher_examples] = fisher_flops
                if index == 0:
                    seconds = sharing.clock() - fisher_start
                    first_runs["fisher", fisher_examples] = (fisher, fisher_flops, seconds)
            learner.consolidate(fisher)
        if memory is not None:
            memory.add(period.inputs, period.targets)
        network = learner.network
        for later in range(len(periods)):
            result.accuracy[index, later] = accuracy_of(
                network, periods[later].test_inputs, periods[later].test_targets
            )
        seen_inputs = torch.cat([earlier.test_inputs for earlier in periods[: index + 1]])
        seen_targets = torch.cat([earlier.test_targets for earlier in periods[: index + 1]])
        result.seen_accuracy.append(accuracy_of(network, seen_inputs, seen_targets))
        result.training_examples.append(trained)
        result.fisher_examples.append(fisher_examples)
        result.flops.append(trained * per_example_flops + fisher_flops)
        result.memory_size.append(len(memory) if memory is not None else 0)
        result.seconds.append(sharing.clock() - start + earlier_seconds)
    if progress and not live:
        print(
            f"{strategy}: {len(periods)} periods in {sum(result.seconds):.1f} s, "
            f"final accuracy {result.final_accuracy:.3f}"
        )
    return result


def _train_period(
    learner: EWC,
    periods: Sequence[Period],
    strategy: str,
    memory: ReplayMemory | None,
    replay_weight: float,
    settings: StreamConfig,
    seed: int,
) -> None:
    """Train ``learner`` on the last of ``periods`` as ``strategy`` does: on that period, plus
    the replay memory, or (``"retrain"``) on every period so far."""
    index, period = len(periods) - 1, periods[-1]
    inputs, targets = period.inputs, period.targets
    weights = torch.ones(len(targets))
    if strategy == "retrain":
        inputs = torch.cat([earlier.inputs for earlier in periods])
        targets = torch.cat([earlier.targets for earlier in periods])
        weights = torch.ones(len(targets))
    elif memory is not None and len(memory):
        inputs = torch.cat([inputs, memory.inputs])
        targets = torch.cat([targets, memory.targets])
        weights = torch.cat([weights, torch.full((len(memory),), replay_weight)])
    train.fit(
        learner,
        train.make_loader(
            inputs,
            weights,
            targets,
            batch_size=settings.batch_size,
            shuffle=True,
            seed=seed + index,
            whole_batches=True,
        ),
        epochs=settings.epochs,
        optimizer=torch.optim.Adam(
            learner.network.parameters(), lr=settings.learning_rate, foreach=True
        ),
        loss_fn=learner.loss,
        device="cpu",
        progress=False,
    )


# Measures ---------------------------------------------------------------------------------------


def _square(accuracy: object) -> np.ndarray:
    matrix = np.asarray(accuracy, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.size == 0:
        raise ValueError(f"expected a square (periods, periods) matrix, got shape {matrix.shape}")
    return matrix


def average_accuracy(accuracy: object) -> float:
    """Mean accuracy over every period after the last one: the mean of the matrix's last row."""
    return float(_square(accuracy)[-1].mean())


def average_forgetting(accuracy: object) -> float:
    """Chaudhry et al.'s forgetting: for each period but the last, the best accuracy it ever had
    before the last period minus its final accuracy, averaged (0 with a single period).

    ``accuracy[i, j]``: accuracy on period ``j`` after training on period ``i`` (``(T, T)``);
    only entries with ``i >= j`` are read. Negative when a period ends better than it ever was.
    """
    matrix = _square(accuracy)
    periods = len(matrix)
    if periods == 1:
        return 0.0
    drops = [matrix[j : periods - 1, j].max() - matrix[-1, j] for j in range(periods - 1)]
    return float(np.mean(drops))


def compute_saved(incremental: float, retraining: float) -> float:
    """``1 - incremental / retraining``: the fraction of compute saved (0.65 = "65% saved")."""
    if retraining <= 0:
        raise ValueError(f"the retraining compute must be positive, got {retraining}")
    return 1.0 - incremental / retraining


def replay_compute_share(old_to_new: object, replay_fraction: float) -> np.ndarray:
    """Compute of one incremental update relative to retraining on everything, same epochs:
    ``(1 + f r) / (1 + r)`` for old data ``r`` times the new data and replay fraction ``f``.
    One minus it is the saving; the Fisher and element-wise work are left out."""
    ratio = np.asarray(old_to_new, dtype=np.float64)
    if np.any(ratio < 0) or not 0.0 <= replay_fraction <= 1.0:
        raise ValueError("expected old_to_new >= 0 and a replay fraction in [0, 1]")
    return (1.0 + replay_fraction * ratio) / (1.0 + ratio)


# Benchmarks -------------------------------------------------------------------------------------


def benchmarks(smoke: bool = False) -> list[bench.Measurement]:
    """The diagonal Fisher of the chapter's news classifier (untrained, 1024 hashed features,
    8 topics): one backward pass per example against per-example gradients with ``torch.func``
    (``vmap`` over ``grad``) 64 examples per call and, in full mode, all 256 in one call, whose
    per-example gradients (256 copies of the 65,536 first-layer weights) no longer fit in cache.
    Smoke mode: 64 examples, fewer repeats."""
    count = 64 if smoke else 256
    generator = torch.Generator().manual_seed(0)
    inputs = torch.poisson(torch.full((count, FEATURES), 0.013), generator=generator)
    targets = torch.randint(0, 8, (count,), generator=generator)
    train.set_seed(0)
    model = NewsClassifier()
    variants = {
        "loop": partial(diagonal_fisher_loop, model, inputs, targets),
        "vmap, 64 per call": partial(diagonal_fisher, model, inputs, targets, batch_size=64),
    }
    details = {"loop": "one backward per example", "vmap, 64 per call": "torch.func"}
    if count > 64:
        variants[f"vmap, {count} per call"] = partial(
            diagonal_fisher, model, inputs, targets, batch_size=count
        )
        details[f"vmap, {count} per call"] = "torch.func, one call"
    return bench.compare(
        f"ch07 diagonal Fisher: {count} examples",
        variants,
        baseline="loop",
        repeats=3 if smoke else 7,
        details=details,
    )
