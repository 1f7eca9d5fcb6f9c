"""Chapter 4's exercise checks: right answers pass, typical mistakes fail with a useful message.

The reference solutions live here, not in the package, so that a learner reading
``handbook.exercises.ch04`` finds the checks but not the answers.
"""

from __future__ import annotations

import pytest
import torch
from exercise_harness import (  # noqa: F401  (collected by pytest in this module)
    test_a_stub_reads_as_not_done,
    test_a_typical_mistake_fails_with_a_message_saying_what_was_expected,
    test_the_reference_solution_passes_every_case,
)
from torch.nn import functional as F

from handbook import config
from handbook.exercises import ch04
from handbook.exercises.checks import ExerciseFailed


def stub(*arguments: object) -> object:
    """What the student edition holds before the learner starts."""
    raise NotImplementedError("Exercise 4.x: not written yet")


# Exercise 4.1 ---------------------------------------------------------------------------------


def per_channel_qparams(weight: torch.Tensor, quant_min: int, quant_max: int):
    others = tuple(range(1, weight.ndim))
    low = weight.amin(dim=others).clamp(max=0.0)
    high = weight.amax(dim=others).clamp(min=0.0)
    scale = ((high - low) / (quant_max - quant_min)).clamp(min=torch.finfo(torch.float32).eps)
    zero_point = (quant_min - torch.round(low / scale)).clamp(quant_min, quant_max)
    return scale, zero_point.to(torch.int32)


def qparams_without_zero(weight: torch.Tensor, quant_min: int, quant_max: int):
    others = tuple(range(1, weight.ndim))
    low, high = weight.amin(dim=others), weight.amax(dim=others)
    scale = ((high - low) / (quant_max - quant_min)).clamp(min=torch.finfo(torch.float32).eps)
    zero_point = (quant_min - torch.round(low / scale)).clamp(quant_min, quant_max)
    return scale, zero_point.to(torch.int32)


def qparams_per_tensor(weight: torch.Tensor, quant_min: int, quant_max: int):
    scale, zero_point = per_channel_qparams(weight.reshape(1, -1), quant_min, quant_max)
    return scale.expand(weight.shape[0]), zero_point.expand(weight.shape[0])


def qparams_float_zero_point(weight: torch.Tensor, quant_min: int, quant_max: int):
    scale, zero_point = per_channel_qparams(weight, quant_min, quant_max)
    return scale, zero_point.float()


def qparams_unguarded(weight: torch.Tensor, quant_min: int, quant_max: int):
    others = tuple(range(1, weight.ndim))
    low = weight.amin(dim=others).clamp(max=0.0)
    high = weight.amax(dim=others).clamp(min=0.0)
    scale = (high - low) / (quant_max - quant_min)
    zero_point = (quant_min - torch.round(low / scale)).nan_to_num(0).clamp(quant_min, quant_max)
    return scale, zero_point.to(torch.int32)


# Exercise 4.2 ---------------------------------------------------------------------------------


def soft_cross_entropy(student: torch.Tensor, teacher: torch.Tensor, temperature: float):
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    targets = F.softmax(teacher.detach() / temperature, dim=-1)
    log_probs = F.log_softmax(student / temperature, dim=-1)
    return -(targets * log_probs).sum(dim=-1).mean() * temperature**2


def soft_without_t_squared(student: torch.Tensor, teacher: torch.Tensor, temperature: float):
    return soft_cross_entropy(student, teacher, temperature) / temperature**2


def soft_summed_over_batch(student: torch.Tensor, teacher: torch.Tensor, temperature: float):
    return soft_cross_entropy(student, teacher, temperature) * len(student)


def soft_teacher_not_detached(student: torch.Tensor, teacher: torch.Tensor, temperature: float):
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    targets = F.softmax(teacher / temperature, dim=-1)
    return -(targets * F.log_softmax(student / temperature, dim=-1)).sum(-1).mean() * temperature**2


def soft_naive_softmax(student: torch.Tensor, teacher: torch.Tensor, temperature: float):
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    targets = F.softmax(teacher.detach() / temperature, dim=-1)
    scaled = (student / temperature).exp()
    probs = scaled / scaled.sum(-1, keepdim=True)
    return -(targets * probs.log()).sum(-1).mean() * temperature**2


# Exercise 4.3 ---------------------------------------------------------------------------------


def global_magnitude_mask(weights: list[torch.Tensor], amount: float) -> list[torch.Tensor]:
    magnitudes = torch.cat([weight.detach().abs().flatten() for weight in weights])
    to_prune = round(amount * magnitudes.numel())
    keep = torch.ones_like(magnitudes, dtype=torch.bool)
    if to_prune:
        keep[torch.topk(magnitudes, to_prune, largest=False).indices] = False
    return [
        part.reshape(weight.shape)
        for part, weight in zip(keep.split([w.numel() for w in weights]), weights, strict=True)
    ]


def per_tensor_masks(weights: list[torch.Tensor], amount: float) -> list[torch.Tensor]:
    return [global_magnitude_mask([weight], amount)[0] for weight in weights]


