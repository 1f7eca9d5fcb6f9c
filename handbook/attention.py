"""Attention and the Transformer, from scratch (chapter 1; article section 1.1, claims C1-C2).

Everything here is written to be read top to bottom and is checked against PyTorch in
``tests/test_attention.py``: :func:`scaled_dot_product_attention` against
``torch.nn.functional.scaled_dot_product_attention``, :class:`MultiHeadAttention` against
``torch.nn.MultiheadAttention``, :class:`EncoderBlock` / :class:`DecoderBlock` against
``torch.nn.TransformerEncoderLayer`` / ``TransformerDecoderLayer`` (same weights, same outputs).

Shapes are written ``(batch, heads, L, d_head)``: ``L`` is the number of queries, ``S`` the
number of keys and values; ``...`` stands for any number of leading batch dimensions.

Masks: one convention throughout. A mask is a boolean tensor and ``True`` means "this query may
attend to this key", the convention of the boolean ``attn_mask`` of
``torch.nn.functional.scaled_dot_product_attention``. Beware that ``torch.nn.MultiheadAttention``
and ``torch.nn.Transformer*Layer`` use the opposite convention for their boolean masks
(``True`` = "masked out"), so convert with ``~mask`` when moving between the two.

Fully masked rows: a query that may attend to no key at all (every query of an empty sequence
under a padding mask; the first, padding, positions of a left-padded sequence under a causal
mask) gets an output of zeros and attention weights of zeros here.
PyTorch's ``scaled_dot_product_attention`` returns zeros too since PyTorch 2.5 (it returned NaN
before, see pytorch/pytorch#133882), but ``torch.nn.MultiheadAttention`` with
``need_weights=True`` (its default) still returns NaN for such rows (checked with PyTorch 2.14).

The article's snippet (claim C1)
--------------------------------
The article prints a single-head attention, but flattened onto one line, which does not run::

    import torchdef scaled_dot_product_attention(Q, K, V):# Q,K,V形状均为(batch_size, seq_len,
    d_model)d_k = Q.size(-1)scores = torch.bmm(...) ...

The only fix it needs is restoring the line breaks: :func:`article_attention` is that code, with
the function renamed so that it does not shadow ours. What it does and lacks, measured with
PyTorch 2.14 on CPU (``tests/test_attention.py`` pins each point):

- ``torch.tensor(d_k)`` is an int64 tensor, and ``torch.sqrt`` of an integer tensor does *not*
  raise: it promotes to the default float dtype (float32), so the divisor is a 0-dim float32
  tensor, which never changes the dtype of a floating-point ``scores`` tensor.
- float32 inputs: correct; matches PyTorch's attention to about 2e-7 (d_k = 64).
- float64 inputs: the result is float64 but the scale was rounded to float32, so when d_k is not
  a perfect square the output is off by about 1e-8 relative (d_k = 10: divisor 3.16227769852
  instead of 3.16227766017) instead of 1e-16. Harmless in practice, visible in a float64 test.
- float16 inputs: runs (on CPU too) and returns float16, within float16 rounding of PyTorch
  (about 1e-3), but the scores ``Q @ K^T`` are formed *before* dividing by sqrt(d_k): a dot
  product above 65504, the float16 maximum, overflows to ``inf`` and the softmax turns the whole
  row into NaN (e.g. entries of 40 with d_k = 64: 64 * 40 * 40 = 102400). On the same input
  PyTorch's ``scaled_dot_product_attention`` returns the right answer, and so does
  :func:`scaled_dot_product_attention` here, which scales the queries before the product.
- bfloat16 inputs: runs, within bfloat16 rounding (about 1e-2); bfloat16 has float32's range,
  so no overflow.
- Integer inputs fail with ``RuntimeError`` in the second ``bmm`` (float weights times int V).
- Not measured on a GPU: PyTorch lets a 0-dim CPU tensor such as this divisor combine with CUDA
  tensors, so the snippet should behave the same there.
- It lacks masks (no padding, no causal decoding), multiple heads and batched heads:
  ``torch.bmm`` accepts only 3-D tensors, so ``(batch, heads, seq, d)`` inputs raise
  ``RuntimeError: batch1 must be a 3D tensor``. It has no dropout and returns no weights.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from handbook import bench

__all__ = [
    "ARTICLE_SNIPPET_AS_PRINTED",
    "DecoderBlock",
    "DepthRun",
    "EncoderBlock",
    "EncoderTagger",
    "FeedForward",
    "MultiHeadAttention",
    "PositionalEncoding",
    "Transformer",
    "article_attention",
    "attention_scaling",
    "benchmarks",
    "causal_mask",
    "chunked_attention",
    "chunked_sdpa_attention",
    "cross_attention_weights",
    "depth_experiment",
    "layer_gradient_norms",
    "masked_softmax",
    "merge_heads",
    "peak_in_fresh_process",
    "padding_mask",
    "previous_token_batch",
    "recurrence_vs_attention",
    "scaled_dot_product_attention",
    "scaling_table",
    "sequential_steps",
    "sinusoidal_positional_encoding",
    "split_heads",
]

#: The article's code exactly as printed: one line, so it is a SyntaxError as it stands.
ARTICLE_SNIPPET_AS_PRINTED = (
    "import torchdef scaled_dot_product_attention(Q, K, V):# Q,K,V形状均为(batch_size, seq_len, "
    "d_model)d_k = Q.size(-1)scores = torch.bmm(Q, K.transpose(1,2)) / "
    "torch.sqrt(torch.tensor(d_k))weights = torch.softmax(scores, dim=-1)return "
    "torch.bmm(weights, V)"
)

_HALF_DTYPES = (torch.float16, torch.bfloat16)


# The article's snippet with its line breaks restored and nothing else changed (see the module
# docstring for what it does in each dtype): Q, K, V of shape (batch, seq, d_model), 3-D only.
# fmt: off
def article_attention(Q, K, V):
    # Q,K,V形状均为(batch_size, seq_len, d_model)
    d_k = Q.size(-1)
    scores = torch.bmm(Q, K.transpose(1,2)) / torch.sqrt(torch.tensor(d_k))
    weights = torch.softmax(scores, dim=-1)
    return torch.bmm(weights, V)
# fmt: on


# ----------------------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------------------


def causal_mask(L: int, S: int | None = None, device: torch.device | str | None = None) -> Tensor:
    """The causal mask ``(L, S)``: query ``i`` may attend to keys ``0 .. i``.

    Aligned to the top left like ``is_causal=True`` in PyTorch's attention: when ``L != S``,
    query ``i`` still sees keys ``j <= i``. ``S`` defaults to ``L``.
    """
    S = L if S is None else S
    if L < 0 or S < 0:
        raise ValueError(f"expected non-negative sequence lengths, got L={L} and S={S}")
    return torch.ones(L, S, dtype=torch.bool, device=device).tril()


def padding_mask(lengths: Tensor | Sequence[int], max_len: int | None = None) -> Tensor:
    """The key mask ``(batch, max_len)`` of a padded batch: ``True`` for real tokens.

    ``lengths`` holds each sequence's true length; ``max_len`` defaults to the longest. To use it
    on attention scores of shape ``(batch, heads, L, S)``, index it as ``mask[:, None, None, :]``.
    """
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.is_floating_point():
        raise ValueError(
            f"expected a 1-D tensor of integer lengths, got shape {tuple(lengths.shape)} "
            f"and dtype {lengths.dtype}"
        )
    if (lengths < 0).any():
        raise ValueError(f"expected non-negative lengths, got {lengths.tolist()}")
    longest = int(lengths.max()) if lengths.numel() else 0
    max_len = longest if max_len is None else max_len
    if longest > max_len:
        raise ValueError(f"a sequence of length {longest} does not fit in max_len={max_len}")
    positions = torch.arange(max_len, device=lengths.device)
    return positions[None, :] < lengths[:, None]


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> torch.Size:
    """Check q ``(..., L, d)``, k ``(..., S, d)``, v ``(..., S, dv)``; return the batch shape."""
    for name, tensor in (("q", q), ("k", k), ("v", v)):
        if tensor.dim() < 2:
            raise ValueError(
                f"expected {name} with at least 2 dimensions (..., seq, features), "
                f"got shape {tuple(tensor.shape)}"
            )
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(
            f"expected q, k, v with the same dtype, got {q.dtype}, {k.dtype} and {v.dtype}"
        )
    if not q.is_floating_point():
        raise ValueError(f"expected floating-point q, k, v, got {q.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"expected q and k with the same last dimension, got {q.shape[-1]} and {k.shape[-1]}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            "expected k and v with the same sequence length S (dimension -2), "
            f"got {k.shape[-2]} and {v.shape[-2]}"
        )
    try:
        return torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            "expected q, k, v with broadcastable batch dimensions, got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        ) from None


def _check_mask(mask: Tensor, scores_shape: tuple[int, ...]) -> None:
    """A mask must be boolean and broadcast to the scores' shape ``(..., L, S)``."""
    if mask.dtype != torch.bool:
        raise TypeError(
            f"expected a boolean mask (True = may attend), got {mask.dtype}; "
            "an additive float mask m converts with m == 0"
        )
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != torch.Size(scores_shape):
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the attention scores' "
            f"shape {tuple(scores_shape)} (..., L, S)"
        )


