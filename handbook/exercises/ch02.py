"""Checks for the exercises of chapter 2, training optimization.

Each check runs the learner's function on several inputs and compares it with the PyTorch piece
that does the same job: ``torch.optim.lr_scheduler`` for the schedule, ``torch.optim.AdamW``
for the optimizer step, ``torch._amp_update_scale_`` (the kernel behind
``torch.amp.GradScaler.update``) for the loss scale. Call them from the check cells:
``ch02.check_warmup_cosine(warmup_cosine_lr)``. Exercise 2.4 is a derivation: the learner writes
a number, and the check computes the true value with the same PyTorch kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from handbook.exercises import checks
from handbook.exercises.checks import (
    Case,
    ExerciseResult,
    check_exercise,
    expect,
    expect_close,
    expect_equal,
    expect_type,
)
from handbook.i18n import _

# Exercise 2.1 ---------------------------------------------------------------------------------


def _torch_warmup_cosine(
    base_lr: float, warmup_steps: int, total_steps: int, min_lr: float
) -> list[float]:
    """Learning rates of steps 0..total_steps from torch's schedulers."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    schedulers, milestones = [], []
    if warmup_steps > 0:
        schedulers.append(
            torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: step / warmup_steps)
        )
        milestones.append(warmup_steps)
    schedulers.append(
        torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=total_steps - warmup_steps, eta_min=min_lr
        )
    )
    scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, schedulers, milestones)
    rates = []
    for _step in range(total_steps + 1):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def check_warmup_cosine(warmup_cosine_lr: Callable[..., float]) -> ExerciseResult:
    """Exercise 2.1: ``warmup_cosine_lr(step, base_lr, warmup_steps, total_steps, min_lr)``.

    Expects a Python float: ``base_lr * step / warmup_steps`` during the warm-up, then a half
    cosine from ``base_lr`` (at ``warmup_steps``) down to ``min_lr`` (at ``total_steps``), and
    ``min_lr`` after that; compared step by step with ``LambdaLR`` + ``CosineAnnealingLR``
    chained by ``SequentialLR``.
    """
    cases = [
        _schedule_case(warmup_cosine_lr, _("5 warm-up steps of 20, base 1e-3"), 1e-3, 5, 20, 0.0),
        _schedule_case(warmup_cosine_lr, _("no warm-up (warmup_steps=0)"), 3e-4, 0, 12, 0.0),
        _schedule_case(warmup_cosine_lr, _("a single warm-up step"), 0.1, 1, 10, 0.0),
        _schedule_case(warmup_cosine_lr, _("a floor: min_lr=1e-5"), 3e-4, 3, 30, 1e-5),
        _schedule_case(warmup_cosine_lr, _("the cosine lasts one step"), 1.0, 4, 5, 0.0),
        Case(
            _("steps after total_steps stay at min_lr"),
            lambda: _expect_after_the_end(warmup_cosine_lr),
        ),
    ]
    return check_exercise("2.1", _("cosine schedule with warm-up"), cases)


def _schedule_case(
    warmup_cosine_lr: Callable[..., float],
    description: str,
    base_lr: float,
    warmup_steps: int,
    total_steps: int,
    min_lr: float,
) -> Case:
    def run() -> None:
        expected = _torch_warmup_cosine(base_lr, warmup_steps, total_steps, min_lr)
        actual = []
        for step in range(total_steps + 1):
            value = warmup_cosine_lr(step, base_lr, warmup_steps, total_steps, min_lr)
            expect_type(value, float, f"warmup_cosine_lr(step={step}, ...)")
            actual.append(value)
        what = _(
            "learning rates of steps 0..{total_steps} (base_lr={base_lr}, "
            "warmup_steps={warmup_steps}, total_steps={total_steps}, min_lr={min_lr})"
        ).format(total_steps=total_steps, base_lr=base_lr, warmup_steps=warmup_steps, min_lr=min_lr)
        expect_close(torch.tensor(actual), torch.tensor(expected), what, atol=1e-9, rtol=1e-6)

    return Case(description, run)


def _expect_after_the_end(warmup_cosine_lr: Callable[..., float]) -> None:
    for step in (11, 15, 100):
        value = warmup_cosine_lr(step, 1e-3, 2, 10, 1e-5)
        expect_close(value, 1e-5, f"warmup_cosine_lr(step={step}, total_steps=10, min_lr=1e-5)")


