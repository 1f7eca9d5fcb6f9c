"""The model library: the networks that several chapters build on, apart from any lesson.

- :mod:`handbook.models.attention`: masks, scaled dot-product attention (plain and chunked),
  multi-head attention.
- :mod:`handbook.models.transformer`: positional encoding, encoder and decoder blocks, the
  encoder-decoder :class:`Transformer` with greedy and beam-search decoding.
- :mod:`handbook.models.cnn`: :class:`SmallCNN`, the convolutional network of the digits.
- :mod:`handbook.models.lstm`: chapter 6's LSTM from scratch, and torch's LSTM run on padded
  batches (packed, or unpacked and faster to train on a CPU).

Chapter 1 (:mod:`handbook.attention`) builds the attention and the Transformer step by step and
trains it; chapters 2 (:mod:`handbook.optimization`), 3 (:mod:`handbook.data`), 4
(:mod:`handbook.compression`), 5 (the server's model) and 8 (:mod:`handbook.multimodal`) import
them from here, as chapters 0, 4 and 9 import :class:`SmallCNN`. A model module imports torch
and the shared training helpers (:mod:`handbook.train`), never a lesson module. Attention and
the Transformer are checked against PyTorch's own layers in ``tests/test_models_attention.py``
and ``tests/test_models_transformer.py``.
"""

from __future__ import annotations

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
from handbook.models.cnn import SmallCNN
from handbook.models.transformer import (
    DecoderBlock,
    EncoderBlock,
    FeedForward,
    PositionalEncoding,
    Transformer,
    sinusoidal_positional_encoding,
)

__all__ = [
    "DecoderBlock",
    "EncoderBlock",
    "FeedForward",
    "MultiHeadAttention",
    "PositionalEncoding",
    "SmallCNN",
    "Transformer",
    "causal_mask",
    "chunked_attention",
    "chunked_sdpa_attention",
    "masked_softmax",
    "merge_heads",
    "padding_mask",
    "scaled_dot_product_attention",
    "sinusoidal_positional_encoding",
    "split_heads",
]
