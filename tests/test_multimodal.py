"""handbook.multimodal against independent references: F.cross_entropy and float64 NumPy for the
InfoNCE loss, nn.MultiheadAttention for cross-modal attention, scikit-learn and brute force for
the retrieval metrics."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import top_k_accuracy_score
from torch import nn
from torch.nn import functional as F

from handbook import multimodal

pytestmark = pytest.mark.usefixtures("one_thread")


def reference_info_nce(logits: torch.Tensor) -> torch.Tensor:
    targets = torch.arange(len(logits))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def float64_info_nce(logits: np.ndarray) -> float:
    logits = logits.astype(np.float64)
    n = len(logits)
    total = 0.0
    for i in range(n):
        row_max, column_max = logits[i].max(), logits[:, i].max()
        row = row_max + math.log(np.exp(logits[i] - row_max).sum()) - logits[i, i]
        column = column_max + math.log(np.exp(logits[:, i] - column_max).sum()) - logits[i, i]
        total += (row + column) / 2
    return total / n


@pytest.mark.parametrize("batch", [1, 2, 7, 64])
@pytest.mark.parametrize("scale", [1.0, 14.3, 100.0])
def test_info_nce_matches_cross_entropy_both_ways_and_float64(batch, scale):
    generator = torch.Generator().manual_seed(batch)
    logits = scale * torch.randn(batch, batch, generator=generator).tanh()
    ours = multimodal.info_nce_loss(logits)
    torch.testing.assert_close(ours, reference_info_nce(logits))
    assert ours.item() == pytest.approx(float64_info_nce(logits.numpy()), rel=1e-5, abs=1e-5)


def test_info_nce_gradients_match_the_reference():
    logits = torch.randn(9, 9, generator=torch.Generator().manual_seed(1)) * 5
    ours_input, theirs_input = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    multimodal.info_nce_loss(ours_input).backward()
    reference_info_nce(theirs_input).backward()
    torch.testing.assert_close(ours_input.grad, theirs_input.grad)


def test_info_nce_is_not_symmetric_in_name_only():
    # image 0 matches all three captions, but each caption has one clear image: directions differ
    logits = torch.tensor([[5.0, 5.0, 5.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0]])
    targets = torch.arange(3)
    rows_only = F.cross_entropy(logits, targets)
    assert not torch.isclose(multimodal.info_nce_loss(logits), rows_only)
    assert multimodal.info_nce_loss(torch.eye(4) * 50) < 1e-6


def test_info_nce_rejects_a_non_square_matrix():
    with pytest.raises(ValueError, match="square"):
        multimodal.info_nce_loss(torch.zeros(3, 4))


def test_cosine_similarity_matrix_matches_torch():
    generator = torch.Generator().manual_seed(2)
    first, second = torch.randn(5, 8, generator=generator), torch.randn(7, 8, generator=generator)
    expected = F.cosine_similarity(first[:, None, :], second[None, :, :], dim=2)
    torch.testing.assert_close(multimodal.cosine_similarity_matrix(first, second), expected)
    with pytest.raises(ValueError, match="same d"):
        multimodal.cosine_similarity_matrix(first, torch.zeros(3, 4))


def test_dual_encoder_logits_are_scaled_cosines_and_the_loss_trains():
    torch.manual_seed(0)
    model = multimodal.DualEncoder(vocab_size=12, dim=8, temperature=0.1)
    images, tokens = torch.rand(6, 1, 8, 8), torch.randint(1, 12, (6, 5))
    logits = model(images, tokens)
    cosines = multimodal.cosine_similarity_matrix(
        model.image_encoder(images), model.text_encoder(tokens)
    )
    torch.testing.assert_close(logits, cosines / 0.1)
    assert model.temperature == pytest.approx(0.1)
    history = multimodal.train_dual_encoder(model, images, tokens, epochs=30, batch_size=6)
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]


def test_text_encoder_ignores_padding():
    torch.manual_seed(0)
    encoder = multimodal.TextEncoder(vocab_size=10, dim=4)
    short = torch.tensor([[3, 4, 0, 0]])
    torch.testing.assert_close(encoder(short), encoder(torch.tensor([[3, 4]])))


def test_vocabulary_and_encoding():
    vocabulary = multimodal.build_vocabulary(["a bold 3", "A thin three leaning left"])
    assert vocabulary["<pad>"] == 0 and vocabulary["<unk>"] == 1
    assert sorted(vocabulary, key=vocabulary.get)[2:] == sorted(
        ["a", "bold", "3", "thin", "three", "leaning", "left"]
    )
    tokens = multimodal.encode_captions(["bold 3", "a purple 3 x y"], vocabulary, length=4)
    assert tokens.tolist() == [
        [vocabulary["bold"], vocabulary["3"], 0, 0],
        [vocabulary["a"], 1, vocabulary["3"], 1],
    ]
    assert multimodal.encode_captions(["a", "a bold 3"], vocabulary).shape == (2, 3)


# Cross-modal attention -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("d_model", "d_image", "heads", "tokens", "patches"),
    [(8, 4, 1, 5, 16), (12, 6, 3, 1, 4), (8, 8, 2, 7, 9)],
)
def test_cross_modal_attention_matches_torch_multihead_attention(
    d_model, d_image, heads, tokens, patches
):
    torch.manual_seed(d_model + d_image)
    reference = nn.MultiheadAttention(
        d_model, heads, kdim=d_image, vdim=d_image, batch_first=True
    ).eval()
    with torch.no_grad():
        reference.in_proj_bias.normal_()
        reference.out_proj.bias.normal_()
    ours = multimodal.CrossModalAttention(d_model, d_image, heads).load_from_torch(reference)
    text, image = torch.randn(3, tokens, d_model), torch.randn(3, patches, d_image)
    output, weights = ours(text, image)
    expected_output, expected_weights = reference(text, image, image)
    torch.testing.assert_close(output, expected_output, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=1e-5)
    assert weights.shape == (3, tokens, patches)


def test_cross_modal_attention_checks_its_inputs():
    attention = multimodal.CrossModalAttention(8, 4, 2)
    with pytest.raises(ValueError, match="image patches"):
        attention(torch.zeros(2, 3, 8), torch.zeros(2, 5, 8))
    with pytest.raises(ValueError, match="text"):
        attention(torch.zeros(2, 3, 4), torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match="kdim"):
        attention.load_from_torch(nn.MultiheadAttention(8, 2, kdim=6, vdim=6))


def test_image_patches_cut_row_by_row():
    images = torch.arange(64, dtype=torch.float32).reshape(1, 1, 8, 8)
    patches = multimodal.image_patches(images)
    assert patches.shape == (1, 16, 4)
    assert patches[0, 0].tolist() == [0, 1, 8, 9]
    assert patches[0, 5].tolist() == [18, 19, 26, 27]
    with pytest.raises(ValueError, match="divisible"):
        multimodal.image_patches(torch.zeros(1, 1, 7, 7))


# Retrieval -----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
@pytest.mark.parametrize("k", [1, 3, 10])
@pytest.mark.parametrize("size", [5, 40])
def test_recall_at_k_matches_sklearn_top_k_accuracy(k, size):
    generator = torch.Generator().manual_seed(size + k)
    similarity = torch.randn(size, size, generator=generator)
    expected = top_k_accuracy_score(
        np.arange(size), similarity.numpy(), k=k, labels=np.arange(size)
    )
    assert multimodal.recall_at_k(similarity, k) == pytest.approx(expected)


def brute_force_ranks(similarity: np.ndarray, relevant: np.ndarray) -> list[int]:
    ranks = []
    for scores, answers in zip(similarity, relevant, strict=True):
        order = sorted(range(len(scores)), key=lambda item: -scores[item])
        ranks.append(next(position for position, item in enumerate(order, 1) if answers[item]))
    return ranks


def test_ranks_recall_and_mrr_match_brute_force_with_several_relevant_items():
    rng = np.random.default_rng(3)
    similarity = rng.normal(size=(30, 50))
    relevant = rng.random((30, 50)) < 0.08
    relevant[np.arange(30), rng.integers(0, 50, 30)] = True
    ranks = brute_force_ranks(similarity, relevant)
    ours = multimodal.first_relevant_rank(torch.from_numpy(similarity), torch.from_numpy(relevant))
    assert ours.tolist() == ranks
    for k in (1, 5, 10):
        recall = multimodal.recall_at_k(torch.from_numpy(similarity), k, torch.from_numpy(relevant))
        assert recall == pytest.approx(np.mean(np.array(ranks) <= k))
    mrr = multimodal.mean_reciprocal_rank(torch.from_numpy(similarity), torch.from_numpy(relevant))
    assert mrr == pytest.approx(np.mean(1.0 / np.array(ranks)))


def test_retrieval_metrics_reject_bad_inputs():
    with pytest.raises(ValueError, match="square"):
        multimodal.recall_at_k(torch.zeros(2, 3), 1)
    with pytest.raises(ValueError, match="at least one relevant"):
        multimodal.recall_at_k(torch.zeros(2, 2), 1, torch.tensor([[True, False], [False, False]]))
    with pytest.raises(ValueError, match="k must be"):
        multimodal.recall_at_k(torch.zeros(2, 2), 0)


def test_relevance_matrix_needs_every_attribute():
    keys = np.array([[3, 1, 0], [3, 1, 1], [3, 1, 0], [4, 1, 0]])
    assert multimodal.relevance_matrix(keys[:1], keys).tolist() == [[True, False, True, False]]


def test_keyword_scores_count_matching_words_and_break_ties_at_random():
    scores = multimodal.keyword_scores(["a bold 3", "seven"], ["3 three", "7 seven", "3"], seed=0)
    assert scores.floor().tolist() == [[1, 0, 1], [0, 1, 0]]
    assert scores[0, 0] != scores[0, 2]
    again = multimodal.keyword_scores(["a bold 3", "seven"], ["3 three", "7 seven", "3"], seed=0)
    torch.testing.assert_close(scores, again)


@pytest.mark.parametrize("chunk", [1, 7, 100, 1000])
def test_chunked_top_k_matches_the_full_matrix(chunk):
    generator = torch.Generator().manual_seed(chunk)
    queries, items = (
        torch.randn(6, 5, generator=generator),
        torch.randn(300, 5, generator=generator),
    )
    expected = multimodal.top_k_indices(queries @ items.T, 10)
    assert torch.equal(multimodal.chunked_top_k(queries, items, 10, chunk=chunk), expected)


def test_benchmarks_run_in_smoke_mode():
    rows = multimodal.benchmarks(smoke=True)
    assert [row.variant for row in rows] == ["full matrix + topk", "chunked, 4096 items"]
    assert all(row.median_ms > 0 for row in rows)


def left_or_right_images(sides: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """8x8 images whose ink (random strengths) fills the left half (side 0) or the right half."""
    images = torch.zeros(len(sides), 1, 8, 8)
    ink = 0.5 + 0.5 * torch.rand(len(sides), 1, 8, 4, generator=generator)
    for index, side in enumerate(sides.tolist()):
        images[index, :, :, 4 * side : 4 * side + 4] = ink[index]
    return images


def test_an_untrained_reranker_adds_nothing_to_the_retriever():
    torch.manual_seed(0)
    reranker = multimodal.CrossAttentionReranker(vocab_size=5)
    tokens, images = torch.randint(1, 5, (6, 3)), torch.rand(9, 1, 8, 8)
    prior = torch.randn(6, 9, generator=torch.Generator().manual_seed(1))
    candidates = multimodal.candidate_lists(prior, 4)
    scores = multimodal.rerank_scores(
        reranker, tokens, images, candidates, prior.gather(1, candidates)
    )
    torch.testing.assert_close(scores, prior.gather(1, candidates))
    reranked = multimodal.reranked_similarity(reranker, tokens, images, prior, 4)
    assert torch.equal(
        reranked.argsort(dim=1, descending=True), prior.argsort(dim=1, descending=True)
    )


def test_the_cross_attention_reranker_learns_a_separable_case():
    # "left" / "right" captions over images inked on one half: only the image, read through
    # cross-attention with patch positions, tells the candidates apart; the prior is noise, and
    # a shortlist of 20 holds a relevant image for every query
    generator = torch.Generator().manual_seed(0)
    vocabulary = {"<pad>": 0, "<unk>": 1, "left": 2, "right": 3}

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        sides = torch.arange(n) % 2
        tokens = (2 + sides).unsqueeze(1)
        images = left_or_right_images(sides, generator)
        relevant = sides[:, None] == sides[None, :]
        return tokens, images, relevant, 0.1 * torch.randn(n, n, generator=generator)

    train_tokens, train_images, train_relevant, train_prior = split(48)
    test_tokens, test_images, test_relevant, test_prior = split(40)
    torch.manual_seed(0)
    reranker = multimodal.CrossAttentionReranker(len(vocabulary), d_model=16, num_heads=2)
    before = multimodal.recall_at_k(
        multimodal.reranked_similarity(reranker, test_tokens, test_images, test_prior, 20),
        1,
        test_relevant,
    )
    losses = multimodal.train_reranker(
        reranker,
        train_tokens,
        train_images,
        train_relevant,
        train_prior,
        epochs=40,
        candidates=4,
        pool=12,
        batch_size=16,
        learning_rate=1e-2,
    )
    after = multimodal.recall_at_k(
        multimodal.reranked_similarity(reranker, test_tokens, test_images, test_prior, 20),
        1,
        test_relevant,
    )
    assert losses[-1] < 0.25 * losses[0], losses
    assert before < 0.8 and after == 1.0, (before, after)


def test_listwise_loss_is_cross_entropy_over_the_relevant_mass():
    scores = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 0.0]])
    relevant = torch.tensor([[True, False, True], [False, True, False]])
    expected = (
        -(torch.log(scores[0].softmax(0)[[0, 2]].sum()) + torch.log(scores[1].softmax(0)[1])) / 2
    )
    torch.testing.assert_close(multimodal.listwise_loss(scores, relevant), expected)
    with pytest.raises(ValueError, match="relevant candidate"):
        multimodal.listwise_loss(scores, torch.zeros(2, 3, dtype=torch.bool))
