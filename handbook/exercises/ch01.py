"""Checks for the exercises of chapter 1, attention and the Transformer.

Each check runs the learner's function on several shapes and edge cases and compares it with
PyTorch (``torch.nn.functional.scaled_dot_product_attention``) or with the tested reference in
:mod:`handbook.models.attention`. Masks follow the book's convention: a boolean tensor, ``True`` =
"this query may attend to this key". Exercise 1.5 is a find-the-bug: its check says when the
fixed function still shows the bug's symptom (a query that sees its future). Exercise 1.6 is a
derivation: :func:`check_attention_memory_derivation` computes the bytes of an attention-weight
tensor itself and names the typical slip a wrong answer matches. Call them from the check cells:
``ch01.check_causal_mask(causal_mask)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from handbook import models
from handbook.exercises.checks import (
    DERIVATION,
    Case,
    ExerciseResult,
    check_exercise,
    check_number,
    expect,
    expect_close,
    expect_equal,
    expect_raises,
    expect_shape,
    expect_type,
)
from handbook.i18n import _

# Exercise 1.1 ---------------------------------------------------------------------------------


def check_causal_mask(causal_mask: Callable[[int], torch.Tensor]) -> ExerciseResult:
    """Exercise 1.1: ``causal_mask(seq_len)``.

    The answer is a boolean tensor ``(seq_len, seq_len)`` whose entry ``[i, j]`` is True when
    query ``i`` may attend to key ``j``, that is when ``j <= i``; ``seq_len = 0`` gives an empty
    ``(0, 0)`` mask.
    """
    cases = [_causal_case(causal_mask, f"seq_len={n}", n) for n in (4, 1, 7, 0)]
    return check_exercise("1.1", _("causal mask"), cases)


def _causal_case(causal_mask: Callable[[int], torch.Tensor], description: str, n: int) -> Case:
    def run() -> None:
        result = causal_mask(n)
        what = f"causal_mask({n})"
        expect_type(result, torch.Tensor, what)
        expect(
            result.dtype == torch.bool,
            _("{what}: expected a boolean tensor (True = may attend), got dtype {dtype}").format(
                what=what, dtype=result.dtype
            ),
        )
        expect_equal(result, models.causal_mask(n), what)

    return Case(description, run)


# Exercise 1.2 ---------------------------------------------------------------------------------


def _qkv(shape_q, shape_k, dv, seed, scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(*shape_q, generator=generator) * scale
    k = torch.randn(*shape_k, generator=generator) * scale
    v = torch.randn(*shape_k[:-1], dv, generator=generator)
    return q, k, v


def check_attention(
    scaled_dot_product_attention: Callable[..., torch.Tensor],
) -> ExerciseResult:
    """Exercise 1.2: ``scaled_dot_product_attention(q, k, v, mask=None)``.

    ``q`` ``(..., L, d)``, ``k`` ``(..., S, d)``, ``v`` ``(..., S, dv)``, ``mask`` boolean and
    broadcastable to ``(..., L, S)``, True = may attend. The answer is the output
    ``softmax(q k^T / sqrt(d)) v`` of shape ``(..., L, dv)``, compared with
    ``torch.nn.functional.scaled_dot_product_attention`` (tolerance 1e-5).
    """
    causal = models.causal_mask(6)
    padding = models.padding_mask([6, 3])[:, None, None, :]
    cases = [
        _attention_case(
            scaled_dot_product_attention,
            _("3-D inputs (2, 5, 8)"),
            _qkv((2, 5, 8), (2, 5, 8), 8, seed=1),
        ),
        _attention_case(
            scaled_dot_product_attention,
            _("batch and heads (2, 3, 6, 16)"),
            _qkv((2, 3, 6, 16), (2, 3, 6, 16), 16, seed=2),
        ),
        _attention_case(
            scaled_dot_product_attention,
            _("4 queries, 7 keys, values of width 5"),
            _qkv((1, 4, 8), (1, 7, 8), 5, seed=3),
        ),
        _attention_case(
            scaled_dot_product_attention,
            _("large scores (d = 64, entries ~ 3)"),
            _qkv((2, 6, 64), (2, 6, 64), 4, seed=4, scale=3.0),
        ),
        _attention_case(
            scaled_dot_product_attention,
            _("a causal mask (6, 6)"),
            _qkv((2, 3, 6, 8), (2, 3, 6, 8), 8, seed=5),
            mask=causal,
        ),
        _attention_case(
            scaled_dot_product_attention,
            _("a padding mask (2, 1, 1, 6): the second sequence has 3 real keys"),
            _qkv((2, 3, 6, 8), (2, 3, 6, 8), 8, seed=6),
            mask=padding,
        ),
    ]
    return check_exercise("1.2", _("scaled dot-product attention"), cases)


def _attention_case(function, description, qkv, mask=None) -> Case:
    def run() -> None:
        q, k, v = qkv
        arguments = (q.clone(), k.clone(), v.clone())
        result = function(*arguments) if mask is None else function(*arguments, mask=mask)
        what = "scaled_dot_product_attention(q, k, v" + (
            ", mask=mask)" if mask is not None else ")"
        )
        if isinstance(result, tuple):
            raise AssertionError(
                _("{what}: expected the output tensor only, got a tuple of {count} items").format(
                    what=what, count=len(result)
                )
            )
        expect_type(result, torch.Tensor, what)
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        expect_shape(result, tuple(expected.shape), what)
        expect_close(result, expected, what, atol=1e-5, rtol=1e-4)

    return Case(description, run)


# Exercise 1.3 ---------------------------------------------------------------------------------


def check_split_and_merge_heads(
    split_heads: Callable[[torch.Tensor, int], torch.Tensor],
    merge_heads: Callable[[torch.Tensor], torch.Tensor],
) -> ExerciseResult:
    """Exercise 1.3: ``split_heads(x, num_heads)`` and ``merge_heads(x)``.

    ``split_heads``: ``(batch, seq, d_model)`` -> ``(batch, heads, seq, d_model // heads)``,
    head ``h`` holding features ``h * d_head .. (h + 1) * d_head - 1`` of every token (the layout
    of ``torch.nn.MultiheadAttention``); a ``d_model`` not divisible by ``num_heads`` raises
    ValueError. ``merge_heads`` undoes it: ``merge_heads(split_heads(x, h))`` equals ``x``.
    """
    generator = torch.Generator().manual_seed(7)
    inputs = [
        (_("(2, 5, 8) into 2 heads"), torch.randn(2, 5, 8, generator=generator), 2),
        (_("(3, 4, 12) into 4 heads"), torch.randn(3, 4, 12, generator=generator), 4),
        (_("(1, 1, 6) into 1 head"), torch.randn(1, 1, 6, generator=generator), 1),
        (
            _("(2, 3, 16) into 16 heads of width 1"),
            torch.randn(2, 3, 16, generator=generator),
            16,
        ),
    ]
    cases = [_split_case(split_heads, d, x, h) for d, x, h in inputs]
    cases += [_merge_case(split_heads, merge_heads, d, x, h) for d, x, h in inputs[:2]]
    cases.append(
        Case(
            _("d_model = 10 into 4 heads"),
            lambda: expect_raises(
                lambda: split_heads(torch.zeros(1, 2, 10), 4), ValueError, "split_heads(x, 4)"
            ),
        )
    )
    return check_exercise("1.3", _("split and merge heads"), cases)


def _split_case(split_heads, description, x, num_heads) -> Case:
    def run() -> None:
        result = split_heads(x.clone(), num_heads)
        what = _("split_heads(x of shape {shape}, {num_heads})").format(
            shape=tuple(x.shape), num_heads=num_heads
        )
        expect_type(result, torch.Tensor, what)
        expected = models.split_heads(x, num_heads)
        expect_shape(result, tuple(expected.shape), what)
        expect(
            torch.equal(result, expected),
            _(
                "{what}: right shape, wrong values; head 0 should hold features "
                "0..{last} of every token, e.g. result[0, 0, 0] should be "
                "{expected}, got {actual}"
            ).format(
                what=what,
                last=x.shape[-1] // num_heads - 1,
                expected=expected[0, 0, 0].tolist(),
                actual=result[0, 0, 0].tolist(),
            ),
        )

    return Case(_("split {description}").format(description=description), run)


def _merge_case(split_heads, merge_heads, description, x, num_heads) -> Case:
    def run() -> None:
        heads = models.split_heads(x, num_heads)
        result = merge_heads(heads.clone())
        what = _("merge_heads(x of shape {shape})").format(shape=tuple(heads.shape))
        expect_type(result, torch.Tensor, what)
        expect_shape(result, tuple(x.shape), what)
        expect_close(result, x, what, atol=0.0, rtol=0.0)

    return Case(_("merge {description} back").format(description=description), run)


# Exercise 1.4 ---------------------------------------------------------------------------------


def check_positional_encoding(
    positional_encoding: Callable[[int, int], torch.Tensor],
) -> ExerciseResult:
    """Exercise 1.4: ``positional_encoding(max_len, d_model)``.

    A float32 tensor ``(max_len, d_model)`` with ``PE[pos, 2i] = sin(pos / 10000^(2i/d_model))``
    and ``PE[pos, 2i+1] = cos(pos / 10000^(2i/d_model))``, compared with
    :func:`handbook.models.sinusoidal_positional_encoding` (tolerance 1e-5).
    """
    sizes = [(10, 16), (50, 64), (1, 8), (128, 32), (6, 2)]
    cases = [
        _encoding_case(positional_encoding, f"max_len={n}, d_model={d}", n, d) for n, d in sizes
    ]
    return check_exercise("1.4", _("sinusoidal positional encoding"), cases)


def _encoding_case(positional_encoding, description, max_len, d_model) -> Case:
    def run() -> None:
        result = positional_encoding(max_len, d_model)
        what = f"positional_encoding({max_len}, {d_model})"
        expect_type(result, torch.Tensor, what)
        expected = models.sinusoidal_positional_encoding(max_len, d_model)
        expect_shape(result, tuple(expected.shape), what)
        expect(
            result.dtype == torch.float32,
            _("{what}: expected dtype torch.float32, got {dtype}").format(
                what=what, dtype=result.dtype
            ),
        )
        expect_close(result, expected, what, atol=1e-5, rtol=1e-5)

    return Case(description, run)


# Exercise 1.5 ---------------------------------------------------------------------------------


def check_causal_attention(causal_attention: Callable[..., torch.Tensor]) -> ExerciseResult:
    """Exercise 1.5 (find the bug): ``causal_attention(q, k, v)``.

    ``q``, ``k`` ``(..., L, d)`` and ``v`` ``(..., L, dv)``; the answer is the output of causal
    scaled dot-product attention ``(..., L, dv)``, query ``i`` attending to keys ``0 .. i``,
    compared with ``torch.nn.functional.scaled_dot_product_attention(..., is_causal=True)``.
    The chapter's ``buggy_causal_attention`` lets every query see one key of its future; a case
    that finds that symptom says "still has the bug".
    """
    cases = [
        _causal_attention_case(
            causal_attention, _("3-D inputs (2, 5, 8)"), _qkv((2, 5, 8), (2, 5, 8), 8, seed=11)
        ),
        _causal_attention_case(
            causal_attention,
            _("batch and heads (2, 3, 6, 16)"),
            _qkv((2, 3, 6, 16), (2, 3, 6, 16), 16, seed=12),
        ),
        _causal_attention_case(
            causal_attention,
            _("a single token (L = 1)"),
            _qkv((2, 1, 4), (2, 1, 4), 4, seed=13),
        ),
        _causal_attention_case(
            causal_attention,
            _("values of another width (d = 8, dv = 5)"),
            _qkv((1, 7, 8), (1, 7, 8), 5, seed=14),
        ),
        _causal_attention_case(
            causal_attention,
            _("large scores (d = 64, entries ~ 3)"),
            _qkv((2, 6, 64), (2, 6, 64), 4, seed=15, scale=3.0),
        ),
        Case(
            _("no output depends on a later token"),
            lambda: _expect_no_future(causal_attention, _qkv((1, 6, 8), (1, 6, 8), 8, seed=16)),
        ),
    ]
    return check_exercise("1.5", _("causal attention, bug fixed"), cases)


def _causal_attention_case(function, description, qkv) -> Case:
    def run() -> None:
        q, k, v = qkv
        result = function(q.clone(), k.clone(), v.clone())
        what = _("causal_attention(q, k, v of shape {shape})").format(shape=tuple(v.shape))
        expect_type(result, torch.Tensor, what)
        expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        expect_shape(result, tuple(expected.shape), what)
        _expect_no_future(function, qkv)
        expect_close(result, expected, what, atol=1e-5, rtol=1e-4)

    return Case(description, run)


def _expect_no_future(function, qkv) -> None:
    """Fail with the bug's symptom when an output moves as a token after it changes."""
    q, k, v = qkv
    length = q.shape[-2]
    baseline = function(q.clone(), k.clone(), v.clone())
    for later in range(1, length):
        changed_k, changed_v = k.clone(), v.clone()
        changed_k[..., later, :] += 5.0
        changed_v[..., later, :] += 5.0
        moved = function(q.clone(), changed_k, changed_v)
        earlier = (moved[..., :later, :] - baseline[..., :later, :]).abs()
        if bool((earlier > 1e-6).any()):
            position = int((earlier > 1e-6).nonzero()[0, -2])
            raise AssertionError(
                _(
                    "still has the bug: the output at position {position} changes when only the "
                    "key and value of token {later} change; query {position} may attend to keys "
                    "0 .. {position}, and sees its future"
                ).format(position=position, later=later)
            )


# Exercise 1.6 ---------------------------------------------------------------------------------

#: Exercise 1.6's layer: batch 1, 12 heads, 4,096 tokens, float16 weights.
MEMORY_BATCH, MEMORY_HEADS, MEMORY_LENGTH, MEMORY_DTYPE = 1, 12, 4096, torch.float16
#: Within 0.5%: rounding is fine, megabytes for mebibytes (4.9% more) are not.
MEMORY_TOLERANCE = 0.005
MEBIBYTE = 2**20


def attention_weight_bytes(
    batch: int = MEMORY_BATCH,
    heads: int = MEMORY_HEADS,
    length: int = MEMORY_LENGTH,
    dtype: torch.dtype = MEMORY_DTYPE,
) -> int:
    """Bytes of one attention-weight tensor ``(batch, heads, length, length)`` of ``dtype``."""
    element = torch.empty(0, dtype=dtype).element_size()
    return batch * heads * length * length * element


def attention_memory_slips() -> dict[float, str]:
    """Exercise 1.6's typical wrong answers in MiB (value -> what it corresponds to)."""
    true = attention_weight_bytes() / MEBIBYTE
    element = torch.empty(0, dtype=MEMORY_DTYPE).element_size()
    return {
        true / MEMORY_HEADS: _("one head's matrix; the layer holds one per head"),
        2 * true: _(
            "twice the true value: 4 bytes a number (float32) or the scores and the weights "
            "together; the question is one float16 weight tensor"
        ),
        true * MEBIBYTE / 1e6: _(
            "the size in megabytes (10^6 bytes); a MiB is 2^20 = 1,048,576 bytes"
        ),
        true / 1024: _("the size in GiB; the question asks for MiB"),
        8 * true: _("the size in bits; a float16 number takes 2 bytes"),
        true / MEMORY_LENGTH: _(
            "the size of (batch, heads, L) numbers; the weights are L x L per head"
        ),
        true / element: _("the number of values in units of 2^20, without their 2 bytes each"),
    }


def check_attention_memory_derivation(weights_mib: object) -> ExerciseResult:
    """Exercise 1.6 (derive): how many MiB the attention weights of one layer take, for
    :data:`MEMORY_BATCH` sequence of :data:`MEMORY_LENGTH` tokens, :data:`MEMORY_HEADS` heads,
    float16. The true value is computed from the tensor's shape and ``element_size()``; within
    0.5% passes, and a typical slip is named in the message."""
    expected = attention_weight_bytes() / MEBIBYTE
    slip = ""
    if isinstance(weights_mib, (int, float)) and not isinstance(weights_mib, bool):
        value = float(weights_mib)
        if abs(value - expected) > MEMORY_TOLERANCE * expected:
            slip = next(
                (
                    _("Your number is {meaning}. ").format(meaning=meaning)
                    for candidate, meaning in attention_memory_slips().items()
                    if abs(value - candidate) <= MEMORY_TOLERANCE * candidate
                ),
                "",
            )
    numbers = MEMORY_BATCH * MEMORY_HEADS * MEMORY_LENGTH**2
    element = torch.empty(0, dtype=MEMORY_DTYPE).element_size()
    explain = slip + _(
        "The weights are (batch, heads, L, L) = ({batch}, {heads}, "
        "{length:,}, {length:,}): {numbers:,} numbers of {element} bytes, "
        "{bytes:,} bytes, / 2^20 = {mib:g} MiB. Doubling L quadruples it."
    ).format(
        batch=MEMORY_BATCH,
        heads=MEMORY_HEADS,
        length=MEMORY_LENGTH,
        numbers=numbers,
        element=element,
        bytes=numbers * element,
        mib=expected,
    )
    return check_number(
        "1.6",
        _("the memory of the attention weights"),
        weights_mib,
        expected,
        tolerance=MEMORY_TOLERANCE,
        relative=True,
        unit="MiB",
        kind=DERIVATION,
        explain=explain,
    )