def _combine_masks(
    mask: Tensor | None, causal: bool, L: int, S: int, device: torch.device
) -> Tensor | None:
    """The user's mask AND the causal mask (either may be absent)."""
    if causal:
        causal_part = causal_mask(L, S, device=device)
        return causal_part if mask is None else mask & causal_part
    return mask


# ----------------------------------------------------------------------------------------------
# Scaled dot-product attention
# ----------------------------------------------------------------------------------------------


def masked_softmax(scores: Tensor, mask: Tensor | None = None) -> Tensor:
    """Softmax over the last dimension that gives masked entries (``mask`` False) weight 0.

    A row with no allowed entry gets all zeros instead of the 0 / 0 = NaN of a plain softmax over
    ``-inf``, and so does its gradient. 16-bit inputs are normalized in float32 and cast back.
    """
    work = scores.float() if scores.dtype in _HALF_DTYPES else scores
    if mask is None:
        return torch.softmax(work, dim=-1).to(scores.dtype)
    work = work.masked_fill(~mask, float("-inf"))
    row_has_key = mask.any(dim=-1, keepdim=True)
    # an all -inf row is NaN in softmax's forward and backward (masked_fill's backward would hide
    # the NaN gradient, torch.autograd.detect_anomaly would not): give it finite scores, and
    # zero its weights just after
    work = work.masked_fill(~row_has_key, 0.0)
    weights = torch.softmax(work, dim=-1).masked_fill(~row_has_key, 0.0)
    return weights.to(scores.dtype)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    causal: bool = False,
    dropout_p: float = 0.0,
    training: bool = True,
    scale: float | None = None,
) -> tuple[Tensor, Tensor]:
    """softmax(q k^T / sqrt(d) + mask) v, returning ``(output, weights)``.

    Args:
        q: queries ``(..., L, d)``, e.g. ``(batch, heads, L, d_head)``.
        k: keys ``(..., S, d)``.
        v: values ``(..., S, dv)``.
        mask: boolean, broadcastable to ``(..., L, S)``; ``True`` = the query may attend to the key.
        causal: also apply :func:`causal_mask` (combined with ``mask`` by AND).
        dropout_p: dropout on the attention weights, applied only when ``training`` is True
            (like ``torch.nn.functional.scaled_dot_product_attention``, the default is True).
        scale: multiplies the scores; default ``1 / sqrt(d)``.

    Returns:
        ``output`` ``(..., L, dv)`` and the ``weights`` ``(..., L, S)`` that produced it (after
        dropout). Each row of weights sums to 1, except fully masked rows: all zeros, so their
        output is zeros too (see the module docstring).
    """
    _check_qkv(q, k, v)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"expected 0 <= dropout_p < 1, got {dropout_p}")
    L, S = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    # scaling q before the product keeps float16 scores in range (the article's snippet does not)
    scores = (q * scale) @ k.transpose(-2, -1)
    if mask is not None:
        _check_mask(mask, tuple(scores.shape))
    allowed = _combine_masks(mask, causal, L, S, q.device)
    weights = masked_softmax(scores, allowed)
    if dropout_p > 0.0 and training:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


def chunked_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    causal: bool = False,
    chunk_size: int = 128,
    scale: float | None = None,
) -> Tensor:
    """Attention that reads keys and values ``chunk_size`` at a time (the idea of FlashAttention).

    Same arguments and same ``output`` ``(..., L, dv)`` as :func:`scaled_dot_product_attention`
    (up to float rounding), but the ``(L, S)`` score matrix never exists: only ``(L, chunk_size)``
    scores at a time. The softmax is computed online: for each query, a running maximum ``m``
    (keeps ``exp`` from overflowing), a running denominator ``l = sum exp(s - m)`` and a running
    numerator ``acc = sum exp(s - m) v``; when a new chunk raises the maximum to ``m'``, the old
    sums are rescaled by ``exp(m - m')``. At the end ``output = acc / l``; rows that saw no
    allowed key have ``l = 0`` and get zeros. No dropout and no weights: they are never built.
    """
    batch_shape = _check_qkv(q, k, v)
    if chunk_size < 1:
        raise ValueError(f"expected chunk_size >= 1, got {chunk_size}")
    L, S, dv = q.shape[-2], k.shape[-2], v.shape[-1]
    if mask is not None:
        _check_mask(mask, (*batch_shape, L, S))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    work_dtype = torch.float32 if q.dtype in _HALF_DTYPES else q.dtype
    q_scaled = q.to(work_dtype) * scale

    running_max = q.new_full((*batch_shape, L, 1), float("-inf"), dtype=work_dtype)
    running_sum = q.new_zeros((*batch_shape, L, 1), dtype=work_dtype)
    numerator = q.new_zeros((*batch_shape, L, dv), dtype=work_dtype)
    for start in range(0, S, chunk_size):
        stop = min(start + chunk_size, S)
        k_chunk = k[..., start:stop, :].to(work_dtype)
        v_chunk = v[..., start:stop, :].to(work_dtype)
        scores = q_scaled @ k_chunk.transpose(-2, -1)
        allowed = _chunk_of_mask(mask, causal, L, start, stop, q.device)
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        # the output does not depend on the maximum (it cancels), so no gradient flows through it
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True)).detach()
        # rows with no allowed key so far keep a maximum of -inf; shift them by 0 instead
        shift = new_max.masked_fill(new_max == float("-inf"), 0.0)
        rescale_old = torch.exp(running_max - shift)
        probabilities = torch.exp(scores - shift)
        running_sum = running_sum * rescale_old + probabilities.sum(dim=-1, keepdim=True)
        numerator = numerator * rescale_old + probabilities @ v_chunk
        running_max = new_max
    output = numerator / running_sum.masked_fill(running_sum == 0, 1.0)
    return output.to(q.dtype)


