"""Chapter 2's exercise checks: right answers pass, typical mistakes fail with a useful message.

The reference solutions live here, not in the package, so that a learner reading
``handbook.exercises.ch02`` finds the checks but not the answers.
"""

from __future__ import annotations

import math

import pytest
import torch
from exercise_harness import (  # noqa: F401  (collected by pytest in this module)
    test_a_stub_reads_as_not_done,
    test_a_typical_mistake_fails_with_a_message_saying_what_was_expected,
    test_the_reference_solution_passes_every_case,
)

from handbook import config
from handbook.exercises import ch02
from handbook.exercises.checks import ExerciseFailed


def stub(*arguments: object) -> object:
    """What the student edition holds before the learner starts."""
    raise NotImplementedError("Exercise 2.x: not written yet")


# Exercise 2.1 ---------------------------------------------------------------------------------


def warmup_cosine_lr(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    progress = min(step - warmup_steps, total_steps - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2


def warmup_from_one_step(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    return warmup_cosine_lr(step, base_lr, warmup_steps, total_steps, min_lr)


def cosine_over_the_whole_run(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    progress = min(step, total_steps) / total_steps
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2


def cosine_that_comes_back_up(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2


def schedule_as_tensor(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    return torch.tensor(warmup_cosine_lr(step, base_lr, warmup_steps, total_steps, min_lr))


# Exercise 2.2 ---------------------------------------------------------------------------------


def adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay):
    beta1, beta2 = betas
    param = param * (1 - lr * weight_decay)
    exp_avg = beta1 * exp_avg + (1 - beta1) * grad
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad**2
    m_hat = exp_avg / (1 - beta1**step)
    v_hat = exp_avg_sq / (1 - beta2**step)
    return param - lr * m_hat / (v_hat.sqrt() + eps), exp_avg, exp_avg_sq


def adam_with_l2(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay):
    return adamw_update(
        param, grad + weight_decay * param, exp_avg, exp_avg_sq, step, lr, betas, eps, 0.0
    )


def adamw_without_bias_correction(
    param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay
):
    beta1, beta2 = betas
    param = param * (1 - lr * weight_decay)
    exp_avg = beta1 * exp_avg + (1 - beta1) * grad
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad**2
    return param - lr * exp_avg / (exp_avg_sq.sqrt() + eps), exp_avg, exp_avg_sq


def adamw_in_place(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay):
    new_param, new_avg, new_avg_sq = adamw_update(
        param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay
    )
    param.copy_(new_param)
    exp_avg.copy_(new_avg)
    exp_avg_sq.copy_(new_avg_sq)
    return param, exp_avg, exp_avg_sq


def adamw_returning_param_only(
    param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay
):
    return adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay)[0]


# Exercise 2.3 ---------------------------------------------------------------------------------


def update_loss_scale(grads, scale, growth_tracker, growth_factor, backoff_factor, growth_interval):
    found_inf = any(not bool(torch.isfinite(grad).all()) for grad in grads)
    if found_inf:
        return True, scale * backoff_factor, 0
    growth_tracker += 1
    if growth_tracker == growth_interval:
        return False, scale * growth_factor, 0
    return False, scale, growth_tracker


def scale_blind_to_nan(
    grads, scale, growth_tracker, growth_factor, backoff_factor, growth_interval
):
    if any(bool(torch.isinf(grad).any()) for grad in grads):
        return True, scale * backoff_factor, 0
    growth_tracker += 1
    if growth_tracker == growth_interval:
        return False, scale * growth_factor, 0
    return False, scale, growth_tracker


def scale_keeping_the_tracker(
    grads, scale, growth_tracker, growth_factor, backoff_factor, growth_interval
):
    found, new_scale, tracker = update_loss_scale(
        grads, scale, growth_tracker, growth_factor, backoff_factor, growth_interval
    )
    return found, new_scale, growth_tracker if found else tracker


def scale_growing_one_step_late(
    grads, scale, growth_tracker, growth_factor, backoff_factor, growth_interval
):
    return update_loss_scale(
        grads, scale, growth_tracker, growth_factor, backoff_factor, growth_interval + 1
    )


def scale_with_tensor_flag(
    grads, scale, growth_tracker, growth_factor, backoff_factor, growth_interval
):
    found, new_scale, tracker = update_loss_scale(
        grads, scale, growth_tracker, growth_factor, backoff_factor, growth_interval
    )
    return torch.tensor(found), new_scale, tracker


# The checks against them ----------------------------------------------------------------------

CHECKS = {
    "2.1": ch02.check_warmup_cosine,
    "2.2": ch02.check_adamw_step,
    "2.3": ch02.check_loss_scale_update,
}
SOLUTIONS = {"2.1": warmup_cosine_lr, "2.2": adamw_update, "2.3": update_loss_scale}


def test_strict_mode_turns_a_wrong_answer_into_an_exception(monkeypatch) -> None:
    monkeypatch.setenv(config.STRICT_EXERCISES_ENV, "1")

    assert ch02.check_adamw_step(adamw_update).status == "passed"
    with pytest.raises(ExerciseFailed, match=r"Exercise 2.2 \(one AdamW step\): \d of 7 checks"):
        ch02.check_adamw_step(adam_with_l2)


MISTAKES = [
    ("2.1", warmup_from_one_step, "failed", "5 warm-up steps of 20, base 1e-3: learning rates"),
    ("2.1", cosine_over_the_whole_run, "failed", "a floor: min_lr=1e-5: learning rates of steps"),
    ("2.1", cosine_that_comes_back_up, "failed", "warmup_cosine_lr(step=11, total_steps=10"),
    ("2.1", schedule_as_tensor, "failed", "warmup_cosine_lr(step=0, ...): expected a float"),
    ("2.2", adam_with_l2, "failed", "five steps on a (3, 5) matrix: adamw_update(...) at step 1"),
    ("2.2", adamw_without_bias_correction, "failed", "one step from zero moments: adamw_update"),
    ("2.2", adamw_in_place, "failed", "adamw_update modified its argument param in place"),
    ("2.2", adamw_returning_param_only, "failed", "expected a tuple (param, exp_avg, exp_avg_sq)"),
    ("2.3", scale_blind_to_nan, "failed", "a NaN gradient: update_loss_scale(grads, scale=8.0"),
    ("2.3", scale_keeping_the_tracker, "failed", "an inf gradient: update_loss_scale"),
    ("2.3", scale_growing_one_step_late, "failed", "finite gradients completing the interval"),
    ("2.3", scale_with_tensor_flag, "failed", "found_inf: expected a bool, got Tensor"),
]


def test_weight_decay_as_l2_is_caught_only_where_weight_decay_is_on() -> None:
    result = ch02.check_adamw_step(adam_with_l2)

    passing = {"no weight decay", "the input tensors are left unchanged"}
    failing = {line.split(":")[0] for line in result.messages}
    assert result.passed == len(passing)
    assert not failing & passing


# Exercise 2.4 (derive): the loss scale after a run ----------------------------------------------


def test_the_derived_loss_scale_is_what_gradscaler_reaches() -> None:
    assert ch02.scale_after_run() == 2.0**16 * 0.5**5 * 2.0**2
    # 3 overflows: 8 -> 1; 10 clean steps with an interval of 4: two doublings -> 4
    assert ch02.scale_after_run(3, 10, init_scale=8.0, growth_interval=4) == 4.0


def test_the_reference_derivation_passes(capsys) -> None:
    result = ch02.check_loss_scale_derivation(8192)

    assert (result.id, result.status, result.kind) == ("2.4", "passed", "derivation")
    assert "you derived 8,192, the formula gives 8,192" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (2048, "that is the scale right after the overflows"),
        (262144, "that leaves out the overflows"),
        (9742, "grows in whole doublings, not continuously"),
        (16384, "one halving too few, or one doubling too many"),
        (4096, "one halving too many"),
        (1000.0, "off by -7,192"),
    ],
)
def test_a_wrong_derivation_fails_naming_the_slip(answer, message) -> None:
    result = ch02.check_loss_scale_derivation(answer)

    assert result.status == "failed"
    assert message in result.messages[0], result.messages
    assert "floor(4,500 / 2,000) = 2 doublings" in result.messages[0]


@pytest.mark.parametrize("answer", [None, ...])
def test_an_empty_derivation_is_not_done(answer) -> None:
    assert ch02.check_loss_scale_derivation(answer).status == "not done"


def test_a_derivation_that_is_not_a_number_fails_with_a_message() -> None:
    result = ch02.check_loss_scale_derivation("8192")

    assert result.status == "failed"
    assert "write the number without quotes" in result.messages[0]