# Exercise 2.2 ---------------------------------------------------------------------------------


def check_adamw_step(adamw_update: Callable[..., tuple]) -> ExerciseResult:
    """Exercise 2.2: ``adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps,
    weight_decay)``.

    Expects new ``(param, exp_avg, exp_avg_sq)`` tensors after one AdamW update (``step``
    counts from 1), leaving its inputs unchanged; compared over several steps with
    ``torch.optim.AdamW`` in float64.
    """
    cases = [
        _adamw_case(adamw_update, _("one step from zero moments"), (4,), 1, 1e-3, 0.01),
        _adamw_case(adamw_update, _("five steps on a (3, 5) matrix"), (3, 5), 5, 1e-2, 0.1),
        _adamw_case(adamw_update, _("no weight decay"), (6,), 3, 1e-3, 0.0),
        _adamw_case(adamw_update, _("strong weight decay (0.5)"), (2, 2), 4, 0.1, 0.5),
        _adamw_case(
            adamw_update,
            _("betas (0.8, 0.9), eps 1e-3"),
            (5,),
            3,
            1e-2,
            0.1,
            betas=(0.8, 0.9),
            eps=1e-3,
        ),
        _adamw_case(
            adamw_update,
            _("a zero gradient still decays the weights"),
            (3,),
            2,
            1e-2,
            0.1,
            zero_grad=True,
        ),
        Case(_("the input tensors are left unchanged"), lambda: _expect_inputs_kept(adamw_update)),
    ]
    return check_exercise("2.2", _("one AdamW step"), cases)


def _adamw_case(
    adamw_update: Callable[..., tuple],
    description: str,
    shape: tuple[int, ...],
    steps: int,
    lr: float,
    weight_decay: float,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    zero_grad: bool = False,
) -> Case:
    def run() -> None:
        generator = torch.Generator().manual_seed(len(shape) * 100 + steps)
        start = torch.randn(shape, generator=generator, dtype=torch.float64)
        grads = [torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(steps)]
        if zero_grad:
            grads = [torch.zeros_like(start) for _ in range(steps)]
        reference = torch.nn.Parameter(start.clone())
        optimizer = torch.optim.AdamW(
            [reference], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay
        )
        param, exp_avg, exp_avg_sq = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
        for step, grad in enumerate(grads, start=1):
            reference.grad = grad.clone()
            optimizer.step()
            result = adamw_update(
                param, grad.clone(), exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay
            )
            what = _("adamw_update(...) at step {step}").format(step=step)
            expect(
                isinstance(result, tuple) and len(result) == 3,
                _("{what}: expected a tuple (param, exp_avg, exp_avg_sq), got {type}").format(
                    what=what, type=type(result).__name__
                ),
            )
            param, exp_avg, exp_avg_sq = result
            state = optimizer.state[reference]
            for name, actual, expected in (
                (_("exp_avg (first moment)"), exp_avg, state["exp_avg"]),
                (_("exp_avg_sq (second moment)"), exp_avg_sq, state["exp_avg_sq"]),
                (_("the new param"), param, reference.detach()),
            ):
                expect_type(actual, torch.Tensor, _("{what}: {name}").format(what=what, name=name))
                expect_close(
                    actual,
                    expected,
                    _("{what}: {name}").format(what=what, name=name),
                    atol=1e-10,
                    rtol=1e-7,
                )

    return Case(description, run)


def _expect_inputs_kept(adamw_update: Callable[..., tuple]) -> None:
    generator = torch.Generator().manual_seed(7)
    inputs = [torch.randn(4, generator=generator, dtype=torch.float64) for _ in range(4)]
    inputs[3] = inputs[3].abs()
    originals = [tensor.clone() for tensor in inputs]
    adamw_update(*inputs, 3, 1e-2, (0.9, 0.999), 1e-8, 0.1)
    for name, tensor, original in zip(
        ("param", "grad", "exp_avg", "exp_avg_sq"), inputs, originals, strict=True
    ):
        expect(
            torch.equal(tensor, original),
            _(
                "adamw_update modified its argument {name} in place; expected new tensors to be "
                "returned and the inputs left as they were"
            ).format(name=name),
        )


# Exercise 2.3 ---------------------------------------------------------------------------------


