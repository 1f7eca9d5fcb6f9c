"""Chapter 7: the Fisher against closed forms and an independent per-example loop, EWC's penalty
and its gradient against autograd, reservoir sampling against the uniform distribution, and the
compute ledger against FlopCounterMode run over real training."""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter

import matplotlib.figure
import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from handbook import continual, datasets, plots, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _seeded_linear(features: int, classes: int, seed: int) -> nn.Linear:
    torch.manual_seed(seed)
    model = nn.Linear(features, classes)
    with torch.no_grad():
        model.weight.mul_(3.0)  # confident enough that the classes' gradients differ a lot
    return model


def _examples(count: int, features: int, classes: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(count, features, generator=generator)
    return inputs, torch.randint(0, classes, (count,), generator=generator)


# The Fisher information ---------------------------------------------------------------------------

SOFTMAX_SHAPES = [(1, 3, 2), (7, 4, 2), (33, 5, 3), (64, 2, 6)]  # (examples, features, classes)


@pytest.mark.parametrize("count, features, classes", SOFTMAX_SHAPES)
def test_empirical_fisher_of_softmax_regression_matches_its_closed_form(count, features, classes):
    """For logits W x + b, d log p(y | x) / d W_cj = (1[y = c] - p_c) x_j."""
    model = _seeded_linear(features, classes, seed=count)
    inputs, targets = _examples(count, features, classes, seed=count + 1)
    with torch.no_grad():
        residual = F.one_hot(targets, classes).double() - F.softmax(model(inputs), -1).double()
    weight = torch.einsum("nc,nj->cj", residual**2, inputs.double() ** 2) / count
    bias = (residual**2).mean(dim=0)

    fisher = continual.diagonal_fisher(model, inputs, targets, batch_size=5)

    assert set(fisher) == {"weight", "bias"}
    torch.testing.assert_close(fisher["weight"].double(), weight, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(fisher["bias"].double(), bias, rtol=1e-5, atol=1e-7)


def test_expected_fisher_of_softmax_regression_is_the_hessian_diagonal():
    """The Fisher proper of a softmax regression equals the Hessian of its mean negative
    log-likelihood (which does not depend on the labels): p_c (1 - p_c) x_j^2 on the diagonal."""
    features, classes = 4, 3
    model = _seeded_linear(features, classes, seed=5)
    inputs, targets = _examples(50, features, classes, seed=6)
    weight, bias = model.weight.detach(), model.bias.detach()

    def mean_nll(flat: torch.Tensor) -> torch.Tensor:
        w = flat[: weight.numel()].reshape(weight.shape)
        b = flat[weight.numel() :]
        return F.cross_entropy(inputs @ w.T + b, targets)

    hessian = torch.autograd.functional.hessian(mean_nll, torch.cat([weight.flatten(), bias]))
    diagonal = hessian.diagonal()

    fisher = continual.diagonal_fisher(model, inputs, targets, kind="expected")

    torch.testing.assert_close(fisher["weight"].flatten(), diagonal[: weight.numel()])
    torch.testing.assert_close(fisher["bias"], diagonal[weight.numel() :])


def _fisher_by_loop(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> dict:
    """An independent reference: autograd on each example alone, squares averaged."""
    totals = {name: torch.zeros_like(value) for name, value in model.named_parameters()}
    for example, target in zip(inputs, targets, strict=True):
        model.zero_grad()
        F.nll_loss(F.log_softmax(model(example[None]), -1), target[None]).backward()
        for name, parameter in model.named_parameters():
            totals[name] += parameter.grad**2
    model.zero_grad()
    return {name: total / len(inputs) for name, total in totals.items()}


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_fisher_of_a_network_matches_a_per_example_loop(activation):
    torch.manual_seed(3)
    model = continual.NewsClassifier(features=12, classes=5, hidden=7, activation=activation)
    inputs, targets = _examples(21, 12, 5, seed=4)
    expected = _fisher_by_loop(model, inputs, targets)

    for fisher in (
        continual.diagonal_fisher(model, inputs, targets, batch_size=8),
        continual.diagonal_fisher_loop(model, inputs, targets),
    ):
        assert fisher.keys() == expected.keys()
        for name in expected:
            torch.testing.assert_close(fisher[name], expected[name], rtol=1e-5, atol=1e-9)


def test_fisher_is_not_the_square_of_the_batch_gradient():
    model = _seeded_linear(3, 3, seed=8)
    inputs, targets = _examples(40, 3, 3, seed=9)
    fisher = continual.diagonal_fisher(model, inputs, targets)
    (gradient,) = torch.autograd.grad(F.cross_entropy(model(inputs), targets), [model.weight])
    # the mean of squares is at least the square of the mean, strictly here
    assert (fisher["weight"] >= gradient**2 - 1e-7).all()
    assert fisher["weight"].sum() > 3 * (gradient**2).sum()


def test_fisher_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.5), nn.Linear(6, 3)).train()
    before = [parameter.detach().clone() for parameter in model.parameters()]
    inputs, targets = _examples(10, 4, 3, seed=0)
    first = continual.diagonal_fisher(model, inputs, targets)
    second = continual.diagonal_fisher(model, inputs, targets)
    assert model.training, "the model's training mode must be restored"
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(), strict=True))
    for name in first:  # evaluation mode inside: dropout does not make the Fisher random
        torch.testing.assert_close(first[name], second[name])


