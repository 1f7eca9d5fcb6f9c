"""handbook.models.attention against PyTorch: masks, scaled dot-product attention (plain and
chunked) and multi-head attention.

Conventions: our boolean masks say True = "may attend" (as torch.nn.functional's SDPA), while
torch.nn.MultiheadAttention masks say True = "masked out"; tests convert with ``~``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from handbook.models import attention
from handbook.models.attention import (
    MultiHeadAttention,
    causal_mask,
    chunked_attention,
    chunked_sdpa_attention,
    masked_softmax,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    split_heads,
)

TOLERANCE = {
    torch.float32: {"atol": 1e-5, "rtol": 1e-5},
    torch.float64: {"atol": 1e-12, "rtol": 1e-12},
    torch.bfloat16: {"atol": 3e-2, "rtol": 3e-2},
}

# (batch dimensions, L, S, d, dv): heads included in the batch dimensions, L != S, length 1
SHAPES = [
    ((2, 3), 5, 7, 8, 4),
    ((1, 1), 1, 1, 4, 4),
    ((2, 4), 6, 6, 16, 16),
    ((3,), 1, 9, 8, 2),
    ((), 4, 3, 5, 6),
    ((2, 2), 9, 1, 3, 5),
]
MASK_KINDS = ["none", "padding", "causal", "random"]


def random_qkv(batch_shape, L, S, d, dv, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch_shape, L, d, generator=generator, dtype=torch.float64)
    k = torch.randn(*batch_shape, S, d, generator=generator, dtype=torch.float64)
    v = torch.randn(*batch_shape, S, dv, generator=generator, dtype=torch.float64)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def make_mask(kind, batch_shape, L, S, seed=0):
    """A boolean mask (True = may attend) and whether torch should get ``is_causal`` instead."""
    generator = torch.Generator().manual_seed(seed)
    if kind == "none":
        return None
    if kind == "causal":
        return causal_mask(L, S)
    if kind == "padding":
        if not batch_shape:
            return padding_mask([max(S - 1, 1)], S)  # (1, S): broadcast over the queries
        lengths = torch.randint(1, S + 1, (batch_shape[0],), generator=generator)
        lengths[0] = S
        # (batch, 1, ..., 1, S): one row of keys per first batch index, broadcast over the rest
        return padding_mask(lengths, S).view(batch_shape[0], *[1] * len(batch_shape), S)
    mask = torch.rand(*batch_shape, L, S, generator=generator) > 0.4
    mask[..., 0] = True  # every query keeps a key: fully masked rows are tested on their own
    return mask


# ------------------------------------------------------------------------------------------
# scaled_dot_product_attention
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("mask_kind", MASK_KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_sdpa_matches_torch(shape, mask_kind, dtype):
    batch_shape, L, S, d, dv = shape
    q, k, v = random_qkv(batch_shape, L, S, d, dv, dtype)
    mask = make_mask(mask_kind, batch_shape, L, S)
    output, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert output.shape == (*batch_shape, L, dv) and output.dtype == dtype
    assert weights.shape == (*batch_shape, L, S)
    torch.testing.assert_close(output, expected, **TOLERANCE[dtype])
    torch.testing.assert_close(
        weights.double().sum(-1),
        torch.ones(*batch_shape, L, dtype=torch.float64),
        atol=1e-2,
        rtol=0,
    )
    if mask is not None:
        assert (weights.masked_select(~mask.expand_as(weights)) == 0).all()


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_causal_flag_matches_torch_is_causal(shape):
    batch_shape, L, S, d, dv = shape
    q, k, v = random_qkv(batch_shape, L, S, d, dv, torch.float64)
    output, _ = scaled_dot_product_attention(q, k, v, causal=True)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(output, expected, **TOLERANCE[torch.float64])


def test_causal_flag_combines_with_a_mask():
    q, k, v = random_qkv((2,), 5, 5, 4, 3, torch.float64)
    padding = padding_mask([5, 3], 5)[:, None, :]
    output, weights = scaled_dot_product_attention(q, k, v, mask=padding, causal=True)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=padding & causal_mask(5))
    torch.testing.assert_close(output, expected)
    assert weights[1, :, 3:].abs().sum() == 0 and weights[0].triu(1).abs().sum() == 0


def test_weights_are_softmax_of_scaled_scores_and_produce_the_output():
    q, k, v = random_qkv((2,), 3, 4, 5, 6, torch.float64)
    output, weights = scaled_dot_product_attention(q, k, v, scale=0.3)
    torch.testing.assert_close(weights, torch.softmax(q @ k.transpose(-2, -1) * 0.3, dim=-1))
    torch.testing.assert_close(output, weights @ v)
    torch.testing.assert_close(output, F.scaled_dot_product_attention(q, k, v, scale=0.3))


@pytest.mark.filterwarnings("ignore:Anomaly Detection has been enabled")
def test_fully_masked_row_gives_zeros_and_finite_gradients():
    q, k, v = random_qkv((2,), 3, 4, 5, 6, torch.float64)
    q.requires_grad_(True)
    mask = torch.ones(2, 3, 4, dtype=torch.bool)
    mask[0, 1] = False
    output, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert (output[0, 1] == 0).all() and (weights[0, 1] == 0).all()
    assert torch.isfinite(output).all()
    torch.testing.assert_close(weights[mask.any(-1)].sum(-1), torch.ones(5, dtype=torch.float64))
    with torch.autograd.detect_anomaly():  # raises if any backward step produces NaN
        output.sum().backward()
    assert torch.isfinite(q.grad).all() and (q.grad[0, 1] == 0).all()


def test_torch_behaviour_on_fully_masked_rows_is_as_the_module_docstring_says():
    """If this fails, PyTorch changed its behaviour: update the docstring of handbook.attention."""
    torch.manual_seed(0)
    x = torch.randn(1, 2, 4)
    nothing = torch.zeros(1, 2, dtype=torch.bool)
    assert (F.scaled_dot_product_attention(x, x, x, attn_mask=nothing[:, None, :]) == 0).all()
    torch_attention = nn.MultiheadAttention(4, 1, batch_first=True)
    output, _ = torch_attention(x, x, x, key_padding_mask=~nothing)
    assert torch.isnan(output).all()
    ours = MultiHeadAttention(4, 1).load_from_torch(torch_attention)
    assert torch.isfinite(ours(x, key_mask=nothing)[0]).all()


def test_empty_key_sequence_gives_zeros():
    q, k, v = random_qkv((2,), 3, 0, 4, 5)
    output, weights = scaled_dot_product_attention(q, k, v)
    assert output.shape == (2, 3, 5) and (output == 0).all() and weights.shape == (2, 3, 0)
    torch.testing.assert_close(chunked_attention(q, k, v), output)


def test_dropout_zeroes_and_rescales_weights_only_in_training():
    q, k, v = random_qkv((2, 2), 6, 6, 4, 4, torch.float64)
    plain, plain_weights = scaled_dot_product_attention(q, k, v)
    not_training, _ = scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=False)
    torch.testing.assert_close(not_training, plain)
    torch.manual_seed(0)
    dropped, weights = scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    kept = weights != 0
    assert 0 < kept.float().mean() < 1
    torch.testing.assert_close(weights[kept], 2 * plain_weights[kept])
    torch.testing.assert_close(dropped, weights @ v)


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (((2, 5, 64), (2, 6, 32), (2, 6, 8)), "same last dimension, got 64 and 32"),
        (((2, 5, 8), (2, 6, 8), (2, 7, 8)), "same sequence length S .*got 6 and 7"),
        (((2, 5, 8), (3, 6, 8), (3, 6, 8)), "broadcastable batch dimensions"),
        (((8,), (6, 8), (6, 8)), "at least 2 dimensions"),
    ],
)
def test_sdpa_shape_errors_name_the_shapes(shapes, message):
    q, k, v = (torch.randn(*shape) for shape in shapes)
    with pytest.raises(ValueError, match=message):
        scaled_dot_product_attention(q, k, v)
    with pytest.raises(ValueError, match=message):
        chunked_attention(q, k, v)


def test_sdpa_rejects_bad_masks_dtypes_and_dropout():
    q, k, v = random_qkv((2,), 5, 6, 8, 8)
    with pytest.raises(
        ValueError, match=r"mask of shape \(5, 5\) does not broadcast .*\(2, 5, 6\)"
    ):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask of shape \(3, 5, 6\)"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(3, 5, 6, dtype=torch.bool))
    with pytest.raises(TypeError, match="expected a boolean mask"):
        scaled_dot_product_attention(q, k, v, mask=torch.zeros(5, 6))
    with pytest.raises(ValueError, match="same dtype"):
        scaled_dot_product_attention(q, k.double(), v)
    with pytest.raises(ValueError, match="floating-point"):
        scaled_dot_product_attention(q.long(), k.long(), v.long())
    with pytest.raises(ValueError, match="dropout_p"):
        scaled_dot_product_attention(q, k, v, dropout_p=1.0)


def test_sdpa_gradcheck_float64():
    q, k, v = (t.requires_grad_(True) for t in random_qkv((2,), 3, 4, 5, 2, torch.float64))
    mask = torch.rand(2, 3, 4, generator=torch.Generator().manual_seed(1)) > 0.3
    mask[1, 2] = False  # a fully masked row

    def attend(q, k, v):
        return scaled_dot_product_attention(q, k, v, mask=mask, causal=True)[0]

    assert torch.autograd.gradcheck(attend, (q, k, v))


def test_masked_softmax():
    scores = torch.randn(3, 4, dtype=torch.float64)
    torch.testing.assert_close(masked_softmax(scores), torch.softmax(scores, -1))
    mask = torch.tensor([[True, False, True, True], [False] * 4, [True, True, True, True]])
    weights = masked_softmax(scores, mask)
    torch.testing.assert_close(weights[0, [0, 2, 3]], torch.softmax(scores[0, [0, 2, 3]], -1))
    assert weights[0, 1] == 0 and (weights[1] == 0).all()


def test_causal_and_padding_masks():
    assert causal_mask(2, 3).tolist() == [[True, False, False], [True, True, False]]
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True] * 3]
    assert padding_mask([2, 0, 3]).tolist() == [
        [True, True, False],
        [False, False, False],
        [True, True, True],
    ]
    assert padding_mask(torch.tensor([1]), max_len=3).tolist() == [[True, False, False]]
    with pytest.raises(ValueError, match="length 4 does not fit in max_len=3"):
        padding_mask([4, 1], max_len=3)
    with pytest.raises(ValueError, match="non-negative"):
        padding_mask([-1, 1])
    with pytest.raises(ValueError, match="1-D tensor of integer lengths"):
        padding_mask(torch.tensor([1.5]))


# ------------------------------------------------------------------------------------------
# chunked (online-softmax) attention
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 7, 100])
@pytest.mark.parametrize("mask_kind", ["none", "random", "padding", "causal-flag", "row", "empty"])
def test_chunked_equals_plain(chunk_size, mask_kind):
    batch_shape, L, S = (2, 3), 5, 7
    q, k, v = random_qkv(batch_shape, L, S, 8, 4, torch.float64, seed=chunk_size)
    causal = mask_kind == "causal-flag"
    if mask_kind == "row":  # broadcast along S: some queries may attend everything, others nothing
        mask = torch.tensor([True, False, True, True, False])[:, None]
    elif mask_kind == "empty":  # fully masked rows, some only empty in some chunks
        mask = make_mask("random", batch_shape, L, S)
        mask[0, 1, 2] = False
        mask[1, :, 4, :3] = False
    else:
        mask = None if causal else make_mask(mask_kind, batch_shape, L, S)
    expected, _ = scaled_dot_product_attention(q, k, v, mask=mask, causal=causal)
    output = chunked_attention(q, k, v, mask=mask, causal=causal, chunk_size=chunk_size)
    torch.testing.assert_close(output, expected, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("chunk_size", [2, 5])
def test_chunked_causal_with_mask_and_float32(chunk_size):
    q, k, v = random_qkv((2, 2), 6, 9, 8, 8, torch.float32)
    mask = make_mask("random", (2, 2), 6, 9)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask & causal_mask(6, 9))
    output = chunked_attention(q, k, v, mask=mask, causal=True, chunk_size=chunk_size)
    torch.testing.assert_close(output, expected, **TOLERANCE[torch.float32])


class LargestTensorRecorder(TorchFunctionMode):
    """Records the largest number of elements of any tensor a torch function returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        outputs = result if isinstance(result, tuple | list) else (result,)
        for output in outputs:
            if isinstance(output, torch.Tensor):
                self.largest = max(self.largest, output.numel())
        return result


