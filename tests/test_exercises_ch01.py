"""Chapter 1's exercise checks: right answers pass, typical mistakes fail with a useful message.

The reference solutions live here, not in the package.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from exercise_harness import (  # noqa: F401  (collected by pytest in this module)
    test_a_stub_reads_as_not_done,
    test_a_typical_mistake_fails_with_a_message_saying_what_was_expected,
    test_the_reference_solution_passes_every_case,
)

from handbook.exercises import ch01


def stub(*arguments: object) -> object:
    raise NotImplementedError("Exercise 1.x: not written yet")


# Exercise 1.1


def causal_mask(seq_len: int) -> torch.Tensor:
    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril()


def causal_mask_of_the_future(seq_len: int) -> torch.Tensor:
    return torch.ones(seq_len, seq_len, dtype=torch.bool).triu()


def causal_mask_without_the_diagonal(seq_len: int) -> torch.Tensor:
    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril(-1)


def causal_mask_of_floats(seq_len: int) -> torch.Tensor:
    return torch.ones(seq_len, seq_len).tril()


# Exercise 1.2


def attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def attention_without_scaling(q, k, v, mask=None):
    return attention(q * math.sqrt(q.shape[-1]), k, v, mask)


def attention_ignoring_the_mask(q, k, v, mask=None):
    return attention(q, k, v)


def attention_over_the_wrong_axis(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-2) @ v


def attention_returning_weights(q, k, v, mask=None):
    return attention(q, k, v, mask), None


# Exercise 1.3


def split_heads(x, num_heads):
    batch, seq, d_model = x.shape
    if d_model % num_heads:
        raise ValueError("d_model must be divisible by num_heads")
    return x.reshape(batch, seq, num_heads, d_model // num_heads).transpose(1, 2)


def merge_heads(x):
    batch, heads, seq, d_head = x.shape
    return x.transpose(1, 2).reshape(batch, seq, heads * d_head)


def split_heads_by_reshaping_only(x, num_heads):
    batch, seq, d_model = x.shape
    if d_model % num_heads:
        raise ValueError("d_model must be divisible by num_heads")
    return x.reshape(batch, num_heads, seq, d_model // num_heads)


def merge_heads_by_reshaping_only(x):
    batch, heads, seq, d_head = x.shape
    return x.reshape(batch, seq, heads * d_head)


# Exercise 1.4


def positional_encoding(max_len, d_model):
    positions = torch.arange(max_len, dtype=torch.float64)[:, None]
    angles = positions / 10000 ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    encoding = torch.zeros(max_len, d_model, dtype=torch.float64)
    encoding[:, 0::2] = torch.sin(angles)
    encoding[:, 1::2] = torch.cos(angles)
    return encoding.float()


def positional_encoding_swapped(max_len, d_model):
    return positional_encoding(max_len, d_model)[:, [i ^ 1 for i in range(d_model)]]


def positional_encoding_in_float64(max_len, d_model):
    return positional_encoding(max_len, d_model).double()


def positional_encoding_with_exponent_i(max_len, d_model):
    positions = torch.arange(max_len, dtype=torch.float64)[:, None]
    angles = positions / 10000 ** (torch.arange(d_model // 2, dtype=torch.float64) / d_model)
    encoding = torch.zeros(max_len, d_model, dtype=torch.float64)
    encoding[:, 0::2] = torch.sin(angles)
    encoding[:, 1::2] = torch.cos(angles)
    return encoding.float()


# Exercise 1.5 (find the bug)


def buggy_causal_attention(q, k, v):
    """The chapter's buggy version: each query also sees the next key."""
    length = q.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    allowed = torch.ones(length, length, dtype=torch.bool).tril(diagonal=1)
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def causal_attention(q, k, v):
    length = q.shape[-2]
    return attention(q, k, v, torch.ones(length, length, dtype=torch.bool).tril())


def causal_attention_without_the_diagonal(q, k, v):
    length = q.shape[-2]
    return attention(q, k, v, torch.ones(length, length, dtype=torch.bool).tril(diagonal=-1))


def causal_attention_over_the_wrong_axis(q, k, v):
    length = q.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~torch.ones(length, length).bool().tril(), float("-inf"))
    return torch.softmax(scores, dim=-2).nan_to_num() @ v


def causal_attention_without_scaling(q, k, v):
    return causal_attention(q * math.sqrt(q.shape[-1]), k, v)


CHECKS: dict[str, Callable] = {
    "1.1": ch01.check_causal_mask,
    "1.2": ch01.check_attention,
    "1.3": lambda solution: ch01.check_split_and_merge_heads(*solution),
    "1.4": ch01.check_positional_encoding,
    "1.5": ch01.check_causal_attention,
}
SOLUTIONS = {
    "1.1": causal_mask,
    "1.2": attention,
    "1.3": (split_heads, merge_heads),
    "1.4": positional_encoding,
    "1.5": causal_attention,
}
STUBS = {"1.1": stub, "1.2": stub, "1.3": (stub, stub), "1.4": stub, "1.5": stub}


