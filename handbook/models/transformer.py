"""The Transformer of Vaswani et al. (2017), from scratch: positional encoding, feed-forward,
encoder and decoder blocks, the encoder-decoder :class:`Transformer` with greedy and beam-search
decoding.

Built on :mod:`handbook.models.attention`. Chapter 1 trains it (:mod:`handbook.attention`);
chapter 2 (:mod:`handbook.optimization`), chapter 3 (:mod:`handbook.data`), chapter 4
(:mod:`handbook.compression`) and chapter 5's server reuse it. The blocks are checked against
``torch.nn.TransformerEncoderLayer`` / ``TransformerDecoderLayer`` (same weights, same outputs)
and the decoding against exhaustive search in ``tests/test_models_transformer.py``. Masks follow
:mod:`handbook.models.attention`: ``True`` = "may attend", ``key_mask`` ``True`` = real token.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from handbook.models.attention import MultiHeadAttention
from handbook.train import evaluation_mode

__all__ = [
    "DecoderBlock",
    "EncoderBlock",
    "FeedForward",
    "PositionalEncoding",
    "Transformer",
    "sinusoidal_positional_encoding",
]


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
        with evaluation_mode(self):
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
        with evaluation_mode(self):
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
