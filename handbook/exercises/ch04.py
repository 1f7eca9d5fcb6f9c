"""Checks for the exercises of chapter 4, compression for the edge.

Each check runs the learner's function on several inputs, edge cases included, and compares it
with a library that does the same job: torchao's ``choose_qparams_affine`` for quantization
parameters, ``torch.nn.functional.cross_entropy`` with probability targets for the soft
distillation loss, ``torch.nn.utils.prune.global_unstructured`` for global pruning masks.
Call them from the check cells: ``ch04.check_per_channel_qparams(per_channel_qparams)``.
Exercise 4.4 is a derivation: the learner writes a number of bytes, and the check quantizes the
layers with ``handbook.compression`` and counts the bytes of what it stores.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from handbook.exercises import checks
from handbook.exercises.checks import (
    Case,
    ExerciseResult,
    check_exercise,
    expect,
    expect_close,
    expect_equal,
    expect_raises,
    expect_shape,
    expect_type,
)
from handbook.i18n import _

# Exercise 4.1 ---------------------------------------------------------------------------------


def _reference_qparams(
    weight: torch.Tensor, quant_min: int, quant_max: int
) -> tuple[torch.Tensor, torch.Tensor]:
    from torchao.quantization.quant_primitives import MappingType, choose_qparams_affine

    block = (1, *weight.shape[1:])
    scale, zero_point = choose_qparams_affine(
        weight,
        MappingType.ASYMMETRIC,
        block,
        torch.int32,
        quant_min,
        quant_max,
        eps=torch.finfo(torch.float32).eps,
    )
    return scale.flatten(), zero_point.flatten()


def check_per_channel_qparams(
    per_channel_qparams: Callable[[torch.Tensor, int, int], tuple[torch.Tensor, torch.Tensor]],
) -> ExerciseResult:
    """Exercise 4.1: ``per_channel_qparams(weight, quant_min, quant_max)``.

    ``weight``: float tensor ``(C, ...)``; returns ``(scale, zero_point)``, both ``(C,)``: per
    output channel, the affine scale ``(max - min) / (quant_max - quant_min)`` over a range
    stretched to include 0, and the integer zero point that maps 0.0 exactly, clamped to
    ``[quant_min, quant_max]``. A channel of zeros gets the float32 epsilon as its scale.
    Compared with torchao's ``choose_qparams_affine`` (ASYMMETRIC).
    """
    generator = torch.Generator().manual_seed(0)
    linear = torch.randn(6, 10, generator=generator) * torch.linspace(0.1, 3, 6)[:, None]
    conv = torch.randn(4, 3, 3, 3, generator=generator)
    positive = linear.abs() + 0.5
    with_zeros = linear.clone()
    with_zeros[1] = 0.0
    cases = [
        _qparams_case(
            per_channel_qparams, _("a Linear weight (6, 10), uint8 range"), linear, 0, 255
        ),
        _qparams_case(per_channel_qparams, _("a Conv2d weight (4, 3, 3, 3)"), conv, 0, 255),
        _qparams_case(per_channel_qparams, _("the int8 range -128..127"), linear, -128, 127),
        _qparams_case(
            per_channel_qparams,
            _("all weights positive (0 must stay representable)"),
            positive,
            0,
            255,
        ),
        _qparams_case(per_channel_qparams, _("all weights negative"), -positive, 0, 255),
        _qparams_case(per_channel_qparams, _("a channel of zeros"), with_zeros, 0, 255),
        Case(
            _("0.0 is represented exactly after quantize/dequantize"),
            lambda: _expect_zero_exact(per_channel_qparams, linear),
        ),
    ]
    return check_exercise("4.1", _("per-channel scale and zero point"), cases)


def _qparams_case(function, description, weight, quant_min, quant_max) -> Case:
    def run() -> None:
        what = f"per_channel_qparams(weight, {quant_min}, {quant_max})"
        result = function(weight.clone(), quant_min, quant_max)
        expect(
            isinstance(result, tuple) and len(result) == 2,
            _("{what}: expected a tuple (scale, zero_point), got {type}").format(
                what=what, type=type(result).__name__
            ),
        )
        scale, zero_point = result
        expected_scale, expected_zero = _reference_qparams(weight, quant_min, quant_max)
        for name, value in (("scale", scale), ("zero_point", zero_point)):
            expect_type(value, torch.Tensor, f"{what} {name}")
            expect_shape(
                value,
                (weight.shape[0],),
                _("{what} {name} (one per output channel)").format(what=what, name=name),
            )
        expect(
            not zero_point.dtype.is_floating_point,
            _("{what} zero_point: expected an integer dtype, got {dtype}").format(
                what=what, dtype=zero_point.dtype
            ),
        )
        expect_close(scale, expected_scale, f"{what} scale", atol=1e-7, rtol=1e-5)
        expect_equal(zero_point.long(), expected_zero.long(), f"{what} zero_point")

    return Case(description, run)


def _expect_zero_exact(function, weight: torch.Tensor) -> None:
    scale, zero_point = function(weight.clone(), 0, 255)
    zeros = torch.zeros_like(weight)
    round_trip = torch.fake_quantize_per_channel_affine(
        zeros, scale.float(), zero_point.int(), 0, 0, 255
    )
    expect_close(round_trip, zeros, _("fake-quantized zeros"), atol=0.0, rtol=0.0)


# Exercise 4.2 ---------------------------------------------------------------------------------


def check_soft_cross_entropy(
    soft_cross_entropy: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor],
) -> ExerciseResult:
    """Exercise 4.2: ``soft_cross_entropy(student_logits, teacher_logits, temperature)``.

    Logits ``(batch, classes)``; returns a scalar tensor, ``T^2`` times the batch mean of the
    cross-entropy between the teacher's softened distribution (the target) and the student's,
    compared with ``F.cross_entropy`` given probability targets. Gradients must reach the
    student's logits and not the teacher's.
    """
    generator = torch.Generator().manual_seed(1)
    student = torch.randn(8, 10, generator=generator)
    teacher = torch.randn(8, 10, generator=generator) * 3
    cases = [
        _soft_case(soft_cross_entropy, _("8 samples, 10 classes, T = 1"), student, teacher, 1.0),
        _soft_case(soft_cross_entropy, "T = 4", student, teacher, 4.0),
        _soft_case(
            soft_cross_entropy, _("T = 0.5 (sharper than the teacher)"), student, teacher, 0.5
        ),
        _soft_case(soft_cross_entropy, _("a single sample"), student[:1], teacher[:1], 2.0),
        _soft_case(
            soft_cross_entropy,
            _("large logits (softmax must not overflow)"),
            student * 200,
            teacher * 200,
            2.0,
        ),
        Case(_("gradients reach the student only"), lambda: _expect_gradients(soft_cross_entropy)),
        Case(
            _("a non-positive temperature"),
            lambda: expect_raises(
                lambda: soft_cross_entropy(student, teacher, 0.0),
                ValueError,
                "soft_cross_entropy(..., temperature=0)",
            ),
        ),
    ]
    return check_exercise("4.2", _("the distillation loss"), cases)


def _reference_soft(student: torch.Tensor, teacher: torch.Tensor, temperature: float):
    targets = F.softmax(teacher / temperature, dim=-1)
    return temperature**2 * F.cross_entropy(student / temperature, targets)


def _soft_case(function, description, student, teacher, temperature) -> Case:
    def run() -> None:
        what = f"soft_cross_entropy(student, teacher, temperature={temperature})"
        result = function(student.clone(), teacher.clone(), temperature)
        expect_type(result, torch.Tensor, what)
        expect_shape(result, (), _("{what} (a scalar)").format(what=what))
        expected = _reference_soft(student, teacher, temperature)
        expect_close(result.detach(), expected, what, atol=1e-4, rtol=1e-4)

    return Case(description, run)


def _expect_gradients(function) -> None:
    student = torch.randn(4, 5, requires_grad=True)
    teacher = torch.randn(4, 5, requires_grad=True)
    function(student, teacher, 2.0).backward()
    expected = torch.autograd.grad(_reference_soft(student, teacher.detach(), 2.0), student)[0]
    expect(student.grad is not None, _("no gradient reached the student's logits"))
    expect_close(
        student.grad, expected, _("gradient with respect to the student's logits"), atol=1e-5
    )
    expect(
        teacher.grad is None or bool(torch.all(teacher.grad == 0)),
        _("a gradient reached the teacher's logits: the teacher is a fixed target (detach it)"),
    )


# Exercise 4.3 ---------------------------------------------------------------------------------


def check_global_magnitude_mask(
    global_magnitude_mask: Callable[[list[torch.Tensor], float], list[torch.Tensor]],
) -> ExerciseResult:
    """Exercise 4.3: ``global_magnitude_mask(weights, amount)``.

    ``weights``: a list of float tensors of any shapes; returns a list of boolean masks of the
    same shapes, False for the ``round(amount * total)`` weights of smallest magnitude across
    all tensors together (one threshold for the whole model), True elsewhere. Compared with
    ``torch.nn.utils.prune.global_unstructured`` (L1Unstructured).
    """
    generator = torch.Generator().manual_seed(2)
    small = torch.randn(8, 4, generator=generator) * 0.1
    large = torch.randn(3, 2, 3, 3, generator=generator) * 2.0
    vector = torch.randn(5, generator=generator)
    cases = [
        _mask_case(global_magnitude_mask, _("one tensor, half pruned"), [small], 0.5),
        _mask_case(
            global_magnitude_mask,
            _("a small-valued and a large-valued tensor, 50% (most goes from the small one)"),
            [small, large],
            0.5,
        ),
        _mask_case(global_magnitude_mask, _("three tensors, 80%"), [small, large, vector], 0.8),
        _mask_case(global_magnitude_mask, _("amount 0 keeps everything"), [small, large], 0.0),
        _mask_case(global_magnitude_mask, _("amount 1 prunes everything"), [small, vector], 1.0),
        _mask_case(
            global_magnitude_mask, _("an amount that does not divide evenly"), [vector], 0.3
        ),
        Case(
            _("the weights are left unchanged"),
            lambda: _expect_weights_unchanged(global_magnitude_mask, [small, large]),
        ),
    ]
    return check_exercise("4.3", _("a global magnitude-pruning mask"), cases)


def _reference_masks(weights: list[torch.Tensor], amount: float) -> list[torch.Tensor]:
    from torch.nn.utils import prune

    holders = []
    for weight in weights:
        holder = nn.Module()
        holder.weight = nn.Parameter(weight.clone())
        holders.append(holder)
    prune.global_unstructured(
        [(holder, "weight") for holder in holders],
        pruning_method=prune.L1Unstructured,
        amount=amount,
    )
    return [holder.weight_mask.bool() for holder in holders]


def _mask_case(function, description, weights, amount) -> Case:
    def run() -> None:
        what = f"global_magnitude_mask(weights, amount={amount})"
        result = function([weight.clone() for weight in weights], amount)
        expect(
            isinstance(result, (list, tuple)) and len(result) == len(weights),
            (
                _("{what}: expected a list of {count} masks, got {type} of length {length}")
                if isinstance(result, (list, tuple))
                else _("{what}: expected a list of {count} masks, got {type}")
            ).format(
                what=what,
                count=len(weights),
                type=type(result).__name__,
                length=len(result) if isinstance(result, (list, tuple)) else 0,
            ),
        )
        expected = _reference_masks(weights, amount)
        for index, (mask, reference) in enumerate(zip(result, expected, strict=True)):
            expect_type(mask, torch.Tensor, f"{what}[{index}]")
            expect_equal(
                mask.dtype, torch.bool, _("{what}[{index}] dtype").format(what=what, index=index)
            )
            expect_equal(mask, reference, f"{what}[{index}]")

    return Case(description, run)


def _expect_weights_unchanged(function, weights: list[torch.Tensor]) -> None:
    originals = [weight.clone() for weight in weights]
    copies = [weight.clone() for weight in weights]
    function(copies, 0.5)
    for copy, original in zip(copies, originals, strict=True):
        expect(
            torch.equal(copy, original),
            _("the weights passed in were modified; expected only masks to be returned"),
        )


# Exercise 4.4 ---------------------------------------------------------------------------------

#: The layers of exercise 4.4: ``(in_features, out_features, bias)``: a Transformer feed-forward
#: block and an output projection without a bias.
DERIVATION_LAYERS = ((512, 2048, True), (2048, 512, True), (512, 1000, False))
FLOAT32_BYTES = 4


def int8_model_bytes(layers=DERIVATION_LAYERS) -> int:
    """Bytes of ``layers`` stored as symmetric INT8 weights with one float32 scale per output
    channel, biases left in float32: quantized with :func:`handbook.compression.quantize_symmetric`
    and counted from the tensors it returns (``nbytes``)."""
    from handbook import compression

    generator = torch.Generator().manual_seed(0)
    total = 0
    for in_features, out_features, bias in layers:
        weight = torch.randn(out_features, in_features, generator=generator)
        q, scale = compression.quantize_symmetric(weight, axis=0)
        total += q.nbytes + scale.float().nbytes
        if bias:
            total += torch.zeros(out_features, dtype=torch.float32).nbytes
    return total


def _size_slips() -> dict[int, str]:
    """Answers a typical slip gives, and what each one forgot."""
    weights = sum(i * o for i, o, _ in DERIVATION_LAYERS)
    channels = sum(o for _, o, _ in DERIVATION_LAYERS)
    biases = sum(o for _, o, bias in DERIVATION_LAYERS if bias)
    right = weights + FLOAT32_BYTES * (channels + biases)
    tensors = len(DERIVATION_LAYERS)
    return {
        right - FLOAT32_BYTES * channels: _(
            "the scales are missing: one float32 per output channel of every layer"
        ),
        right - FLOAT32_BYTES * biases: _("the biases are missing: they stay float32"),
        right - FLOAT32_BYTES * (channels + biases): _(
            "that counts the INT8 weights only; the scales and the biases are stored too"
        ),
        weights + FLOAT32_BYTES * (tensors + biases): _(
            "that is one scale per tensor; here every output channel has its own"
        ),
        right + FLOAT32_BYTES * (channels - biases): _("the output projection has no bias"),
        right + channels: _("symmetric quantization stores no zero point"),
        FLOAT32_BYTES * (weights + biases): _(
            "that is the float32 size: an INT8 weight takes one byte"
        ),
        8 * weights + FLOAT32_BYTES * (channels + biases): _(
            "an INT8 weight takes one byte (8 bits), not 8 bytes"
        ),
    }


def check_int8_size_derivation(answer: object) -> ExerciseResult:
    """Exercise 4.4 (derive): the bytes of three Linear layers at INT8 with per-channel scales.

    ``answer`` is a number of bytes. The expected value is counted from the tensors
    ``compression.quantize_symmetric(weight, axis=0)`` returns; a typical slip (scales or biases
    left out, one scale per tensor, a bias on the projection, float32 weights) is named.
    """
    expected = int8_model_bytes()
    weights = sum(i * o for i, o, _ in DERIVATION_LAYERS)
    channels = sum(o for _, o, _ in DERIVATION_LAYERS)
    biases = sum(o for _, o, bias in DERIVATION_LAYERS if bias)
    explain = _(
        "INT8: {weights:,} weights x 1 byte + {channels:,} output channels x 4 bytes of scale + "
        "{biases:,} biases x 4 bytes = {total:,} bytes"
    ).format(weights=weights, channels=channels, biases=biases, total=expected)
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        why = _size_slips().get(round(answer)) if float(answer).is_integer() else None
        if why is not None and round(answer) != expected:
            explain = _("Likely slip: {why}.").format(why=why) + "\n" + explain
    return checks.check_number(
        "4.4",
        _("an INT8 model's size in bytes"),
        answer,
        expected,
        tolerance=0.5,
        relative=False,
        unit=_("bytes"),
        kind=checks.DERIVATION,
        explain=explain,
    )