MIN_CASES = 4
MISTAKE_STATUS = "failed"

MISTAKES = [
    ("1.1", causal_mask_of_the_future, "causal_mask(4): 12 of 16 values differ"),
    (
        "1.1",
        causal_mask_without_the_diagonal,
        "the first at index (0, 0): expected True, got False",
    ),
    ("1.1", causal_mask_of_floats, "expected a boolean tensor (True = may attend), got dtype"),
    ("1.2", attention_without_scaling, "large scores (d = 64, entries ~ 3): "),
    ("1.2", attention_ignoring_the_mask, "a causal mask (6, 6): "),
    ("1.2", attention_over_the_wrong_axis, "3-D inputs (2, 5, 8): "),
    ("1.2", attention_returning_weights, "expected the output tensor only, got a tuple of 2"),
    ("1.3", (split_heads_by_reshaping_only, merge_heads), "right shape, wrong values; head 0"),
    ("1.3", (split_heads, merge_heads_by_reshaping_only), "merge (2, 5, 8) into 2 heads back"),
    ("1.4", positional_encoding_swapped, "max_len=10, d_model=16: "),
    ("1.4", positional_encoding_in_float64, "expected dtype torch.float32, got torch.float64"),
    ("1.4", positional_encoding_with_exponent_i, "max_len=50, d_model=64: "),
    ("1.5", buggy_causal_attention, "still has the bug: the output at position 0 changes"),
    ("1.5", causal_attention_without_the_diagonal, "3-D inputs (2, 5, 8): causal_attention("),
    ("1.5", causal_attention_over_the_wrong_axis, "batch and heads (2, 3, 6, 16): causal_"),
    ("1.5", causal_attention_without_scaling, "large scores (d = 64, entries ~ 3): "),
]


def test_the_attention_check_gives_the_expected_and_actual_values() -> None:
    result = ch01.check_attention(attention_ignoring_the_mask)
    line = next(line for line in result.messages if line.startswith("a causal mask"))
    assert "expected" in line and "got" in line


def test_the_bug_is_named_by_its_symptom_without_the_fix() -> None:
    result = ch01.check_causal_attention(buggy_causal_attention)
    bug_lines = [line for line in result.messages if "still has the bug" in line]
    assert len(bug_lines) == 5, result.messages  # every case but the single token's
    assert all("tril" not in line and "diagonal" not in line for line in bug_lines)
    assert "a single token (L = 1)" not in " ".join(result.messages)


# Exercise 1.6 (derive)


def test_the_attention_memory_derivation_passes_the_formula_and_its_rounding() -> None:
    for answer in (384, 384.0, 385, 12 * 4096 * 4096 * 2 / 2**20):
        result = ch01.check_attention_memory_derivation(answer)
        assert (result.id, result.status, result.kind) == ("1.6", "passed", "derivation")
        assert "the formula gives 384 MiB" in result.messages[0]


@pytest.mark.parametrize(
    ("answer", "slip"),
    [
        (32, "one head's matrix"),
        (768, "4 bytes a number (float32) or the scores and the weights"),
        (402.65, "megabytes (10^6 bytes)"),
        (0.375, "in GiB"),
        (3072, "in bits"),
        (0.09375, "the weights are L x L per head"),
        (192, "without their 2 bytes each"),
    ],
)
def test_a_typical_slip_in_the_attention_memory_fails_and_is_named(answer, slip) -> None:
    result = ch01.check_attention_memory_derivation(answer)
    assert result.status == "failed"
    assert f"you derived {answer:g} MiB" in result.messages[0].replace(",", "")
    assert slip in result.messages[0], result.messages


def test_an_unrelated_wrong_memory_fails_with_the_shape_and_no_slip() -> None:
    result = ch01.check_attention_memory_derivation(100)
    assert result.status == "failed"
    assert "Your number is" not in result.messages[0]
    assert "(batch, heads, L, L) = (1, 12, 4,096, 4,096)" in result.messages[0]


def test_the_memory_slips_are_all_outside_the_tolerance() -> None:
    true = ch01.attention_weight_bytes() / 2**20
    assert true == 384
    for slip in ch01.attention_memory_slips():
        assert abs(slip - true) > ch01.MEMORY_TOLERANCE * true


@pytest.mark.parametrize("stub_value", [None, ...])
def test_the_attention_memory_stub_reads_as_not_done(stub_value) -> None:
    assert ch01.check_attention_memory_derivation(stub_value).status == "not done"


def test_an_attention_memory_written_as_text_fails_saying_so() -> None:
    result = ch01.check_attention_memory_derivation("384 MiB")
    assert result.status == "failed" and "without quotes" in result.messages[0]