def test_fisher_rejects_bad_input():
    model = nn.Linear(3, 2)
    inputs, targets = _examples(4, 3, 2, seed=0)
    with pytest.raises(ValueError, match="one target per input, got 4 and 3"):
        continual.diagonal_fisher(model, inputs, targets[:3])
    with pytest.raises(ValueError, match="got none"):
        continual.diagonal_fisher(model, inputs[:0], targets[:0])
    with pytest.raises(ValueError, match="unknown Fisher kind 'true'"):
        continual.diagonal_fisher(model, inputs, targets, kind="true")


def test_per_example_gradients_have_one_row_per_example():
    model = nn.Linear(5, 3)
    inputs, targets = _examples(6, 5, 3, seed=1)
    gradients = continual.per_example_gradients(model, inputs, targets)
    assert gradients["weight"].shape == (6, 3, 5) and gradients["bias"].shape == (6, 3)
    # the per-example log-likelihood gradients average to minus the batch loss gradient
    (weight_gradient,) = torch.autograd.grad(
        F.cross_entropy(model(inputs), targets), [model.weight]
    )
    torch.testing.assert_close(gradients["weight"].mean(dim=0), -weight_gradient)


# Elastic Weight Consolidation -------------------------------------------------------------------


def _consolidated(strength: float, seed: int = 0) -> continual.EWC:
    torch.manual_seed(seed)
    learner = continual.EWC(nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)), strength)
    fisher = {
        name: torch.rand(parameter.shape) for name, parameter in learner.network.named_parameters()
    }
    learner.consolidate(fisher)
    return learner


def _move(learner: continual.EWC, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in learner.network.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator))


def test_penalty_is_zero_at_the_anchor_and_without_consolidation():
    learner = _consolidated(strength=50.0)
    assert float(learner.penalty().detach()) == 0.0
    fresh = continual.EWC(nn.Linear(3, 2), strength=50.0)
    assert float(fresh.penalty().detach()) == 0.0
    off = _consolidated(strength=0.0)
    _move(off, seed=1)
    assert float(off.penalty().detach()) == 0.0


@pytest.mark.parametrize("strength", [0.5, 3.0, 1000.0])
def test_penalty_and_its_gradient_match_the_formula(strength):
    learner = _consolidated(strength)
    _move(learner, seed=2)
    names = [name for name, _ in learner.network.named_parameters()]
    theta = torch.cat([p.detach().flatten() for p in learner.network.parameters()])
    anchor = torch.cat([learner.anchor[name].flatten() for name in names])
    fisher = torch.cat([learner.fisher[name].flatten() for name in names])

    penalty = learner.penalty()
    penalty.backward()

    expected = strength / 2 * torch.dot(fisher, (theta - anchor) ** 2)
    torch.testing.assert_close(penalty.detach(), expected)
    gradient = torch.cat([p.grad.flatten() for p in learner.network.parameters()])
    torch.testing.assert_close(gradient, strength * fisher * (theta - anchor))


