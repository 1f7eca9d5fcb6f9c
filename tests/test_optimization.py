"""handbook.optimization: each from-scratch piece against the PyTorch piece doing the same job."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from handbook import datasets, optimization, plots, translation


def torch_rates(make_scheduler, steps: int, base_lr: float) -> list[float]:
    """Learning rate of steps 0..steps-1 under a torch scheduler built by ``make_scheduler``."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base_lr)
    scheduler = make_scheduler(optimizer)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize(("total", "min_lr"), [(10, 0.0), (30, 1e-5), (1, 0.0)])
def test_cosine_annealing_matches_torch(total: int, min_lr: float) -> None:
    expected = torch_rates(
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=min_lr),
        total + 1,
        3e-4,
    )
    ours = [
        optimization.cosine_annealing(s, base_lr=3e-4, total_steps=total, min_lr=min_lr)
        for s in range(total + 1)
    ]
    assert ours == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert optimization.cosine_annealing(
        total + 5, base_lr=3e-4, total_steps=total, min_lr=min_lr
    ) == (pytest.approx(min_lr))


@pytest.mark.parametrize(("step_size", "gamma"), [(3, 0.9), (1, 0.5), (7, 0.1)])
def test_step_decay_matches_step_lr(step_size: int, gamma: float) -> None:
    expected = torch_rates(
        lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma), 25, 1e-3
    )
    ours = optimization.schedule_values(
        lambda s: optimization.step_decay(s, base_lr=1e-3, step_size=step_size, gamma=gamma), 25
    )
    assert ours == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("start_factor", [0.1, 0.5, 1.0])
def test_linear_warmup_matches_linear_lr(start_factor: float) -> None:
    expected = torch_rates(
        lambda opt: torch.optim.lr_scheduler.LinearLR(
            opt, start_factor=start_factor, total_iters=5
        ),
        12,
        1e-2,
    )
    ours = [
        optimization.linear_warmup(s, base_lr=1e-2, warmup_steps=5, start_factor=start_factor)
        for s in range(12)
    ]
    assert ours == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("warmup", "total", "min_lr"), [(3, 20, 0.0), (1, 8, 1e-6), (5, 6, 0.0)])