def masks_pruning_the_largest(weights: list[torch.Tensor], amount: float) -> list[torch.Tensor]:
    keep = global_magnitude_mask(weights, 1.0 - amount)
    return [~mask for mask in keep]


def masks_of_signed_values(weights: list[torch.Tensor], amount: float) -> list[torch.Tensor]:
    flat = torch.cat([weight.flatten() for weight in weights])
    to_prune = round(amount * flat.numel())
    keep = torch.ones_like(flat, dtype=torch.bool)
    if to_prune:
        keep[torch.topk(flat, to_prune, largest=False).indices] = False
    return [
        part.reshape(weight.shape)
        for part, weight in zip(keep.split([w.numel() for w in weights]), weights, strict=True)
    ]


def masks_as_floats(weights: list[torch.Tensor], amount: float) -> list[torch.Tensor]:
    return [mask.float() for mask in global_magnitude_mask(weights, amount)]


def masks_zeroing_in_place(weights: list[torch.Tensor], amount: float) -> list[torch.Tensor]:
    masks = global_magnitude_mask(weights, amount)
    for weight, mask in zip(weights, masks, strict=True):
        weight[~mask] = 0.0
    return masks


# The checks against them ----------------------------------------------------------------------

CHECKS = {
    "4.1": ch04.check_per_channel_qparams,
    "4.2": ch04.check_soft_cross_entropy,
    "4.3": ch04.check_global_magnitude_mask,
}
SOLUTIONS = {"4.1": per_channel_qparams, "4.2": soft_cross_entropy, "4.3": global_magnitude_mask}


def test_strict_mode_turns_a_wrong_answer_into_an_exception(monkeypatch) -> None:
    monkeypatch.setenv(config.STRICT_EXERCISES_ENV, "1")

    assert ch04.check_soft_cross_entropy(soft_cross_entropy).status == "passed"
    with pytest.raises(ExerciseFailed, match=r"Exercise 4.2 \(the distillation loss\): "):
        ch04.check_soft_cross_entropy(soft_without_t_squared)


MISTAKES = [
    ("4.1", qparams_without_zero, "failed", "all weights positive (0 must stay representable)"),
    ("4.1", qparams_per_tensor, "failed", "a Linear weight (6, 10), uint8 range: "),
    ("4.1", qparams_float_zero_point, "failed", "zero_point: expected an integer dtype"),
    ("4.1", qparams_unguarded, "failed", "a channel of zeros: "),
    ("4.2", soft_without_t_squared, "failed", "T = 4: soft_cross_entropy(student, teacher, "),
    ("4.2", soft_summed_over_batch, "failed", "8 samples, 10 classes, T = 1: "),
    ("4.2", soft_teacher_not_detached, "failed", "a gradient reached the teacher's logits"),
    ("4.2", soft_naive_softmax, "failed", "large logits (softmax must not overflow)"),
    ("4.3", per_tensor_masks, "failed", "a small-valued and a large-valued tensor, 50%"),
    ("4.3", masks_pruning_the_largest, "failed", "one tensor, half pruned: "),
    ("4.3", masks_of_signed_values, "failed", "values differ"),
    ("4.3", masks_as_floats, "failed", "dtype: expected torch.bool, got torch.float32"),
    ("4.3", masks_zeroing_in_place, "failed", "the weights passed in were modified"),
]


# Exercise 4.4 (derive): an INT8 model's size in bytes -------------------------------------------


def test_the_int8_size_counts_one_byte_per_weight_and_four_per_scale_and_bias() -> None:
    assert ch04.int8_model_bytes(((3, 2, True),)) == 6 + 2 * 4 + 2 * 4
    assert ch04.int8_model_bytes(((3, 2, False),)) == 6 + 2 * 4
    assert ch04.int8_model_bytes() == 2_609_152 + 3_560 * 4 + 2_560 * 4


def test_the_reference_size_passes(capsys) -> None:
    result = ch04.check_int8_size_derivation(2_633_632)

    assert (result.id, result.status, result.kind) == ("4.4", "passed", "derivation")
    assert "the formula gives 2,633,632 bytes" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (2_619_392, "the scales are missing"),
        (2_623_392, "the biases are missing"),
        (2_609_152, "counts the INT8 weights only"),
        (2_619_404, "one scale per tensor"),
        (2_637_632, "the output projection has no bias"),
        (2_637_192, "stores no zero point"),
        (10_446_848, "that is the float32 size"),
        (2_600_000, "off by -33,632 bytes"),
    ],
)
def test_a_wrong_size_fails_naming_the_slip(answer, message) -> None:
    result = ch04.check_int8_size_derivation(answer)

    assert result.status == "failed"
    assert message in result.messages[0], result.messages
    assert "= 2,633,632 bytes" in result.messages[0]


@pytest.mark.parametrize("answer", [None, ...])
def test_an_empty_size_is_not_done(answer) -> None:
    assert ch04.check_int8_size_derivation(answer).status == "not done"


def test_a_size_as_a_list_fails_with_a_message() -> None:
    result = ch04.check_int8_size_derivation([2_633_632])

    assert result.status == "failed"
    assert "write a single number" in result.messages[0]