def chunked_sdpa_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    causal: bool = False,
    chunk_size: int = 1024,
    scale: float | None = None,
) -> Tensor:
    """:func:`chunked_attention` with PyTorch's fused CPU kernel doing each chunk's work.

    The keys and values are still read ``chunk_size`` at a time, but each chunk goes through
    ``aten::_scaled_dot_product_flash_attention_for_cpu``, which returns the chunk's output
    ``o_j`` ``(..., L, dv)`` and the log of its softmax denominator ``lse_j`` ``(..., L)``. The
    chunks are merged exactly as the online softmax merges them: ``lse = logaddexp(lse,
    lse_j)``, ``o = o * exp(lse_old - lse) + o_j * exp(lse_j - lse)``. So the loop over chunks and
    the merge are ours; what the kernel saves is the several passes that
    :func:`chunked_attention` makes over each ``(L, chunk_size)`` block of scores in Python.
    CPU only, 4-D inputs ``(batch, heads, L, d)``; same ``output`` as
    :func:`scaled_dot_product_attention` (rows with no allowed key get zeros).
    """
    batch_shape = _check_qkv(q, k, v)
    if q.ndim != 4 or q.device.type != "cpu":
        raise ValueError(
            f"chunked_sdpa_attention takes 4-D CPU tensors (batch, heads, L, d), got "
            f"{q.ndim}-D on {q.device.type}"
        )
    if chunk_size < 1:
        raise ValueError(f"expected chunk_size >= 1, got {chunk_size}")
    L, S = q.shape[-2], k.shape[-2]
    if mask is not None:
        _check_mask(mask, (*batch_shape, L, S))
    kernel = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    output, log_sum = None, None
    for start in range(0, S, chunk_size):
        stop = min(start + chunk_size, S)
        allowed = _chunk_of_mask(mask, causal, L, start, stop, q.device)
        bias = None
        if allowed is not None:
            allowed = allowed.expand(*batch_shape, L, stop - start)
            bias = torch.zeros(allowed.shape, dtype=q.dtype).masked_fill(~allowed, float("-inf"))
        chunk_output, chunk_log_sum = kernel(
            q, k[..., start:stop, :], v[..., start:stop, :], attn_mask=bias, scale=scale
        )
        if allowed is not None:  # the kernel reports 0, not -inf, for a row with no key here
            chunk_log_sum = chunk_log_sum.masked_fill(~allowed.any(-1), float("-inf"))
        if output is None:
            output, log_sum = chunk_output, chunk_log_sum
            continue
        merged = torch.logaddexp(log_sum, chunk_log_sum)
        shift = merged.masked_fill(merged == float("-inf"), 0.0)
        output = output * torch.exp(log_sum - shift).unsqueeze(-1) + chunk_output * torch.exp(
            chunk_log_sum - shift
        ).unsqueeze(-1)
        log_sum = merged
    return output.to(q.dtype)


def _chunk_of_mask(
    mask: Tensor | None, causal: bool, L: int, start: int, stop: int, device: torch.device
) -> Tensor | None:
    """The columns ``start:stop`` of the combined mask, built without the full ``(L, S)``."""
    part = None
    if mask is not None:
        # a mask broadcast along S (last dimension of size 1) applies to every chunk as it is
        part = mask if mask.shape[-1] == 1 else mask[..., start:stop]
    if causal:
        queries = torch.arange(L, device=device)[:, None]
        keys = torch.arange(start, stop, device=device)[None, :]
        causal_part = keys <= queries
        part = causal_part if part is None else part & causal_part
    return part