def test_chunked_attention_never_builds_the_score_matrix():
    L = S = 64
    q, k, v = random_qkv((1,), L, S, 4, 4)
    with LargestTensorRecorder() as chunked:
        chunked_attention(q, k, v, causal=True, chunk_size=8)
    with LargestTensorRecorder() as plain:
        scaled_dot_product_attention(q, k, v, causal=True)
    assert plain.largest >= L * S
    assert chunked.largest <= L * 8


def test_chunked_gradcheck_float64():
    q, k, v = (t.requires_grad_(True) for t in random_qkv((2,), 3, 5, 4, 2, torch.float64))
    mask = torch.rand(2, 3, 5, generator=torch.Generator().manual_seed(2)) > 0.3
    mask[0, 0] = False  # a fully masked row
    mask[1, 2, :2] = False  # a row whose first chunk is empty

    def attend(q, k, v):
        return chunked_attention(q, k, v, mask=mask, causal=True, chunk_size=2)

    assert torch.autograd.gradcheck(attend, (q, k, v))


@pytest.mark.parametrize("chunk_size", [1, 5, 64])
@pytest.mark.parametrize("mask_kind", ["none", "causal", "padding", "empty row"])
def test_chunked_sdpa_equals_torch_sdpa(chunk_size, mask_kind):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 11, 8) for _ in range(3))
    mask, causal = None, mask_kind == "causal"
    if mask_kind == "padding":
        mask = padding_mask([11, 6]).view(2, 1, 1, 11)
    if mask_kind == "empty row":
        mask = torch.rand(2, 3, 11, 11) > 0.5
        mask[0, 1, 4] = False  # query 4 of head 1 may attend to nothing: zeros, not NaN
    output = chunked_sdpa_attention(q, k, v, mask=mask, causal=causal, chunk_size=chunk_size)

    expected = scaled_dot_product_attention(q, k, v, mask=mask, causal=causal, training=False)[0]
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)
    if mask_kind in ("none", "causal"):
        torch.testing.assert_close(
            output, F.scaled_dot_product_attention(q, k, v, is_causal=causal), atol=1e-5, rtol=1e-5
        )
    if mask_kind == "empty row":
        assert torch.count_nonzero(output[0, 1, 4]) == 0


