"""Attention, from scratch: masks, scaled dot-product attention, its chunked (online-softmax)
form and multi-head attention; the first layer of :mod:`handbook.models`.

Chapter 1 builds these step by step (:mod:`handbook.attention`, ``notebooks/01_attention``),
chapter 8's cross-modal attention (:mod:`handbook.multimodal`) reuses them, and the Transformer
of :mod:`handbook.models.transformer` is made of them. Everything is
checked against PyTorch in ``tests/test_models_attention.py``: :func:`scaled_dot_product_attention`
against ``torch.nn.functional.scaled_dot_product_attention``, :func:`chunked_attention` and
:func:`chunked_sdpa_attention` against it, :class:`MultiHeadAttention` against
``torch.nn.MultiheadAttention`` (same weights, same outputs).

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MultiHeadAttention",
    "causal_mask",
    "chunked_attention",
    "chunked_sdpa_attention",
    "masked_softmax",
    "merge_heads",
    "padding_mask",
    "scaled_dot_product_attention",
    "split_heads",
]

_HALF_DTYPES = (torch.float16, torch.bfloat16)


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