# ----------------------------------------------------------------------------------------------
# Multi-head attention
# ----------------------------------------------------------------------------------------------


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """``(batch, seq, d_model)`` -> ``(batch, heads, seq, d_model // heads)``."""
    batch, seq, d_model = x.shape
    if d_model % num_heads:
        raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
    return x.view(batch, seq, num_heads, d_model // num_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """``(batch, heads, seq, d_head)`` -> ``(batch, seq, heads * d_head)``, undoing split_heads."""
    batch, heads, seq, d_head = x.shape
    return x.transpose(1, 2).reshape(batch, seq, heads * d_head)


class MultiHeadAttention(nn.Module):
    """Multi-head attention: project, split into heads, attend per head, merge, project.

    ``heads`` attentions of width ``d_head = d_model // heads`` run side by side, each with its own
    slice of the q/k/v projections, so that different heads can look at different positions.
    Parameters: ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``, each ``nn.Linear(d_model,
    d_model)``. :meth:`load_from_torch` / :meth:`to_torch` convert to and from
    ``torch.nn.MultiheadAttention``, which packs the three input projections into one
    ``in_proj_weight`` of shape ``(3 * d_model, d_model)``.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if num_heads < 1 or d_model % num_heads:
            raise ValueError(
                f"d_model={d_model} is not divisible by num_heads={num_heads}: "
                "each head gets d_model // num_heads features"
            )
        self.d_model = d_model
        self.num_heads = num_heads
        self.dropout = dropout
        self.bias = bias
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for projection in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(projection.weight)
            if projection.bias is not None:
                nn.init.zeros_(projection.bias)

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        *,
        key_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        causal: bool = False,
        need_weights: bool = True,
        average_attn_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` ``(batch, L, d_model)`` to ``key``, ``value`` (batch, S, d_model).

        ``key`` defaults to ``query`` and ``value`` to ``key`` (self-attention).
        ``key_mask`` ``(batch, S)``: ``True`` for real tokens, e.g. from :func:`padding_mask`
        (the opposite of ``nn.MultiheadAttention``'s ``key_padding_mask``, which is ``True`` for
        padding). ``attn_mask``: ``(L, S)``, ``(batch, L, S)`` or ``(batch, heads, L, S)``,
        ``True`` = may attend. ``causal`` adds :func:`causal_mask`.

        Returns ``(output (batch, L, d_model), weights)``; weights are ``(batch, L, S)`` averaged
        over heads, ``(batch, heads, L, S)`` with ``average_attn_weights=False``, or None with
        ``need_weights=False``.
        """
        key = query if key is None else key
        value = key if value is None else value
        self._check_inputs(query, key, value)
        batch, L, S = query.shape[0], query.shape[1], key.shape[1]
        mask = self._attention_mask(key_mask, attn_mask, batch, L, S)
        q = split_heads(self.q_proj(query), self.num_heads)
        k = split_heads(self.k_proj(key), self.num_heads)
        v = split_heads(self.v_proj(value), self.num_heads)
        heads_output, weights = scaled_dot_product_attention(
            q, k, v, mask=mask, causal=causal, dropout_p=self.dropout, training=self.training
        )
        output = self.out_proj(merge_heads(heads_output))
        if not need_weights:
            return output, None
        return output, weights.mean(dim=1) if average_attn_weights else weights

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor) -> None:
        for name, tensor in (("query", query), ("key", key), ("value", value)):
            if tensor.dim() != 3 or tensor.shape[-1] != self.d_model:
                raise ValueError(
                    f"expected {name} of shape (batch, seq, d_model={self.d_model}), "
                    f"got {tuple(tensor.shape)}"
                )
        if not query.shape[0] == key.shape[0] == value.shape[0]:
            raise ValueError(
                "expected query, key, value with the same batch size, "
                f"got {query.shape[0]}, {key.shape[0]}, {value.shape[0]}"
            )
        if key.shape[1] != value.shape[1]:
            raise ValueError(
                "expected key and value of the same length S, "
                f"got {key.shape[1]} and {value.shape[1]}"
            )

    def _attention_mask(
        self, key_mask: Tensor | None, attn_mask: Tensor | None, batch: int, L: int, S: int
    ) -> Tensor | None:
        """Combine the masks into one broadcastable to ``(batch, heads, L, S)``."""
        mask = None
        if key_mask is not None:
            if key_mask.dtype != torch.bool or tuple(key_mask.shape) != (batch, S):
                raise ValueError(
                    f"expected a boolean key_mask of shape (batch, S) = ({batch}, {S}), "
                    f"got {key_mask.dtype} of shape {tuple(key_mask.shape)}"
                )
            mask = key_mask[:, None, None, :]
        if attn_mask is not None:
            if attn_mask.dim() == 3:
                attn_mask = attn_mask[:, None]
            mask = attn_mask if mask is None else mask & attn_mask
        return mask

    @torch.no_grad()
    def load_from_torch(self, torch_attention: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of a ``torch.nn.MultiheadAttention`` (same sizes); return self."""
        _check_same_attention_sizes(self, torch_attention)
        d = self.d_model
        packed_weight = torch_attention.in_proj_weight
        for index, projection in enumerate((self.q_proj, self.k_proj, self.v_proj)):
            projection.weight.copy_(packed_weight[index * d : (index + 1) * d])
            if self.bias:
                projection.bias.copy_(torch_attention.in_proj_bias[index * d : (index + 1) * d])
        self.out_proj.weight.copy_(torch_attention.out_proj.weight)
        if self.bias:
            self.out_proj.bias.copy_(torch_attention.out_proj.bias)
        return self

    @torch.no_grad()
    def to_torch(self) -> nn.MultiheadAttention:
        """A ``torch.nn.MultiheadAttention`` (``batch_first=True``) with the same weights."""
        torch_attention = nn.MultiheadAttention(
            self.d_model, self.num_heads, dropout=self.dropout, bias=self.bias, batch_first=True
        ).to(device=self.q_proj.weight.device, dtype=self.q_proj.weight.dtype)
        projections = (self.q_proj, self.k_proj, self.v_proj)
        torch_attention.in_proj_weight.copy_(torch.cat([p.weight for p in projections]))
        torch_attention.out_proj.weight.copy_(self.out_proj.weight)
        if self.bias:
            torch_attention.in_proj_bias.copy_(torch.cat([p.bias for p in projections]))
            torch_attention.out_proj.bias.copy_(self.out_proj.bias)
        return torch_attention


def _check_same_attention_sizes(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    if not theirs._qkv_same_embed_dim or theirs.bias_k is not None:
        raise ValueError(
            "can only load a torch.nn.MultiheadAttention with kdim = vdim = embed_dim "
            "and add_bias_kv=False"
        )
    if (theirs.embed_dim, theirs.num_heads) != (ours.d_model, ours.num_heads):
        raise ValueError(
            f"expected embed_dim={ours.d_model} and num_heads={ours.num_heads}, "
            f"got {theirs.embed_dim} and {theirs.num_heads}"
        )
    if (theirs.in_proj_bias is not None) != ours.bias:
        raise ValueError(f"expected a module with bias={ours.bias}, got the opposite")


# ----------------------------------------------------------------------------------------------
# Positional encoding
# ----------------------------------------------------------------------------------------------


def sinusoidal_positional_encoding(
    max_len: int, d_model: int, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> Tensor:
    """The fixed positional encodings of Vaswani et al. (2017), shape ``(max_len, d_model)``.

    ``PE[pos, 2i] = sin(pos / base^(2i / d_model))`` and ``PE[pos, 2i + 1] = cos(...)`` of the
    same angle: each pair of features is a clock turning at its own speed, from one turn every
    2 pi positions down to one every ``2 pi * base`` positions. Computed in float64.
    """
    if max_len < 0 or d_model < 1:
        raise ValueError(f"expected max_len >= 0 and d_model >= 1, got {max_len} and {d_model}")
    positions = torch.arange(max_len, dtype=torch.float64)[:, None]
    even_features = torch.arange(0, d_model, 2, dtype=torch.float64)
    angles = positions / base ** (even_features / d_model)
    encoding = torch.zeros(max_len, d_model, dtype=torch.float64)
    encoding[:, 0::2] = torch.sin(angles)
    encoding[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return encoding.to(dtype)


class PositionalEncoding(nn.Module):
    """Adds :func:`sinusoidal_positional_encoding` to ``(batch, seq, d_model)``, then dropout."""

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.0):
        super().__init__()
        self.max_len = max_len
        self.dropout = nn.Dropout(dropout)
        self.register_buffer(
            "encoding", sinusoidal_positional_encoding(max_len, d_model), persistent=False
        )

    def forward(self, x: Tensor) -> Tensor:
        seq_len = x.shape[1]
        if seq_len > self.max_len:
            raise ValueError(
                f"a sequence of length {seq_len} is longer than the positional encoding's "
                f"max_len={self.max_len}; build the model with a larger max_len"
            )
        return self.dropout(x + self.encoding[:seq_len].to(x.dtype))


# ----------------------------------------------------------------------------------------------
# Encoder and decoder blocks
# ----------------------------------------------------------------------------------------------

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}


class FeedForward(nn.Module):
    """Position-wise feed-forward: ``linear2(dropout(activation(linear1(x))))``, per token."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu"):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        self.activation_name = activation
        self.activation = _ACTIVATIONS[activation]
        self.linear1 = nn.Linear(d_model, d_ff)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ff, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


class _Block(nn.Module):
    """What encoder and decoder blocks share: the residual + LayerNorm wrapper of a sublayer."""

    def __init__(self, norm_first: bool, residual: bool):
        super().__init__()
        self.norm_first = norm_first
        self.residual = residual

    def _sublayer(
        self,
        x: Tensor,
        sublayer: Callable[[Tensor], Tensor],
        norm: nn.LayerNorm,
        dropout: nn.Module,
    ) -> Tensor:
        """Post-norm: ``norm(x + f(x))``; pre-norm: ``x + f(norm(x))``; no ``x +`` without residual.

        The residual path ``x + ...`` gives the gradient a route around ``f`` through the whole
        stack (claim C2); ``residual=False`` removes it to show what happens without: the first
        layers of a deep stack get far less gradient, and repeated attention averages the
        positions into nearly one vector ("rank collapse", Dong et al. 2021), so that even two
        layers lose most of what distinguished the tokens.
        """
        if self.norm_first:
            change = dropout(sublayer(norm(x)))
            return x + change if self.residual else change
        change = dropout(sublayer(x))
        return norm(x + change if self.residual else change)

    def _check_torch_layer(self, layer: nn.Module, d_ff: int) -> None:
        activation = _torch_activation_name(layer.activation)
        if layer.norm_first != self.norm_first or activation != self.feed_forward.activation_name:
            raise ValueError(
                f"expected a torch layer with norm_first={self.norm_first} and activation="
                f"{self.feed_forward.activation_name!r}, got norm_first={layer.norm_first} "
                f"and activation={activation!r}"
            )
        if layer.linear1.out_features != d_ff:
            raise ValueError(f"expected dim_feedforward={d_ff}, got {layer.linear1.out_features}")