def test_chunked_sdpa_rejects_what_its_kernel_cannot_take():
    q = torch.randn(3, 5, 4)
    with pytest.raises(ValueError, match="4-D CPU tensors"):
        chunked_sdpa_attention(q, q, q)
    q = torch.randn(1, 1, 5, 4)
    with pytest.raises(ValueError, match="chunk_size >= 1"):
        chunked_sdpa_attention(q, q, q, chunk_size=0)


def test_chunked_rejects_bad_chunk_size():
    q, k, v = random_qkv((1,), 2, 2, 2, 2)
    with pytest.raises(ValueError, match="chunk_size >= 1, got 0"):
        chunked_attention(q, k, v, chunk_size=0)


# ------------------------------------------------------------------------------------------
# Multi-head attention
# ------------------------------------------------------------------------------------------


def torch_and_ours(d_model=16, num_heads=4, bias=True, seed=0):
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(d_model, num_heads, bias=bias, batch_first=True)
    with torch.no_grad():  # torch initializes biases to 0: make them count
        for parameter in theirs.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    theirs.eval()
    return theirs, MultiHeadAttention(d_model, num_heads, bias=bias).load_from_torch(theirs).eval()


def test_split_and_merge_heads_are_inverse():
    x = torch.randn(2, 5, 12)
    heads = split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    torch.testing.assert_close(heads[:, 1], x[..., 4:8])
    torch.testing.assert_close(merge_heads(heads), x)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("masks", ["none", "padding", "causal", "padding+causal"])
