"""handbook.attention, chapter 1's lesson: the article's attention snippet (claim C1) as the
module docstring describes it, dtype by dtype, against PyTorch and the model library's attention.
The model library itself is tested in tests/test_models_attention.py and
tests/test_models_transformer.py; chapter 1's experiments in tests/test_attention_experiments.py.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from handbook import attention
from handbook.attention import ARTICLE_SNIPPET_AS_PRINTED, article_attention
from handbook.models import chunked_attention, scaled_dot_product_attention


def random_qkv(batch_shape, L, S, d, dv, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch_shape, L, d, generator=generator, dtype=torch.float64)
    k = torch.randn(*batch_shape, S, d, generator=generator, dtype=torch.float64)
    v = torch.randn(*batch_shape, S, dv, generator=generator, dtype=torch.float64)
    return q.to(dtype), k.to(dtype), v.to(dtype)


# ------------------------------------------------------------------------------------------
# The article's snippet (claim C1)
# ------------------------------------------------------------------------------------------


def test_article_snippet_as_printed_does_not_run_and_only_line_breaks_were_restored():
    with pytest.raises(SyntaxError):
        compile(ARTICLE_SNIPPET_AS_PRINTED, "article", "exec")
    restored = inspect.getsource(article_attention).replace(
        "article_attention", "scaled_dot_product_attention"
    )
    assert "".join(ARTICLE_SNIPPET_AS_PRINTED.split()) == "importtorch" + "".join(restored.split())


def test_article_attention_matches_torch_in_float32():
    q, k, v = random_qkv((4,), 10, 12, 64, 32)
    difference = (article_attention(q, k, v) - F.scaled_dot_product_attention(q, k, v)).abs()
    assert difference.max() < 1e-5


def test_article_scale_is_a_float32_tensor_even_for_float64_inputs():
    assert torch.sqrt(torch.tensor(64)).dtype == torch.get_default_dtype() == torch.float32
    perfect_square = random_qkv((2,), 5, 5, 64, 8, torch.float64)
    not_square = random_qkv((2,), 5, 5, 10, 8, torch.float64)
    exact = article_attention(*perfect_square) - F.scaled_dot_product_attention(*perfect_square)
    rounded = article_attention(*not_square) - F.scaled_dot_product_attention(*not_square)
    assert article_attention(*not_square).dtype == torch.float64
    assert exact.abs().max() < 1e-13
    assert 1e-11 < rounded.abs().max() < 1e-6


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float16, 5e-3), (torch.bfloat16, 5e-2)])
def test_article_attention_in_16_bit_is_within_rounding(dtype, tolerance):
    q, k, v = random_qkv((2,), 8, 8, 64, 16, dtype)
    output = article_attention(q, k, v)
    assert output.dtype == dtype
    reference = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
    assert (output.double() - reference).abs().max() < tolerance


def test_article_attention_overflows_in_float16_where_scaling_first_does_not():
    q = torch.full((1, 2, 64), 40.0, dtype=torch.float16)  # q . k = 102400 > 65504
    assert torch.isinf(torch.bmm(q, q.transpose(1, 2))).all()
    assert torch.isnan(article_attention(q, q, q)).all()
    ours, _ = scaled_dot_product_attention(q, q, q)
    torch.testing.assert_close(ours, q)
    torch.testing.assert_close(chunked_attention(q, q, q, chunk_size=1), q)
    torch.testing.assert_close(F.scaled_dot_product_attention(q, q, q), q)


def test_article_attention_lacks_heads_and_integer_support():
    with pytest.raises(RuntimeError, match="3D"):
        article_attention(*random_qkv((2, 4), 5, 5, 8, 8))
    ones = torch.ones(1, 2, 4, dtype=torch.long)
    with pytest.raises(RuntimeError):
        article_attention(ones, ones, ones)


def test_public_api_is_exported():
    for name in attention.__all__:
        assert hasattr(attention, name), name