def test_warmup_cosine_matches_sequential_lr(warmup: int, total: int, min_lr: float) -> None:
    def make(opt):
        return torch.optim.lr_scheduler.SequentialLR(
            opt,
            [
                torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.25, total_iters=warmup),
                torch.optim.lr_scheduler.CosineAnnealingLR(
                    opt, T_max=total - warmup, eta_min=min_lr
                ),
            ],
            milestones=[warmup],
        )

    expected = torch_rates(make, total + 1, 1e-3)
    ours = [
        optimization.warmup_cosine(
            s,
            base_lr=1e-3,
            warmup_steps=warmup,
            total_steps=total,
            min_lr=min_lr,
            start_factor=0.25,
        )
        for s in range(total + 1)
    ]
    assert ours == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_the_article_readings_against_torch() -> None:
    epochs = 20
    step = torch_rates(lambda opt: torch.optim.lr_scheduler.StepLR(opt, 3, 0.9), epochs, 3e-4)
    restarts = torch_rates(
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=3), epochs, 3e-4
    )
    cosine = torch_rates(
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs), epochs, 3e-4
    )
    ours = {
        variant: optimization.schedule_values(
            lambda e, v=variant: optimization.article_schedule(e, variant=v, total_epochs=epochs),
            epochs,
        )
        for variant in optimization.ARTICLE_VARIANTS
    }
    assert ours["step"] == pytest.approx(step, rel=1e-12)
    decayed = [rate * 0.9 ** (e // 3) for e, rate in enumerate(restarts)]
    assert ours["restarts"] == pytest.approx(decayed, rel=1e-9)
    product = [rate * 0.9 ** (e // 3) for e, rate in enumerate(cosine)]
    assert ours["cosine x step"] == pytest.approx(product, rel=1e-9, abs=1e-15)
    with pytest.raises(ValueError, match="unknown variant 'cosine'"):
        optimization.article_schedule(0, variant="cosine", total_epochs=3)


def test_lambda_scheduler_sets_the_schedules_learning_rates() -> None:
    def schedule(step: int) -> float:
        return optimization.article_schedule(step, total_epochs=9)

    expected = optimization.schedule_values(schedule, 9)
    optimizer = torch.optim.AdamW([nn.Parameter(torch.zeros(2))], lr=123.0)
    scheduler = optimization.lambda_scheduler(optimizer, schedule)
    seen = []
    for _ in range(9):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx(expected, rel=1e-12)


def test_schedules_refuse_bad_arguments() -> None:
    with pytest.raises(ValueError, match="step count >= 0"):
        optimization.step_decay(-1, base_lr=1.0, step_size=3, gamma=0.9)
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        optimization.warmup_cosine(0, base_lr=1.0, warmup_steps=5, total_steps=5)


@pytest.mark.parametrize("decoupled", [True, False])
@pytest.mark.parametrize("shape", [(5,), (3, 4), ()])
def test_adam_step_matches_torch(decoupled: bool, shape: tuple[int, ...]) -> None:
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(shape, generator=generator, dtype=torch.float64)
    reference = nn.Parameter(start.clone())
    kind = torch.optim.AdamW if decoupled else torch.optim.Adam
    optimizer = kind([reference], lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.3)
    param, exp_avg, exp_avg_sq = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    for step in range(1, 7):
        grad = torch.randn(shape, generator=generator, dtype=torch.float64)
        reference.grad = grad.clone()
        optimizer.step()
        param, exp_avg, exp_avg_sq = optimization.adam_step(
            param,
            grad,
            exp_avg,
            exp_avg_sq,
            step,
            lr=1e-2,
            betas=(0.8, 0.99),
            eps=1e-6,
            weight_decay=0.3,
            decoupled=decoupled,
        )
        torch.testing.assert_close(param, reference.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(exp_avg_sq, optimizer.state[reference]["exp_avg_sq"])


def test_l2_and_decoupled_decay_differ_where_gradients_are_large() -> None:
    """Adam + L2 divides the decay by sqrt(v): a weight with large gradients barely decays."""
    param = torch.tensor([1.0, 1.0], dtype=torch.float64)
    grad = torch.tensor([0.0, 100.0], dtype=torch.float64)
    zeros = torch.zeros(2, dtype=torch.float64)
    decoupled, _, _ = optimization.adam_step(param, grad, zeros, zeros, 1, lr=0.1, weight_decay=0.1)
    coupled, _, _ = optimization.adam_step(
        param, grad, zeros, zeros, 1, lr=0.1, weight_decay=0.1, decoupled=False
    )
    assert decoupled[0] == pytest.approx(1 - 0.1 * 0.1)  # zero gradient: only the decay
    assert coupled[0] == pytest.approx(1 - 0.1, rel=1e-6)  # L2 alone becomes a full Adam step
    assert (decoupled[1] - coupled[1]).abs() > 5e-3


def test_loss_scaler_follows_grad_scaler_on_overflows() -> None:
    values = [1.0, math.inf, 1.0, 1.0, 1.0, math.nan, 1.0, 1.0, 1.0, 1.0]
    theirs = torch.amp.GradScaler("cpu", init_scale=64.0, growth_interval=3)
    ours = optimization.DynamicLossScaler(init_scale=64.0, growth_interval=3)
    p_theirs, p_ours = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
    opt_theirs = torch.optim.SGD([p_theirs], lr=0.1)
    opt_ours = torch.optim.SGD([p_ours], lr=0.1)
    for value in values:
        for optimizer in (opt_theirs, opt_ours):
            optimizer.zero_grad()
        theirs.scale((p_theirs * value).sum()).backward()
        theirs.step(opt_theirs)
        theirs.update()
        ours.scale_loss((p_ours * value).sum()).backward()
        ours.step(opt_ours)
        assert ours.scale == theirs.get_scale()
        assert ours.growth_tracker == int(theirs._growth_tracker)
        torch.testing.assert_close(p_ours.detach(), p_theirs.detach())
    assert ours.skipped_steps == 2


def test_loss_scaler_matches_the_update_kernel() -> None:
    ours = optimization.DynamicLossScaler(
        init_scale=8.0, growth_factor=3.0, backoff_factor=0.25, growth_interval=2
    )
    scale, tracker = torch.tensor([8.0]), torch.tensor([0], dtype=torch.int32)
    for found in [False, False, True, False, False, False, True, True]:
        torch._amp_update_scale_(scale, tracker, torch.tensor([float(found)]), 3.0, 0.25, 2)
        ours.update(found)
        assert (ours.scale, ours.growth_tracker) == (scale.item(), tracker.item())
    with pytest.raises(ValueError, match="backoff_factor"):
        optimization.DynamicLossScaler(backoff_factor=2.0)


def test_saved_tensor_bytes_counts_what_autograd_keeps() -> None:
    layer = nn.Linear(10, 20)
    inputs = torch.randn(8, 10, requires_grad=True)
    saved = optimization.saved_tensor_bytes(
        lambda: torch.relu(layer(inputs)).sum(), layer.parameters()
    )
    # linear saves its input (8x10) and weight (a parameter); relu saves its output (8x20)
    assert saved.activation_bytes == (8 * 10 + 8 * 20) * 4
    assert saved.parameter_bytes == 20 * 10 * 4
    assert saved.bytes_by_dtype == {"float32": (8 * 10 + 8 * 20) * 4}
    with torch.no_grad():
        assert optimization.saved_tensor_bytes(lambda: layer(inputs)).activation_bytes == 0


@pytest.mark.parametrize("decoupled", [True, False])
def test_make_optimizer_steps_as_the_per_tensor_loop(decoupled: bool) -> None:
    """make_optimizer asks for the foreach implementation: the same weights, bit for bit, as
    the loop over tensors PyTorch uses on CPUs by default."""
    recipe = optimization.Recipe(
        "r", learning_rate=3e-3, weight_decay=0.1, decoupled_weight_decay=decoupled
    )
    weights = []
    for foreach in (True, False):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        optimizer = optimization.make_optimizer(model, recipe)
        assert optimizer.defaults["foreach"] is True
        optimizer.defaults["foreach"] = foreach
        for group in optimizer.param_groups:
            group["foreach"] = foreach
        inputs, targets = torch.randn(32, 8), torch.randint(0, 3, (32,))
        for _ in range(5):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(inputs), targets).backward()
            optimizer.step()
        weights.append([parameter.detach().clone() for parameter in model.parameters()])
    for grouped, looped in zip(*weights, strict=True):
        assert torch.equal(grouped, looped)


@pytest.mark.parametrize("autocast", [False, True])
def test_cpu_memory_per_operator_is_the_profilers_event_list(autocast: bool) -> None:
    """peak_memory_bytes reads the profiler's raw events; the answer must be the one the
    profiler's own event list (self_cpu_memory_usage) gives, operator for operator."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 4))
    attention = nn.MultiheadAttention(16, 2, batch_first=True)
    inputs = torch.randn(6, 5, 16)
    optimizer = torch.optim.AdamW([*model.parameters(), *attention.parameters()], lr=1e-3)

    def step():
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            mixed, _ = attention(inputs, inputs, inputs)
            loss = model(mixed).float().pow(2).mean()
        loss.backward()
        optimizer.step()

    step()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        step()
    expected = [
        (round(event.time_range.start * 1000), event.self_cpu_memory_usage)
        for event in sorted(
            (event for event in profiler.events() if event.self_cpu_memory_usage),
            key=lambda event: event.time_range.start,
        )
    ]
    raw = profiler.profiler.kineto_results.events()
    start = profiler.profiler.kineto_results.trace_start_ns()
    ours = [(at - start, nbytes) for at, nbytes in optimization._self_cpu_memory(raw)]
    assert len(expected) > 10
    assert [nbytes for _, nbytes in ours] == [nbytes for _, nbytes in expected]
    assert [at for at, _ in ours] == pytest.approx([at for at, _ in expected], abs=1)
    assert optimization.peak_memory_bytes(step) > 0


def test_mixed_precision_saves_fewer_activation_bytes_and_profiler_sees_memory() -> None:
    data = datasets.number_words_sample({"train": 64}, seed=1)
    task = translation.build_task(data)
    results = optimization.compare_precision(task, batch_size=64, warmup=0, repeats=1)
    by_name = {result.variant: result for result in results}
    assert set(by_name) == {"float32", "mixed precision"}
    assert by_name["float32"].memory_ratio == 1.0
    # bfloat16 halves the matmul inputs; softmax, layer-norm and loss stay in float32, and the
    # bfloat16 copies of the weights are new memory
    assert 0.5 < by_name["mixed precision"].memory_ratio < 0.9
    assert all(result.peak_bytes > 0 and result.step_ms > 0 for result in results)


def test_number_words_sample_gives_disjoint_splits() -> None:
    data = datasets.number_words_sample({"train": 30, "test": 10}, max_number=99_999, seed=3)
    assert (len(data["train"]), len(data["test"])) == (30, 10)
    assert not set(data["train"]["number"]) & set(data["test"]["number"])
    assert (
        data["train"]["number"]
        == datasets.number_words_sample({"train": 30, "test": 10}, seed=3)["train"]["number"]
    )
    with pytest.raises(ValueError, match="distinct numbers"):
        datasets.number_words_sample({"train": 20}, max_number=10)


def test_train_translation_runs_a_recipe_end_to_end() -> None:
    data = datasets.number_words_sample({"train": 64, "validation": 16, "test": 16}, seed=0)
    task = translation.build_task(data)
    recipe = optimization.Recipe(
        "tiny", dropout=0.1, weight_decay=1e-5, schedule="restarts", mixed_precision=True
    )
    run = optimization.train_translation(
        task, recipe, seed=0, epochs=2, batch_size=32, validation_split="validation", progress=False
    )
    assert len(run.history.val_loss) == 2
    assert run.history.learning_rate[1] < run.history.learning_rate[0]
    assert 0.0 <= run.scores.bleu <= 100.0
    assert isinstance(
        optimization.make_optimizer(
            run.model, optimization.Recipe("l2", decoupled_weight_decay=False)
        ),
        torch.optim.Adam,
    )


def test_benchmarks_in_smoke_mode() -> None:
    rows = optimization.benchmarks(smoke=True)
    assert [row.variant for row in rows] == ["float32", "mixed precision"]
    assert "activations" in rows[1].detail


def test_chapter_two_figures() -> None:
    import matplotlib

    matplotlib.use("Agg")
    figure = plots.learning_rate_schedules({"a": [1.0, 0.5, 0.1], "b": [0.3, 0.3, 0.3]})
    assert len(figure.axes[0].lines) == 2
    figure = plots.seed_comparison({"x": [1.0, 2.0, 3.0], "y": [2.0, 2.5]}, ylabel="BLEU")
    assert len(figure.axes[0].collections) >= 2
    with pytest.raises(ValueError, match="at least one"):
        plots.seed_comparison({"x": []}, ylabel="BLEU")
    with pytest.raises(ValueError, match="at least one schedule"):
        plots.learning_rate_schedules({})