def _torch_scale_update(
    grads: list[torch.Tensor],
    scale: float,
    growth_tracker: int,
    growth_factor: float,
    backoff_factor: float,
    growth_interval: int,
) -> tuple[bool, float, int]:
    found_inf = torch.zeros(1)
    if grads:
        copies = [grad.clone() for grad in grads]
        torch._amp_foreach_non_finite_check_and_unscale_(copies, found_inf, torch.ones(1))
    scale_tensor = torch.tensor([scale])
    tracker = torch.tensor([growth_tracker], dtype=torch.int32)
    torch._amp_update_scale_(
        scale_tensor, tracker, found_inf, growth_factor, backoff_factor, growth_interval
    )
    return bool(found_inf.item()), float(scale_tensor.item()), int(tracker.item())


def check_loss_scale_update(update_loss_scale: Callable[..., tuple]) -> ExerciseResult:
    """Exercise 2.3: ``update_loss_scale(grads, scale, growth_tracker, growth_factor,
    backoff_factor, growth_interval)``.

    Expects ``(found_inf, new_scale, new_growth_tracker)`` as ``(bool, float, int)``: whether any
    gradient holds inf or NaN, then GradScaler's rule (compared with ``torch._amp_update_scale_``,
    the kernel behind ``torch.amp.GradScaler.update``).
    """
    finite = [torch.tensor([0.5, -2.0]), torch.ones(2, 2)]
    cases = [
        _scale_case(
            update_loss_scale,
            _("finite gradients, tracker below the interval"),
            finite,
            1024.0,
            3,
        ),
        _scale_case(
            update_loss_scale, _("finite gradients completing the interval"), finite, 1024.0, 9
        ),
        _scale_case(
            update_loss_scale, _("an inf gradient"), [torch.tensor([1.0, math.inf])], 65536.0, 5
        ),
        _scale_case(update_loss_scale, _("a NaN gradient"), [torch.tensor([math.nan])], 8.0, 0),
        _scale_case(
            update_loss_scale,
            _("-inf in the second of two tensors"),
            [torch.ones(3), torch.tensor([[0.0, -math.inf]])],
            2.0**16,
            9,
        ),
        _scale_case(update_loss_scale, _("no gradients at all"), [], 4.0, 2),
        Case(
            _("a run of 12 steps with two overflows (growth_interval=3)"),
            lambda: _scale_run(update_loss_scale),
        ),
    ]
    return check_exercise("2.3", _("update the loss scale"), cases)


def _expect_scale_result(result: object, expected: tuple[bool, float, int], what: str) -> None:
    expect(
        isinstance(result, tuple) and len(result) == 3,
        _("{what}: expected a tuple (found_inf, new_scale, new_growth_tracker), got {type}").format(
            what=what, type=type(result).__name__
        ),
    )
    found_inf, scale, tracker = result
    expect_type(found_inf, bool, _("{what}: {name}").format(what=what, name="found_inf"))
    expect_equal(found_inf, expected[0], _("{what}: {name}").format(what=what, name="found_inf"))
    expect_close(float(scale), expected[1], _("{what}: {name}").format(what=what, name="new_scale"))
    expect_equal(
        int(tracker), expected[2], _("{what}: {name}").format(what=what, name="new_growth_tracker")
    )


def _scale_case(
    update_loss_scale: Callable[..., tuple],
    description: str,
    grads: list[torch.Tensor],
    scale: float,
    tracker: int,
) -> Case:
    def run() -> None:
        expected = _torch_scale_update(grads, scale, tracker, 2.0, 0.5, 10)
        result = update_loss_scale([grad.clone() for grad in grads], scale, tracker, 2.0, 0.5, 10)
        what = _(
            "update_loss_scale(grads, scale={scale}, growth_tracker={tracker}, interval 10)"
        ).format(scale=scale, tracker=tracker)
        _expect_scale_result(result, expected, what)

    return Case(description, run)


def _scale_run(update_loss_scale: Callable[..., tuple]) -> None:
    scale, tracker = 128.0, 0
    for step in range(12):
        value = math.inf if step in (4, 5) else 1.0
        grads = [torch.full((3,), value)]
        expected = _torch_scale_update(grads, scale, tracker, 2.0, 0.5, 3)
        result = update_loss_scale(grads, scale, tracker, 2.0, 0.5, 3)
        _expect_scale_result(
            result,
            expected,
            _("step {step} (scale {scale}, tracker {tracker})").format(
                step=step, scale=scale, tracker=tracker
            ),
        )
        scale, tracker = expected[1], expected[2]