def test_consolidate_adds_fishers_and_moves_the_anchor():
    learner = _consolidated(strength=1.0)
    first = {name: value.clone() for name, value in learner.fisher.items()}
    _move(learner, seed=3)
    second = {name: torch.full_like(value, 0.25) for name, value in first.items()}
    learner.consolidate(second)
    for name, parameter in learner.network.named_parameters():
        torch.testing.assert_close(learner.fisher[name], first[name] + 0.25)
        assert torch.equal(learner.anchor[name], parameter.detach())
    assert float(learner.penalty().detach()) == 0.0
    with pytest.raises(ValueError, match="expected a Fisher entry of shape"):
        learner.consolidate({"0.weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="must be non-negative"):
        continual.EWC(nn.Linear(2, 2), strength=-1.0)


def test_loss_is_weighted_cross_entropy_plus_penalty_while_training():
    learner = _consolidated(strength=10.0)
    _move(learner, seed=4)
    inputs, targets = _examples(6, 4, 3, seed=5)
    weights = torch.tensor([1.0, 1.0, 2.0, 3.0, 1.0, 1.0])
    learner.train()
    logits = learner(inputs, weights)
    loss = learner.loss(logits, targets)
    # a weight of k counts like k copies of the example
    copies = torch.repeat_interleave(torch.arange(6), weights.long())
    duplicated = F.cross_entropy(learner.network(inputs[copies]), targets[copies])
    torch.testing.assert_close(loss, duplicated + learner.penalty())
    learner.eval()
    torch.testing.assert_close(
        learner.loss(learner(inputs), targets), F.cross_entropy(learner.network(inputs), targets)
    )


def test_ewc_trains_with_fit_and_holds_important_weights():
    inputs, targets = _examples(96, 4, 3, seed=6)
    distances = {}
    for strength in (0.0, 10.0):
        learner = _consolidated(strength, seed=7)
        anchor = {name: value.clone() for name, value in learner.anchor.items()}
        history = train.fit(
            learner,
            train.make_loader(inputs, targets, batch_size=32, shuffle=True),
            epochs=3,
            optimizer=torch.optim.SGD(learner.network.parameters(), lr=0.1),
            loss_fn=learner.loss,
            device="cpu",
            progress=False,
        )
        assert learner.examples_trained == 3 * 96 and len(history.train_loss) == 3
        distances[strength] = sum(
            float((learner.fisher[name] * (p.detach() - anchor[name]) ** 2).sum())
            for name, p in learner.network.named_parameters()
        )
    assert distances[10.0] < 0.1 * distances[0.0]


# Replay -----------------------------------------------------------------------------------------


def test_reservoir_keeps_capacity_distinct_items_of_any_stream():
    rng = np.random.default_rng(0)
    assert continual.reservoir_sample(iter(range(3)), 5, rng) == [0, 1, 2]
    assert continual.reservoir_sample(range(10), 0, rng) == []
    assert continual.reservoir_sample([], 3, rng) == []
    sample = continual.reservoir_sample((letter for letter in "abcdefghij"), 4, rng)
    assert len(sample) == 4 == len(set(sample)) and set(sample) <= set("abcdefghij")
    with pytest.raises(ValueError, match="non-negative"):
        continual.reservoir_sample(range(3), -1, rng)


def test_reservoir_draws_every_subset_equally_often():
    subsets = list(itertools.combinations(range(5), 2))
    counts = Counter(
        tuple(sorted(continual.reservoir_sample(range(5), 2, np.random.default_rng(seed))))
        for seed in range(5000)
    )
    assert chisquare([counts[subset] for subset in subsets]).pvalue > 1e-3


def _biased_reservoir(stream, capacity, rng):
    """Algorithm R with an off-by-one: the test below must be able to see it."""
    reservoir = []
    for index, item in enumerate(stream):
        if index < capacity:
            reservoir.append(item)
        elif (slot := int(rng.integers(index))) < capacity:
            reservoir[slot] = item
    return reservoir


def test_the_uniformity_test_catches_an_off_by_one():
    subsets = list(itertools.combinations(range(5), 2))
    counts = Counter(
        tuple(sorted(_biased_reservoir(range(5), 2, np.random.default_rng(seed))))
        for seed in range(5000)
    )
    assert chisquare([counts[subset] for subset in subsets]).pvalue < 1e-6


@pytest.mark.parametrize("balanced", [False, True])
def test_replay_memory_keeps_a_fraction_of_every_period(balanced):
    memory = continual.ReplayMemory(0.1, seed=0, balanced=balanced)
    inputs = torch.arange(200, dtype=torch.float32)[:, None]
    targets = torch.tensor([0] * 150 + [1] * 50)
    memory.add(inputs, targets)
    memory.add(inputs + 1000, targets + 2)
    assert len(memory) == 40 and memory.seen == 400
    assert memory.inputs.shape == (40, 1) and memory.targets.dtype == torch.int64
    kept_values = memory.inputs.flatten()
    assert ((kept_values < 200).sum(), (kept_values >= 1000).sum()) == (20, 20)
    # each kept example's label is the label it had
    torch.testing.assert_close(
        memory.targets, targets[kept_values.long() % 1000] + 2 * (kept_values >= 1000)
    )
    if balanced:
        assert Counter(memory.targets.tolist()) == {0: 15, 1: 5, 2: 15, 3: 5}
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        continual.ReplayMemory(0.0)
    with pytest.raises(ValueError, match="one target per input"):
        memory.add(inputs, targets[:3])


def test_replay_memory_gives_every_example_the_same_chance():
    counts = np.zeros(30, dtype=np.int64)
    inputs, targets = torch.arange(30)[:, None], torch.zeros(30, dtype=torch.int64)
    for seed in range(2000):
        memory = continual.ReplayMemory(0.1, seed=seed)
        memory.add(inputs, targets)
        counts[memory.inputs.flatten().numpy()] += 1
    assert counts.sum() == 2000 * 3
    assert chisquare(counts).pvalue > 1e-3


def test_empty_memory_has_empty_tensors():
    memory = continual.ReplayMemory(0.5)
    assert len(memory) == 0 and memory.inputs.numel() == 0 and memory.targets.numel() == 0


# Features, periods, strategies and compute --------------------------------------------------------


def test_bag_of_words_counts_every_word_in_a_stable_bucket():
    texts = ["the match was won", "won won won", "the the match"]
    counts = continual.bag_of_words(texts, features=64)
    assert counts.shape == (3, 64) and counts.dtype == torch.float32
    assert counts.sum(dim=1).tolist() == [4.0, 3.0, 3.0]
    assert counts[1].max() == 3.0
    torch.testing.assert_close(counts, continual.bag_of_words(texts, features=64))
    won = counts[1].argmax()
    assert counts[0, won] >= 1 and counts[2, won] == 0


@pytest.fixture(scope="module")
def small_stream():
    data = datasets.news_stream(periods=3, train_per_period=600, test_per_period=200, seed=1)
    return continual.stream_periods(data)


def test_stream_periods_split_by_period(small_stream):
    assert [period.new_classes for period in small_stream] == [(0, 1), (2, 3), (4, 5)]
    for index, period in enumerate(small_stream):
        assert period.inputs.shape == (600, 1024) and period.test_inputs.shape == (200, 1024)
        assert set(period.targets.tolist()) == {2 * index, 2 * index + 1}
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['period'\]"):
        continual.stream_periods(datasets.news_stream(periods=1).remove_columns("period"))


def test_training_flops_match_a_flop_counter_run_over_real_training(small_stream):
    """examples x per-example FLOPs (what run_stream books) = FlopCounterMode over fit."""
    period = small_stream[0]
    torch.manual_seed(0)
    learner = continual.EWC(continual.NewsClassifier(1024, 6, hidden=16), strength=5.0)
    learner.consolidate(
        continual.diagonal_fisher(learner.network, period.inputs[:20], period.targets[:20])
    )
    per_example = continual.training_flops_per_example(
        learner.network, period.inputs[:4], period.targets[:4]
    )
    assert per_example == 3 * 2 * (1024 * 16 + 16 * 6) - 2 * 1024 * 16  # no gradient for inputs
    with FlopCounterMode(display=False) as counter:
        train.fit(
            learner,
            train.make_loader(
                period.inputs[:100], period.targets[:100], batch_size=32, shuffle=False
            ),
            epochs=2,
            optimizer=torch.optim.Adam(learner.network.parameters()),
            loss_fn=learner.loss,
            device="cpu",
            progress=False,
        )
    assert learner.examples_trained == 200
    assert counter.get_total_flops() == 200 * per_example
    _, fisher_flops = continual.counted_flops(
        lambda: continual.diagonal_fisher(learner.network, period.inputs[:10], period.targets[:10])
    )
    assert fisher_flops == 10 * per_example  # one forward and backward per example


def test_strategies_count_their_examples_and_forget_as_expected(small_stream):
    settings = continual.StreamConfig(epochs=3, hidden=32, learning_rate=1e-2, fisher_samples=50)
    results = {
        strategy: continual.run_stream(small_stream, strategy, settings, seed=0, progress=False)
        for strategy in continual.STRATEGY_NAMES
    }
    for result in results.values():
        assert result.accuracy.shape == (3, 3) and len(result.flops) == 3
        assert all(0.0 <= value <= 1.0 for value in result.seen_accuracy)
    assert results["fine-tune"].training_examples == [1800, 1800, 1800]
    assert results["replay"].training_examples == [1800, 3 * (600 + 60), 3 * (600 + 120)]
    assert results["replay"].memory_size == [60, 120, 180]
    assert results["retrain"].training_examples == [1800, 3600, 5400]
    assert results["EWC + replay"].fisher_examples == [50, 50, 50]
    assert results["fine-tune"].fisher_examples == [0, 0, 0]
    per_example = results["fine-tune"].flops[0] / 1800
    assert results["retrain"].flops == [n * per_example for n in (1800, 3600, 5400)]
    assert results["EWC"].flops[1] == 1800 * per_example + 50 * per_example
    # identical first period: same seed, same data, same network
    assert results["replay"].accuracy[0, 0] == results["fine-tune"].accuracy[0, 0]
    # fine-tuning forgets the first topics; replay and retraining keep most of them
    fine_tune = continual.average_forgetting(results["fine-tune"].accuracy)
    assert fine_tune > 0.8
    assert continual.average_forgetting(results["replay"].accuracy) < fine_tune - 0.4
    assert results["retrain"].final_accuracy > results["fine-tune"].final_accuracy + 0.3
    assert results["replay"].total_flops < 0.7 * results["retrain"].total_flops


def test_later_runs_start_from_the_first_period_trained_once(small_stream):
    settings = continual.StreamConfig(epochs=2, hidden=16, learning_rate=1e-2, fisher_samples=40)
    order = ("replay", "EWC + replay", "retrain", "EWC", "fine-tune")

    def fresh_periods():  # the same tensors, nothing trained on them yet
        return [dataclasses.replace(period) for period in small_stream]

    shared = fresh_periods()
    in_turn = [
        continual.run_stream(shared, name, settings, seed=3, progress=False) for name in order
    ]
    assert list(shared[0].first_runs) == [(3, 6, 2, 64, 1e-2, 16, "tanh")]
    first = shared[0].first_runs[3, 6, 2, 64, 1e-2, 16, "tanh"]
    assert set(first) == {"network", "examples", "seconds", ("fisher", 40)}
    for name, reused in zip(order, in_turn, strict=True):
        alone = continual.run_stream(fresh_periods(), name, settings, seed=3, progress=False)
        np.testing.assert_array_equal(reused.accuracy, alone.accuracy)
        assert reused.seen_accuracy == alone.seen_accuracy
        assert reused.training_examples == alone.training_examples
        assert reused.fisher_examples == alone.fisher_examples
        assert reused.flops == alone.flops
        assert reused.seconds[0] >= first["seconds"]  # the time the first period took, once
    continual.run_stream(shared, "fine-tune", settings, seed=4, progress=False)
    assert len(shared[0].first_runs) == 2, "another seed trains its own first period"


@pytest.mark.parametrize("shuffle", [True, False])
def test_whole_batch_loader_gives_the_same_batches_and_random_draws(shuffle):
    inputs, weights = torch.randn(150, 5), torch.rand(150)
    targets = torch.randint(0, 3, (150,))
    batches, draws = [], []
    for whole_batches in (False, True):
        torch.manual_seed(0)
        loader = train.make_loader(
            inputs,
            weights,
            targets,
            batch_size=32,
            shuffle=shuffle,
            seed=2,
            whole_batches=whole_batches,
        )
        batches.append([[t.clone() for t in batch] for _ in range(2) for batch in loader])
        draws.append(torch.rand(3))
    assert len(batches[0]) == len(batches[1]) == 10
    for ours, theirs in zip(*batches, strict=True):
        assert len(ours) == 3
        for mine, expected in zip(ours, theirs, strict=True):
            assert mine.dtype == expected.dtype and torch.equal(mine, expected)
    torch.testing.assert_close(draws[0], draws[1], rtol=0, atol=0)


def test_run_stream_rejects_unknown_strategies(small_stream):
    with pytest.raises(ValueError, match="unknown strategy 'ewc'"):
        continual.run_stream(small_stream, "ewc")
    with pytest.raises(ValueError, match="at least one period"):
        continual.run_stream([], "replay")


def test_relu_units_can_die_and_the_count_sees_it():
    model = continual.NewsClassifier(features=3, classes=2, hidden=4, activation="relu")
    with torch.no_grad():
        model.layers[0].weight.fill_(1.0)
        model.layers[0].bias.copy_(torch.tensor([0.0, -100.0, 1.0, -100.0]))
    assert model.dead_units(torch.rand(10, 3)) == 0.5
    with pytest.raises(ValueError, match="unknown activation 'sigmoid'"):
        continual.NewsClassifier(activation="sigmoid")


# Measures ---------------------------------------------------------------------------------------


def test_forgetting_and_accuracy_of_known_matrices():
    accuracy = np.array([[0.9, 0.0, 0.0], [0.95, 0.8, 0.0], [0.5, 0.9, 0.7]])
    # period 0: best 0.95, final 0.5; period 1: best 0.8, final 0.9 (improved)
    assert continual.average_forgetting(accuracy) == pytest.approx((0.45 - 0.1) / 2)
    assert continual.average_accuracy(accuracy) == pytest.approx(0.7)
    assert continual.average_forgetting([[0.8]]) == 0.0
    upper = accuracy + np.triu(np.full((3, 3), np.nan), 1)
    assert continual.average_forgetting(upper) == continual.average_forgetting(accuracy)
    with pytest.raises(ValueError, match="square"):
        continual.average_forgetting(np.zeros((2, 3)))


def test_compute_saved_and_the_replay_share():
    assert continual.compute_saved(35.0, 100.0) == pytest.approx(0.65)
    with pytest.raises(ValueError, match="positive"):
        continual.compute_saved(1.0, 0.0)
    # three old periods, one new, 10% replay: 1 + 0.3 examples instead of 4
    assert continual.replay_compute_share(3.0, 0.1) == pytest.approx(1.3 / 4)
    shares = continual.replay_compute_share(np.array([0.0, 1.0, 9.0]), 0.5)
    np.testing.assert_allclose(shares, [1.0, 0.75, 0.55])
    with pytest.raises(ValueError):
        continual.replay_compute_share(-1.0, 0.1)


def test_benchmarks_time_the_loop_against_vmap():
    rows = continual.benchmarks(smoke=True)
    assert [row.variant for row in rows] == ["loop", "vmap, 64 per call"]
    assert rows[0].ratio == 1.0 and all(row.median_ms > 0 for row in rows)


# Figures ----------------------------------------------------------------------------------------


def test_accuracy_through_stream_draws_one_panel_per_strategy():
    matrices = {name: np.tril(np.full((3, 3), 0.5)) for name in ("fine-tune", "replay")}
    figure = plots.accuracy_through_stream(matrices, ["a", "b", "c"], title="forgetting")
    assert isinstance(figure, matplotlib.figure.Figure) and len(figure.axes) == 2
    assert [len(line.get_xdata()) for line in figure.axes[0].lines] == [3, 2, 1]
    with pytest.raises(ValueError, match=r"expected a \(2, 2\) accuracy matrix"):
        plots.accuracy_through_stream(matrices, ["a", "b"])


def test_compute_figures():
    results = {"retrain": (2e9, 0.95, 0.01), "replay": (1e9, 0.93, 0.02)}
    figure = plots.compute_and_accuracy(results, reference="retrain")
    assert "% of retrain" in figure.axes[0].get_xlabel()
    with pytest.raises(ValueError, match="reference 'scratch'"):
        plots.compute_and_accuracy(results, reference="scratch")
    ratios = np.linspace(0, 5, 6)
    savings = plots.compute_savings(
        ratios,
        {"10%": 1 - continual.replay_compute_share(ratios, 0.1)},
        measured={"measured": ([1, 2], [0.4, 0.5])},
        claimed=0.65,
    )
    assert len(savings.axes[0].lines) == 3
    with pytest.raises(ValueError, match="one per ratio"):
        plots.compute_savings(ratios, {"bad": [0.1]})
    sweep = plots.stability_plasticity({"EWC": [(10, 0.1, 0.9), (1000, 0.6, 0.5)]})
    assert len(sweep.axes[0].texts) == 2
    with pytest.raises(ValueError, match="at least one"):
        plots.stability_plasticity({"EWC": []})