class EncoderBlock(_Block):
    """One encoder layer: self-attention, then feed-forward, each wrapped in residual + LayerNorm.

    Input and output ``(batch, S, d_model)``. ``norm_first=False`` is the original post-norm
    Transformer; ``norm_first=True`` the pre-norm variant that trains deep stacks more easily.
    Attribute names follow ``torch.nn.TransformerEncoderLayer`` (see :meth:`load_from_torch`).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        norm_first: bool = False,
        residual: bool = True,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__(norm_first, residual)
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout=dropout, activation=activation)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, key_mask: Tensor | None = None, attn_mask: Tensor | None = None
    ) -> Tensor:
        """``x`` ``(batch, S, d_model)``; masks as in :meth:`MultiHeadAttention.forward`."""

        def attend(h: Tensor) -> Tensor:
            return self.self_attention(
                h, key_mask=key_mask, attn_mask=attn_mask, need_weights=False
            )[0]

        x = self._sublayer(x, attend, self.norm1, self.dropout1)
        return self._sublayer(x, self.feed_forward, self.norm2, self.dropout2)

    @torch.no_grad()
    def load_from_torch(self, layer: nn.TransformerEncoderLayer) -> EncoderBlock:
        """Copy the weights of a same-sized ``torch.nn.TransformerEncoderLayer``; return self."""
        self._check_torch_layer(layer, self.feed_forward.linear1.out_features)
        self.self_attention.load_from_torch(layer.self_attn)
        _copy_modules(
            [
                (self.feed_forward.linear1, layer.linear1),
                (self.feed_forward.linear2, layer.linear2),
                (self.norm1, layer.norm1),
                (self.norm2, layer.norm2),
            ]
        )
        return self


class DecoderBlock(_Block):
    """One decoder layer: causal self-attention, cross-attention to the encoder, feed-forward.

    ``x`` ``(batch, T, d_model)`` attends to itself (position ``t`` sees ``0 .. t`` only), then to
    ``memory`` ``(batch, S, d_model)``, the encoder's output. Each sublayer is wrapped in
    residual + LayerNorm as in :class:`EncoderBlock`; names follow
    ``torch.nn.TransformerDecoderLayer`` (``cross_attention`` is its ``multihead_attn``).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        norm_first: bool = False,
        residual: bool = True,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__(norm_first, residual)
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.cross_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout=dropout, activation=activation)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        *,
        causal: bool = True,
        key_mask: Tensor | None = None,
        memory_key_mask: Tensor | None = None,
    ) -> Tensor:
        """``x`` ``(batch, T, d_model)`` and ``memory`` ``(batch, S, d_model)`` -> like ``x``.

        ``key_mask`` ``(batch, T)`` and ``memory_key_mask`` ``(batch, S)``: ``True`` = real token.
        """

        def attend_to_self(h: Tensor) -> Tensor:
            return self.self_attention(h, key_mask=key_mask, causal=causal, need_weights=False)[0]

        def attend_to_memory(h: Tensor) -> Tensor:
            return self.cross_attention(
                h, memory, memory, key_mask=memory_key_mask, need_weights=False
            )[0]

        x = self._sublayer(x, attend_to_self, self.norm1, self.dropout1)
        x = self._sublayer(x, attend_to_memory, self.norm2, self.dropout2)
        return self._sublayer(x, self.feed_forward, self.norm3, self.dropout3)

    @torch.no_grad()
    def load_from_torch(self, layer: nn.TransformerDecoderLayer) -> DecoderBlock:
        """Copy the weights of a same-sized ``torch.nn.TransformerDecoderLayer``; return self."""
        self._check_torch_layer(layer, self.feed_forward.linear1.out_features)
        self.self_attention.load_from_torch(layer.self_attn)
        self.cross_attention.load_from_torch(layer.multihead_attn)
        _copy_modules(
            [
                (self.feed_forward.linear1, layer.linear1),
                (self.feed_forward.linear2, layer.linear2),
                (self.norm1, layer.norm1),
                (self.norm2, layer.norm2),
                (self.norm3, layer.norm3),
            ]
        )
        return self


def _torch_activation_name(activation: Callable[[Tensor], Tensor]) -> str | None:
    """'relu' or 'gelu' for the activations of torch's layers (a function or a module)."""
    if activation is F.relu or isinstance(activation, nn.ReLU):
        return "relu"
    if activation is F.gelu or (
        isinstance(activation, nn.GELU) and activation.approximate == "none"
    ):
        return "gelu"
    return None


def _copy_modules(pairs: list[tuple[nn.Module, nn.Module]]) -> None:
    for ours, theirs in pairs:
        ours.load_state_dict(theirs.state_dict())