@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
def test_multihead_matches_torch(cross, masks, bias):
    theirs, ours = torch_and_ours(bias=bias)
    x = torch.randn(3, 5, 16)
    memory = torch.randn(3, 7, 16) if cross else x
    S = memory.shape[1]
    key_mask = padding_mask([S, 2, 4], S) if "padding" in masks else None
    causal = "causal" in masks
    expected, expected_weights = theirs(
        x,
        memory,
        memory,
        key_padding_mask=None if key_mask is None else ~key_mask,
        attn_mask=~causal_mask(5, S) if causal else None,
    )
    output, weights = ours(x, memory, memory, key_mask=key_mask, causal=causal)
    torch.testing.assert_close(output, expected, **TOLERANCE[torch.float32])
    torch.testing.assert_close(weights, expected_weights, **TOLERANCE[torch.float32])
    _, per_head = ours(
        x, memory, memory, key_mask=key_mask, causal=causal, average_attn_weights=False
    )
    _, expected_per_head = theirs(
        x,
        memory,
        memory,
        key_padding_mask=None if key_mask is None else ~key_mask,
        attn_mask=~causal_mask(5, S) if causal else None,
        average_attn_weights=False,
    )
    assert per_head.shape == (3, 4, 5, S)
    torch.testing.assert_close(per_head, expected_per_head, **TOLERANCE[torch.float32])