# Exercise 2.4 ---------------------------------------------------------------------------------

#: The run of exercise 2.4: GradScaler's defaults, a burst of overflows, then clean steps.
DERIVATION_INIT_SCALE = 2.0**16
DERIVATION_GROWTH_INTERVAL = 2000
DERIVATION_OVERFLOWS = 5
DERIVATION_CLEAN_STEPS = 4500


def scale_after_run(
    overflows: int = DERIVATION_OVERFLOWS,
    clean_steps: int = DERIVATION_CLEAN_STEPS,
    *,
    init_scale: float = DERIVATION_INIT_SCALE,
    growth_interval: int = DERIVATION_GROWTH_INTERVAL,
) -> float:
    """The loss scale after ``overflows`` overflowing steps then ``clean_steps`` clean ones,
    stepped through ``torch._amp_update_scale_`` (the kernel of ``GradScaler.update``) with its
    default factors (x2 growth, x0.5 back-off)."""
    scale = torch.tensor([float(init_scale)])
    tracker = torch.zeros(1, dtype=torch.int32)
    for step in range(overflows + clean_steps):
        found_inf = torch.tensor([1.0 if step < overflows else 0.0])
        torch._amp_update_scale_(scale, tracker, found_inf, 2.0, 0.5, growth_interval)
    return float(scale.item())


def _scale_slips() -> dict[float, str]:
    """Answers a typical slip gives, and what each one forgot."""
    after_overflows = DERIVATION_INIT_SCALE * 0.5**DERIVATION_OVERFLOWS
    growths = DERIVATION_CLEAN_STEPS // DERIVATION_GROWTH_INTERVAL
    return {
        after_overflows: _(
            "that is the scale right after the overflows: the clean steps that "
            "follow make it grow again"
        ),
        DERIVATION_INIT_SCALE * 2.0**growths: _(
            "that leaves out the overflows: each one halves the scale (and the step is skipped)"
        ),
        after_overflows * 2.0 ** (DERIVATION_CLEAN_STEPS / DERIVATION_GROWTH_INTERVAL): _(
            "the scale grows in whole doublings, not continuously: count complete intervals"
        ),
        DERIVATION_INIT_SCALE * 0.5 ** (DERIVATION_OVERFLOWS - 1) * 2.0**growths: _(
            "one halving too few, or one doubling too many: count the overflows and the "
            "complete intervals again"
        ),
        DERIVATION_INIT_SCALE * 0.5 ** (DERIVATION_OVERFLOWS + 1) * 2.0**growths: _(
            "one halving too many: each of the overflowing steps halves the scale once"
        ),
    }


def check_loss_scale_derivation(answer: object) -> ExerciseResult:
    """Exercise 2.4 (derive): the loss scale after 5 overflows then 4,500 clean steps.

    ``answer`` is a number. The expected value is stepped through PyTorch's own scale-update
    kernel; a typical slip (overflows left out, growth counted continuously, an interval too
    many) is named in the feedback.
    """
    expected = scale_after_run()
    explain = _(
        "Each overflow halves S: {init:,.0f} x 0.5^{overflows} = "
        "{after:,.0f}; then S doubles once per "
        "complete interval of {interval:,} clean steps: "
        "floor({clean:,} / {interval:,}) = "
        "{doublings} doublings"
    ).format(
        init=DERIVATION_INIT_SCALE,
        overflows=DERIVATION_OVERFLOWS,
        after=DERIVATION_INIT_SCALE * 0.5**DERIVATION_OVERFLOWS,
        interval=DERIVATION_GROWTH_INTERVAL,
        clean=DERIVATION_CLEAN_STEPS,
        doublings=DERIVATION_CLEAN_STEPS // DERIVATION_GROWTH_INTERVAL,
    )
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        for slip, why in _scale_slips().items():
            if slip != expected and math.isclose(float(answer), slip, rel_tol=1e-3):
                explain = _("Likely slip: {why}.").format(why=why) + "\n" + explain
                break
    return checks.check_number(
        "2.4",
        _("the loss scale after a run"),
        answer,
        expected,
        tolerance=0.5,
        relative=False,
        unit="",
        kind=checks.DERIVATION,
        explain=explain,
    )