# ----------------------------------------------------------------------------------------------
# The encoder-decoder Transformer
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _evaluation_mode(module: nn.Module) -> Iterator[None]:
    """Switch dropout off inside the block, restore the previous mode after it."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class Transformer(nn.Module):
    """A small encoder-decoder Transformer (Vaswani et al. 2017) for sequence-to-sequence tasks.

    Tokens ``(batch, seq)`` of integer ids -> embeddings scaled by sqrt(d_model) + sinusoidal
    positions -> ``num_encoder_layers`` :class:`EncoderBlock` over the source ->
    ``num_decoder_layers`` :class:`DecoderBlock` over the target, attending to the encoder's
    output -> a linear layer to ``tgt_vocab_size`` logits. With ``norm_first=True`` a final
    LayerNorm follows each stack, as usual for pre-norm. ``residual=False`` removes every
    residual connection (claim C2). When ``pad_id`` is given, padding tokens are masked as keys.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        d_model: int = 128,
        num_heads: int = 4,
        num_encoder_layers: int = 2,
        num_decoder_layers: int = 2,
        d_ff: int = 512,
        dropout: float = 0.1,
        max_len: int = 512,
        norm_first: bool = False,
        residual: bool = True,
        pad_id: int | None = None,
        activation: str = "relu",
    ):
        super().__init__()
        self.src_vocab_size = src_vocab_size
        self.tgt_vocab_size = tgt_vocab_size
        self.d_model = d_model
        self.pad_id = pad_id
        block_options = dict(
            d_model=d_model,
            num_heads=num_heads,
            d_ff=d_ff,
            dropout=dropout,
            norm_first=norm_first,
            residual=residual,
            activation=activation,
        )
        self.src_embedding = nn.Embedding(src_vocab_size, d_model)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_len=max_len, dropout=dropout)
        self.encoder_layers = nn.ModuleList(
            EncoderBlock(**block_options) for _ in range(num_encoder_layers)
        )
        self.decoder_layers = nn.ModuleList(
            DecoderBlock(**block_options) for _ in range(num_decoder_layers)
        )
        self.encoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.output_projection = nn.Linear(d_model, tgt_vocab_size)
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)

    def _check_tokens(self, tokens: Tensor, name: str, vocab_size: int) -> None:
        if tokens.dim() != 2 or tokens.is_floating_point() or tokens.dtype == torch.bool:
            raise ValueError(
                f"expected {name} as integer token ids of shape (batch, seq), "
                f"got {tokens.dtype} of shape {tuple(tokens.shape)}"
            )
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= vocab_size):
            bad = tokens[(tokens < 0) | (tokens >= vocab_size)][0].item()
            raise ValueError(
                f"{name} holds token id {bad}, out of range for a vocabulary of {vocab_size}"
            )

    def _key_mask(self, tokens: Tensor) -> Tensor | None:
        return None if self.pad_id is None else tokens != self.pad_id

    def _embed(self, tokens: Tensor, embedding: nn.Embedding) -> Tensor:
        return self.positional_encoding(embedding(tokens) * math.sqrt(self.d_model))

    def encode(self, src: Tensor) -> Tensor:
        """Source ids ``(batch, S)`` -> memory ``(batch, S, d_model)``."""
        self._check_tokens(src, "src", self.src_vocab_size)
        x = self._embed(src, self.src_embedding)
        key_mask = self._key_mask(src)
        for layer in self.encoder_layers:
            x = layer(x, key_mask=key_mask)
        return self.encoder_norm(x)

    def decode(self, tgt: Tensor, memory: Tensor, src_key_mask: Tensor | None = None) -> Tensor:
        """Target ids ``(batch, T)`` and memory ``(batch, S, d_model)`` -> logits ``(batch, T, V)``.

        Causal: the logits at position ``t`` depend on ``tgt[:, : t + 1]`` only.
        """
        self._check_tokens(tgt, "tgt", self.tgt_vocab_size)
        if tgt.shape[0] != memory.shape[0]:
            raise ValueError(
                f"expected tgt and memory with the same batch size, "
                f"got {tgt.shape[0]} and {memory.shape[0]}"
            )
        x = self._embed(tgt, self.tgt_embedding)
        key_mask = self._key_mask(tgt)
        for layer in self.decoder_layers:
            x = layer(x, memory, key_mask=key_mask, memory_key_mask=src_key_mask)
        return self.output_projection(self.decoder_norm(x))

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Teacher forcing: ``src`` ``(batch, S)``, ``tgt`` ``(batch, T)`` -> ``(batch, T, V)``.

        The logits at position ``t`` predict ``tgt[:, t + 1]``: feed ``[BOS, y1, ..., yn]`` and
        train against ``[y1, ..., yn, EOS]``.
        """
        if src.dim() == 2 and tgt.dim() == 2 and src.shape[0] != tgt.shape[0]:
            raise ValueError(
                "expected src and tgt with the same batch size, "
                f"got {src.shape[0]} and {tgt.shape[0]}"
            )
        memory = self.encode(src)
        return self.decode(tgt, memory, self._key_mask(src))

    @torch.no_grad()
    def greedy_decode(self, src: Tensor, max_len: int, bos_id: int, eos_id: int) -> Tensor:
        """Generate up to ``max_len`` tokens per source, each time taking the most likely one.

        Returns ids ``(batch, 1 + n)``, ``n <= max_len``, starting with ``bos_id``; a sequence
        that produced ``eos_id`` is filled with ``pad_id`` (or ``eos_id`` when the model has
        none) while the others finish. Runs in evaluation mode (no dropout).
        """
        if max_len < 1:
            raise ValueError(f"expected max_len >= 1, got {max_len}")
        with _evaluation_mode(self):
            memory = self.encode(src)
            src_key_mask = self._key_mask(src)
            tokens = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
            finished = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
            filler = eos_id if self.pad_id is None else self.pad_id
            for _ in range(max_len):
                next_token = self.decode(tokens, memory, src_key_mask)[:, -1].argmax(dim=-1)
                next_token = next_token.masked_fill(finished, filler)
                tokens = torch.cat([tokens, next_token[:, None]], dim=1)
                finished |= next_token == eos_id
                if finished.all():
                    break
        return tokens

    @torch.no_grad()
    def beam_search(
        self,
        src: Tensor,
        max_len: int,
        bos_id: int,
        eos_id: int,
        beam_size: int = 4,
        length_penalty: float = 1.0,
    ) -> list[Tensor]:
        """Keep the ``beam_size`` most likely partial outputs instead of greedy's single one.

        Score of an output of ``n`` generated tokens: ``sum(log p) / n ** length_penalty``
        (0 ranks by total log-probability, which favours short outputs). At each step the
        ``beam_size`` best extensions of all live hypotheses are kept; those ending in
        ``eos_id`` are finished and leave the beam, so the beam shrinks (libraries such as
        Hugging Face keep it full by looking at ``2 * beam_size`` candidates). Hypotheses still
        alive after ``max_len`` tokens finish there. ``beam_size=1`` is greedy decoding.

        Returns one 1-D tensor of ids per source sequence, starting with ``bos_id``.
        """
        if beam_size < 1 or max_len < 1:
            raise ValueError(
                f"expected beam_size >= 1 and max_len >= 1, got {beam_size}, {max_len}"
            )
        self._check_tokens(src, "src", self.src_vocab_size)
        with _evaluation_mode(self):
            return [
                self._beam_search_one(
                    src[i : i + 1], max_len, bos_id, eos_id, beam_size, length_penalty
                )
                for i in range(src.shape[0])
            ]

    def _beam_search_one(
        self,
        src: Tensor,
        max_len: int,
        bos_id: int,
        eos_id: int,
        beam_size: int,
        length_penalty: float,
    ) -> Tensor:
        """Beam search for one source ``(1, S)``; returns the best output ``(1 + n,)``."""
        memory = self.encode(src)
        src_key_mask = self._key_mask(src)
        alive = torch.full((1, 1), bos_id, dtype=torch.long, device=src.device)
        alive_scores = torch.zeros(1, device=src.device)
        finished: list[tuple[float, Tensor]] = []
        for length in range(1, max_len + 1):
            count = alive.shape[0]
            logits = self.decode(
                alive,
                memory.expand(count, -1, -1),
                None if src_key_mask is None else src_key_mask.expand(count, -1),
            )[:, -1]
            candidate_scores = alive_scores[:, None] + torch.log_softmax(logits.float(), dim=-1)
            best = candidate_scores.flatten().topk(min(beam_size, candidate_scores.numel()))
            beams = best.indices // self.tgt_vocab_size
            next_tokens = best.indices % self.tgt_vocab_size
            candidates = torch.cat([alive[beams], next_tokens[:, None]], dim=1)
            ends = next_tokens == eos_id
            finished += _scored(best.values[ends], candidates[ends], length**length_penalty)
            alive, alive_scores = candidates[~ends], best.values[~ends]
            if alive.shape[0] == 0:
                break
        else:
            finished += _scored(alive_scores, alive, max_len**length_penalty)
        return max(finished, key=lambda scored: scored[0])[1]


def _scored(scores: Tensor, sequences: Tensor, normalizer: float) -> list[tuple[float, Tensor]]:
    """Pair each finished sequence with its length-normalized score."""
    return [
        (score / normalizer, sequence)
        for score, sequence in zip(scores.tolist(), sequences, strict=True)
    ]


# ----------------------------------------------------------------------------------------------
# Chapter 1 experiments: what the notebook measures (claims C1-C2, the RNN comparison, bench)
# ----------------------------------------------------------------------------------------------


def cross_attention_weights(
    model: Transformer, src: Tensor, tgt: Tensor, layer: int = -1
) -> Tensor:
    """Where each target token looks in the source: the cross-attention weights of one layer.

    Runs ``model`` with teacher forcing on ``src`` ``(batch, S)`` and ``tgt`` ``(batch, T)`` (in
    evaluation mode, no gradient) and returns the weights of decoder layer ``layer`` (the last by
    default), per head: ``(batch, heads, T, S)``; row ``t`` is what the decoder attends to while
    predicting ``tgt[:, t + 1]``. The blocks ask their attention for no weights, so a forward
    pre-hook switches ``need_weights`` on for this one call; the model is left unchanged.
    """
    attention = model.decoder_layers[layer].cross_attention
    recorded: list[Tensor] = []

    def ask_for_weights(module, args, kwargs):
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

    def keep_weights(module, args, kwargs, output):
        recorded.append(output[1])

    handles = [
        attention.register_forward_pre_hook(ask_for_weights, with_kwargs=True),
        attention.register_forward_hook(keep_weights, with_kwargs=True),
    ]
    try:
        with torch.no_grad(), _evaluation_mode(model):
            model(src, tgt)
    finally:
        for handle in handles:
            handle.remove()
    return recorded[0]


class EncoderTagger(nn.Module):
    """An encoder-only stack for the depth experiment (claim C2): one label per input token.

    Token ids ``(batch, seq)`` -> embedding * sqrt(d_model) + sinusoidal positions ->
    ``num_layers`` :class:`EncoderBlock` (dropout 0) -> logits ``(batch, seq, num_classes)``.
    ``residual=False`` removes the residual connection around every sublayer, nothing else.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        num_layers: int,
        d_model: int = 64,
        num_heads: int = 4,
        d_ff: int = 128,
        residual: bool = True,
        norm_first: bool = False,
        max_len: int = 64,
    ):
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_len=max_len)
        self.layers = nn.ModuleList(
            EncoderBlock(
                d_model, num_heads, d_ff, dropout=0.0, norm_first=norm_first, residual=residual
            )
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.positional_encoding(self.embedding(tokens) * math.sqrt(self.d_model))
        for layer in self.layers:
            x = layer(x)
        return self.head(self.final_norm(x))


def previous_token_batch(
    batch_size: int, seq_len: int, vocab_size: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """A batch of the toy task of the depth experiment: output the previous token.

    Returns ``tokens`` and ``targets``, both int64 ``(batch_size, seq_len)``, with
    ``targets[:, i] = tokens[:, i - 1]`` (and ``tokens[:, 0]`` at position 0): each position must
    fetch its neighbour's token, which takes attention and positions.
    """
    tokens = torch.randint(0, vocab_size, (batch_size, seq_len), generator=generator)
    return tokens, torch.cat([tokens[:, :1], tokens[:, :-1]], dim=1)


def layer_gradient_norms(model: EncoderTagger, tokens: Tensor, targets: Tensor) -> list[float]:
    """L2 norm of the loss gradient with respect to each layer's parameters, first layer first.

    ``tokens``, ``targets`` ``(batch, seq)``; the loss is the mean token cross-entropy. The
    model's gradients are cleared before and after, so this can be called at initialization.
    """
    model.zero_grad(set_to_none=True)
    logits = model(tokens)
    F.cross_entropy(logits.transpose(1, 2), targets).backward()
    norms = []
    for layer in model.layers:
        squares = [p.grad.pow(2).sum() for p in layer.parameters() if p.grad is not None]
        norms.append(float(torch.stack(squares).sum().sqrt()))
    model.zero_grad(set_to_none=True)
    return norms


@dataclass
class DepthRun:
    """One arm of the depth experiment: gradient norms at initialization, then a short training.

    ``gradient_norms`` has one entry per layer (first layer first); ``losses`` one per step;
    ``accuracy`` is the token accuracy on a fresh batch after training (0-1).
    """

    residual: bool
    gradient_norms: list[float]
    losses: list[float]
    accuracy: float


def depth_experiment(
    residual: bool,
    *,
    num_layers: int = 24,
    steps: int = 150,
    batch_size: int = 32,
    seq_len: int = 10,
    vocab_size: int = 16,
    d_model: int = 64,
    learning_rate: float = 3e-4,
    seed: int = 0,
) -> DepthRun:
    """Build a ``num_layers``-deep post-norm :class:`EncoderTagger` with or without residual
    connections, measure :func:`layer_gradient_norms` at initialization, then train it with Adam
    for ``steps`` steps on :func:`previous_token_batch` (a fresh batch per step) and report the loss
    curve and the final token accuracy. Same seed, same data, same weights for both arms."""
    torch.manual_seed(seed)
    model = EncoderTagger(vocab_size, vocab_size, num_layers, d_model=d_model, residual=residual)
    generator = torch.Generator().manual_seed(seed)
    tokens, targets = previous_token_batch(batch_size, seq_len, vocab_size, generator)
    norms = layer_gradient_norms(model, tokens, targets)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    losses = []
    model.train()
    for _ in range(steps):
        tokens, targets = previous_token_batch(batch_size, seq_len, vocab_size, generator)
        loss = F.cross_entropy(model(tokens).transpose(1, 2), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    tokens, targets = previous_token_batch(256, seq_len, vocab_size, generator)
    with torch.no_grad():
        accuracy = float((model(tokens).argmax(dim=-1) == targets).float().mean())
    return DepthRun(residual, norms, losses, accuracy)


def sequential_steps(seq_len: int) -> dict[str, int]:
    """Operations that must run one after another in one layer over ``seq_len`` tokens.

    An RNN (LSTM) computes ``h_t`` from ``h_{t-1}``: ``seq_len`` dependent steps. Self-attention
    computes every position from the previous layer at once: 1 step (a few matrix products).
    """
    if seq_len < 1:
        raise ValueError(f"expected seq_len >= 1, got {seq_len}")
    return {"LSTM": seq_len, "self-attention": 1}


def recurrence_vs_attention(
    seq_lens: Sequence[int],
    *,
    batch_size: int = 16,
    d_model: int = 64,
    num_heads: int = 4,
    repeats: int = 5,
    seed: int = 0,
) -> list[dict]:
    """Forward time of one ``torch.nn.LSTM`` layer and one :class:`MultiHeadAttention` layer
    (same ``d_model``) on a batch ``(batch_size, L, d_model)``, for each ``L`` in ``seq_lens``.

    Returns rows ``{"seq_len", "variant", "ms", "peak_bytes": None, "sequential_steps"}``,
    the median milliseconds over ``repeats`` of :func:`handbook.bench.time_callable`.
    """
    torch.manual_seed(seed)
    lstm = nn.LSTM(d_model, d_model, batch_first=True).eval()
    attention = MultiHeadAttention(d_model, num_heads).eval()
    rows = []
    for seq_len in seq_lens:
        x = torch.randn(batch_size, seq_len, d_model)
        steps = sequential_steps(seq_len)
        variants = {
            "LSTM": lambda x=x: lstm(x),
            "self-attention": lambda x=x: attention(x, need_weights=False),
        }
        for name, fn in variants.items():
            with torch.inference_mode():
                timing = bench.time_callable(fn, warmup=1, repeats=repeats)
            rows.append(
                {
                    "seq_len": seq_len,
                    "variant": name,
                    "ms": timing.median_ms,
                    "peak_bytes": None,
                    "sequential_steps": steps[name],
                }
            )
    return rows


def _attention_variants(
    seq_len: int, heads: int, d_head: int, chunk_size: int, sdpa_chunk_size: int, seed: int
) -> dict[str, Callable[[], Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, heads, seq_len, d_head, generator=generator) for _ in range(3))

    def plain() -> Tensor:
        with torch.inference_mode():
            return scaled_dot_product_attention(q, k, v)[0]

    def chunked() -> Tensor:
        with torch.inference_mode():
            return chunked_attention(q, k, v, chunk_size=chunk_size)

    def chunked_sdpa() -> Tensor:
        with torch.inference_mode():
            return chunked_sdpa_attention(q, k, v, chunk_size=sdpa_chunk_size)

    def torch_sdpa() -> Tensor:
        with torch.inference_mode():
            return F.scaled_dot_product_attention(q, k, v)

    return {
        "plain": plain,
        "chunked": chunked,
        "chunked, SDPA per chunk": chunked_sdpa,
        "torch SDPA": torch_sdpa,
    }


def peak_in_fresh_process(
    seq_len: int,
    variant: str,
    *,
    heads: int = 1,
    d_head: int = 64,
    chunk_size: int = 128,
    sdpa_chunk_size: int = 2048,
    seed: int = 0,
    timeout_s: float = 600.0,
) -> int:
    """Peak resident-memory growth, bytes, of one call of one :func:`attention_scaling` variant,
    measured in a new Python process.

    In a process that has run other variants, the allocator hands out memory it already holds
    and the peak barely moves (this read 0.0 MiB for chunked attention); a fresh process that
    has only run the same variant once on 64 tokens (to load its kernels) and then allocated q,
    k and v charges the call with every page it touches. Linux only (/proc), like
    :func:`handbook.bench.peak_memory_bytes`.

    The child runs on one thread with glibc's mmap threshold fixed at 64 KiB: every block larger
    than that is its own mapping, returned to the kernel when freed, so the high-water mark is
    the peak of what was live, at page resolution. (With glibc's defaults, a threshold that
    moves after the first large free and per-thread arenas, chunked attention read 7.3 and 10.4
    MiB at 2,048 tokens in two runs; fixed, 5.1 MiB both times, and twice that at 4,096.)
    """
    import os
    import subprocess
    import sys

    arguments = (seq_len, variant, heads, d_head, chunk_size, sdpa_chunk_size, seed)
    code = f"from handbook.attention import _child_peak; print(_child_peak(*{arguments!r}))"
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=environment,
    )
    if finished.returncode != 0:
        raise RuntimeError(f"measuring {variant} at L={seq_len} failed:\n{finished.stderr[-2000:]}")
    return int(finished.stdout.split()[-1])


def _child_peak(
    seq_len: int, variant: str, heads: int, d_head: int, chunk_size: int, sdpa_chunk: int, seed: int
) -> int:
    """Runs in the fresh process of :func:`peak_in_fresh_process`."""
    _attention_variants(64, heads, d_head, chunk_size, sdpa_chunk, seed)[variant]()
    call = _attention_variants(seq_len, heads, d_head, chunk_size, sdpa_chunk, seed)[variant]
    return bench.peak_memory_bytes(call)


def attention_scaling(
    seq_lens: Sequence[int],
    *,
    heads: int = 1,
    d_head: int = 64,
    chunk_size: int = 128,
    sdpa_chunk_size: int = 2048,
    repeats: int = 3,
    seed: int = 0,
    memory: bool = True,
) -> list[bench.Measurement]:
    """Time and peak memory of the four attentions at each sequence length, side by side.

    Variants: ``plain`` (:func:`scaled_dot_product_attention`, builds the ``(L, L)`` scores),
    ``chunked`` (:func:`chunked_attention`, ``(L, chunk_size)`` at a time), ``chunked, SDPA per
    chunk`` (:func:`chunked_sdpa_attention`, ``sdpa_chunk_size`` keys at a time through
    PyTorch's fused kernel) and ``torch SDPA`` (PyTorch's
    ``scaled_dot_product_attention``) on q, k, v of shape ``(1, heads, L, d_head)`` in float32,
    inference mode. One
    :class:`handbook.bench.Measurement` per variant and length (group ``"ch01 attention, L=..."``;
    ``ratio`` = plain's time over the variant's). ``peak_bytes`` (with ``memory=True``, on Linux)
    is :func:`peak_in_fresh_process`: one new process per variant and length, a few seconds each.
    """
    rows = []
    for seq_len in seq_lens:
        variants = _attention_variants(seq_len, heads, d_head, chunk_size, sdpa_chunk_size, seed)
        measured = bench.compare(
            f"ch01 attention, L={seq_len}",
            variants,
            baseline="plain",
            warmup=1,
            repeats=repeats,
            details={
                "chunked": f"chunk_size={chunk_size}",
                "chunked, SDPA per chunk": f"chunk_size={sdpa_chunk_size}",
            },
        )
        del variants
        for row in measured:
            if memory and bench.cpu_peak_supported():
                row.peak_bytes = peak_in_fresh_process(
                    seq_len, row.variant, heads=heads, d_head=d_head, chunk_size=chunk_size,
                    sdpa_chunk_size=sdpa_chunk_size, seed=seed,
                )  # fmt: skip
        rows += measured
    return rows


def scaling_table(measurements: Sequence[bench.Measurement]) -> list[dict]:
    """Rows ``{"seq_len", "variant", "ms", "peak_bytes"}`` of :func:`attention_scaling`'s output,
    for :func:`handbook.plots.scaling_plot` (``peak_bytes`` is None where memory is not
    measurable)."""
    return [
        {
            "seq_len": int(row.group.rsplit("L=", 1)[1]),
            "variant": row.variant,
            "ms": row.median_ms,
            "peak_bytes": row.peak_bytes,
        }
        for row in measurements
    ]


#: Sequence lengths of ``make bench`` (see :func:`benchmarks`).
BENCH_SEQ_LENS = (128, 512, 1024, 2048, 4096, 8192, 16384)
SMOKE_BENCH_SEQ_LENS = (64, 256)


def benchmarks(smoke: bool = False) -> list[bench.Measurement]:
    """``make bench``: plain vs chunked vs PyTorch attention, one head of width 64, float32.

    Full mode: L = 128 ... 16,384, peak memory from a fresh process per row. At 16,384 plain
    attention holds ``(L, L)`` float32 matrices of 1 GiB each and takes seconds per call on a
    2-core CPU, so lengths past 4,096 are timed twice instead of five times.
    """
    if smoke:
        return attention_scaling(SMOKE_BENCH_SEQ_LENS, repeats=2)
    short = [length for length in BENCH_SEQ_LENS if length <= 4096]
    long = [length for length in BENCH_SEQ_LENS if length > 4096]
    return attention_scaling(short, repeats=5) + attention_scaling(long, repeats=2)