def test_multihead_batched_attn_mask_matches_torch_per_head_layout():
    theirs, ours = torch_and_ours()
    x = torch.randn(2, 5, 16)
    mask = make_mask("random", (2,), 5, 5, seed=3)
    output, _ = ours(x, attn_mask=mask)
    # torch wants a 3-D mask as (batch * heads, L, S), ours as (batch, L, S)
    expected, _ = theirs(x, x, x, attn_mask=~mask.repeat_interleave(4, dim=0))
    torch.testing.assert_close(output, expected, **TOLERANCE[torch.float32])
    head_mask = mask[:, None].expand(2, 4, 5, 5)
    torch.testing.assert_close(ours(x, attn_mask=head_mask)[0], expected, atol=1e-5, rtol=1e-5)


def test_multihead_dropout_acts_only_in_training():
    torch.manual_seed(0)
    ours = MultiHeadAttention(8, 2, dropout=0.5)
    x = torch.randn(2, 4, 8)
    evaluation_output = ours.eval()(x)[0]
    torch.testing.assert_close(ours(x)[0], evaluation_output)
    training_output, weights = ours.train()(x, average_attn_weights=False)
    assert (weights == 0).any() and not torch.allclose(training_output, evaluation_output)


def test_multihead_to_torch_round_trip():
    torch.manual_seed(1)
    ours = MultiHeadAttention(8, 2).eval()
    theirs = ours.to_torch().eval()
    x = torch.randn(2, 4, 8)
    torch.testing.assert_close(ours(x)[0], theirs(x, x, x)[0])
    assert ours(x, need_weights=False)[1] is None


def test_multihead_gradcheck_float64():
    torch.manual_seed(0)
    ours = MultiHeadAttention(8, 2).double()
    query = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    memory = torch.randn(2, 4, 8, dtype=torch.float64, requires_grad=True)
    key_mask = padding_mask([4, 2], 4)

    def attend(query, memory):
        return ours(query, memory, memory, key_mask=key_mask)[0]

    assert torch.autograd.gradcheck(attend, (query, memory))


def test_multihead_errors_speak_to_the_learner():
    with pytest.raises(ValueError, match="d_model=10 is not divisible by num_heads=4"):
        MultiHeadAttention(10, 4)
    ours = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"expected query of shape \(batch, seq, d_model=8\)"):
        ours(torch.randn(2, 3, 6))
    with pytest.raises(ValueError, match="same batch size, got 2, 3, 3"):
        ours(torch.randn(2, 3, 8), torch.randn(3, 3, 8))
    with pytest.raises(ValueError, match=r"key_mask of shape \(batch, S\) = \(2, 3\)"):
        ours(torch.randn(2, 3, 8), key_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="embed_dim=8 and num_heads=2, got 8 and 4"):
        ours.load_from_torch(nn.MultiheadAttention(8, 4))
    with pytest.raises(ValueError, match="kdim = vdim = embed_dim"):
        ours.load_from_torch(nn.MultiheadAttention(8, 2, kdim=4, vdim=4))
    with pytest.raises(ValueError, match="bias=True"):
        ours.load_from_torch(nn.MultiheadAttention(8, 2, bias=False))


def test_public_api_is_exported():
    for name in attention.__all__:
        assert hasattr(attention, name), name
