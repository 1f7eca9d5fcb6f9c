"""Chapter 8 - Multimodal learning: align images and captions, fuse them, search with them.

Three pieces, each written from scratch and tested against an independent reference:

- **Contrastive alignment** (CLIP): an image encoder and a text encoder project into one
  space, and the symmetric InfoNCE loss (:func:`info_nce_loss`, tested against
  ``F.cross_entropy`` and a float64 log-sum-exp) pulls each image towards its own caption and
  away from the other captions of the batch.
- **Cross-modal attention** (:class:`CrossModalAttention`, tested against
  ``torch.nn.MultiheadAttention`` with ``kdim``/``vdim``): caption tokens ask, image patches
  answer, the fusion layer of models such as LXMERT and Flamingo.
- **Retrieval metrics** (tested against ``sklearn.metrics.top_k_accuracy_score`` and brute
  force): recall@k and mean reciprocal rank from a query-by-item similarity matrix, and the
  keyword search that a visual search has to beat.

The data is :func:`handbook.datasets.digit_captions`: 8x8 digits with captions such as "a
thick seven tilted right".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from handbook import bench, config, train
from handbook.models import merge_heads, scaled_dot_product_attention, split_heads

PAD, UNKNOWN = "<pad>", "<unk>"

# Captions as token ids ---------------------------------------------------------------------------


def build_vocabulary(captions: Sequence[str]) -> dict[str, int]:
    """Word -> id for the whitespace-separated words of ``captions``, sorted; id 0 is
    :data:`PAD`, id 1 :data:`UNKNOWN` (words first seen at test time)."""
    words = sorted({word for caption in captions for word in caption.lower().split()})
    return {PAD: 0, UNKNOWN: 1} | {word: index for index, word in enumerate(words, start=2)}


def encode_captions(
    captions: Sequence[str], vocabulary: dict[str, int], length: int | None = None
) -> Tensor:
    """Token ids ``(n, length)`` int64, padded with 0 (``length`` defaults to the longest
    caption; longer captions are cut)."""
    tokenized = [
        [vocabulary.get(word, vocabulary[UNKNOWN]) for word in caption.lower().split()]
        for caption in captions
    ]
    length = length or max((len(ids) for ids in tokenized), default=1)
    tokens = torch.zeros(len(tokenized), length, dtype=torch.int64)
    for row, ids in enumerate(tokenized):
        ids = ids[:length]
        tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return tokens


# Contrastive alignment ---------------------------------------------------------------------------


def cosine_similarity_matrix(first: Tensor, second: Tensor) -> Tensor:
    """Cosine similarity of every row of ``first`` ``(n, d)`` with every row of ``second``
    ``(m, d)``: ``(n, m)``, values in [-1, 1]."""
    if first.dim() != 2 or second.dim() != 2 or first.shape[1] != second.shape[1]:
        raise ValueError(
            "expected two matrices (n, d) and (m, d) with the same d, "
            f"got {tuple(first.shape)} and {tuple(second.shape)}"
        )
    return F.normalize(first, dim=1) @ F.normalize(second, dim=1).T


def info_nce_loss(logits: Tensor) -> Tensor:
    """The symmetric InfoNCE (CLIP) loss of a square similarity matrix, a scalar.

    ``logits`` ``(batch, batch)``: row i holds image i's scaled similarity to every caption of
    the batch, and caption i is image i's own. Each row is a softmax classification "which
    caption is mine?" and each column "which image is mine?"; the loss is the mean of the two
    cross-entropies with the diagonal as the right answers.
    """
    if logits.dim() != 2 or logits.shape[0] != logits.shape[1] or logits.shape[0] == 0:
        raise ValueError(
            f"expected a square (batch, batch) similarity matrix, got {tuple(logits.shape)}"
        )
    positives = logits.diagonal()
    image_to_text = torch.logsumexp(logits, dim=1) - positives
    text_to_image = torch.logsumexp(logits, dim=0) - positives
    return (image_to_text.mean() + text_to_image.mean()) / 2


class ImageEncoder(nn.Module):
    """An MLP from an image ``(batch, 1, 8, 8)`` (pixels in [0, 1]) to a vector ``(batch, dim)``."""

    def __init__(self, dim: int, hidden: int = 128, pixels: int = 64):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(pixels, hidden), nn.ReLU(), nn.Linear(hidden, dim)
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.layers(images)


class TextEncoder(nn.Module):
    """A bag of words: the mean embedding of a caption's tokens ``(batch, length)`` (0 =
    padding, left out of the mean), then an MLP to ``(batch, dim)``."""

    def __init__(self, vocab_size: int, dim: int, hidden: int = 128):
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, hidden, mode="mean", padding_idx=0)
        self.layers = nn.Sequential(nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, tokens: Tensor) -> Tensor:
        return self.layers(self.embedding(tokens))


class DualEncoder(nn.Module):
    """CLIP in miniature: two encoders into one ``dim``-dimensional space and a temperature.

    ``forward(images, tokens)`` returns the logits ``(batch, batch)`` of :func:`info_nce_loss`:
    cosine similarities divided by the temperature (learned as a log-scale, initialised at
    ``temperature``, and kept at or above 0.01, CLIP's clamp at a scale of 100).
    """

    def __init__(self, vocab_size: int, dim: int = 32, temperature: float = 0.07):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.image_encoder = ImageEncoder(dim)
        self.text_encoder = TextEncoder(vocab_size, dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    @property
    def temperature(self) -> float:
        return float(1.0 / self.log_scale.detach().clamp(max=math.log(100.0)).exp())

    def embed_images(self, images: Tensor) -> Tensor:
        """Unit vectors ``(batch, dim)``."""
        return F.normalize(self.image_encoder(images), dim=1)

    def embed_texts(self, tokens: Tensor) -> Tensor:
        """Unit vectors ``(batch, dim)``."""
        return F.normalize(self.text_encoder(tokens), dim=1)

    def forward(self, images: Tensor, tokens: Tensor) -> Tensor:
        scale = self.log_scale.clamp(max=math.log(100.0)).exp()
        return scale * self.embed_images(images) @ self.embed_texts(tokens).T


def in_batch_loss(logits: Tensor, _targets: Tensor) -> Tensor:
    """:func:`info_nce_loss` with the signature of :func:`handbook.train.fit`'s ``loss_fn``:
    the right answers are the diagonal of the batch, so the loader's targets are ignored."""
    return info_nce_loss(logits)


def train_dual_encoder(
    model: DualEncoder,
    images: Tensor,
    tokens: Tensor,
    *,
    epochs: int,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
    seed: int = 0,
    description: str = "contrastive training",
) -> train.History:
    """Train ``model`` on aligned ``images`` ``(n, 1, 8, 8)`` and ``tokens`` ``(n, length)`` with
    the in-batch InfoNCE loss (AdamW, through :func:`handbook.train.fit`); return the history.

    The last incomplete batch is kept: a batch of one has no negatives and a loss of 0, which
    is harmless.
    """
    train.set_seed(seed)
    placeholder = torch.zeros(len(images))  # float targets: fit counts no accuracy
    loader = train.make_loader(
        images, tokens, placeholder, batch_size=batch_size, shuffle=True, whole_batches=True
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    return train.fit(
        model,
        loader,
        epochs=epochs,
        optimizer=optimizer,
        loss_fn=in_batch_loss,
        device="cpu",
        description=description,
    )


@torch.no_grad()
def text_to_image_similarity(model: DualEncoder, tokens: Tensor, images: Tensor) -> Tensor:
    """Cosine similarity ``(queries, images)`` of every caption with every image."""
    model.eval()
    return model.embed_texts(tokens) @ model.embed_images(images).T


# Retrieval ---------------------------------------------------------------------------------------


def _check_relevance(similarity: Tensor, relevant: Tensor | None) -> Tensor:
    if similarity.dim() != 2:
        raise ValueError(f"expected a (queries, items) matrix, got {tuple(similarity.shape)}")
    if relevant is None:
        if similarity.shape[0] != similarity.shape[1]:
            raise ValueError(
                "without `relevant`, item i is query i's answer: expected a square matrix, "
                f"got {tuple(similarity.shape)}"
            )
        return torch.eye(similarity.shape[0], dtype=torch.bool)
    relevant = torch.as_tensor(relevant)
    if relevant.shape != similarity.shape or relevant.dtype != torch.bool:
        raise ValueError(
            f"expected a boolean relevance matrix of shape {tuple(similarity.shape)}, "
            f"got {relevant.dtype} of shape {tuple(relevant.shape)}"
        )
    if not relevant.any(dim=1).all():
        raise ValueError("every query needs at least one relevant item")
    return relevant


def first_relevant_rank(similarity: Tensor, relevant: Tensor | None = None) -> Tensor:
    """The rank (1 = top) of each query's best-placed relevant item: int64 ``(queries,)``.

    ``similarity`` ``(queries, items)``, higher = better; ``relevant`` a boolean matrix of the
    same shape, or None for "item i answers query i". The rank is 1 + the number of items
    scored strictly higher than the best relevant one (ties go to the relevant item).
    """
    relevant = _check_relevance(similarity, relevant)
    best = similarity.masked_fill(~relevant, float("-inf")).max(dim=1, keepdim=True).values
    return 1 + (similarity > best).sum(dim=1)


def recall_at_k(similarity: Tensor, k: int, relevant: Tensor | None = None) -> float:
    """The fraction of queries with a relevant item among their ``k`` best-scored items."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return float((first_relevant_rank(similarity, relevant) <= k).float().mean())


def mean_reciprocal_rank(similarity: Tensor, relevant: Tensor | None = None) -> float:
    """The mean over queries of 1 / (rank of the first relevant item), in (0, 1]."""
    return float((1.0 / first_relevant_rank(similarity, relevant).double()).mean())


def relevance_matrix(query_keys: np.ndarray, item_keys: np.ndarray) -> Tensor:
    """``relevant[q, i]``: item ``i`` has exactly query ``q``'s attributes. Keys are rows of
    ``(n, attributes)`` integers, e.g. (digit, weight, slant)."""
    query_keys, item_keys = np.asarray(query_keys), np.asarray(item_keys)
    return torch.from_numpy((query_keys[:, None, :] == item_keys[None, :, :]).all(axis=2))


def keyword_scores(queries: Sequence[str], item_tags: Sequence[str], seed: int = 0) -> Tensor:
    """Keyword search ``(queries, items)``: how many words of the query appear among an item's
    tags (a string of words), plus a random jitter in [0, 0.5) that orders equal matches at
    random, as a search engine with no other signal would."""
    tag_sets = [set(tags.lower().split()) for tags in item_tags]
    matches = torch.tensor(
        [[len(set(query.lower().split()) & tags) for tags in tag_sets] for query in queries],
        dtype=torch.float32,
    )
    generator = torch.Generator().manual_seed(seed)
    return matches + 0.5 * torch.rand(matches.shape, generator=generator)


def top_k_indices(similarity: Tensor, k: int) -> Tensor:
    """The ``k`` best items of each query, best first: ``(queries, k)`` int64."""
    return similarity.topk(k, dim=1).indices


def chunked_top_k(queries: Tensor, items: Tensor, k: int, chunk: int = 1024) -> Tensor:
    """:func:`top_k_indices` of ``queries @ items.T`` without the whole matrix: the items are
    scanned ``chunk`` rows at a time and only the running best ``k`` are kept, so memory is
    ``(queries, k + chunk)`` however large the catalogue. ``(queries, k)`` int64."""
    best_scores = torch.full((len(queries), 0), float("-inf"))
    best_indices = torch.zeros((len(queries), 0), dtype=torch.int64)
    for start in range(0, len(items), chunk):
        scores = queries @ items[start : start + chunk].T
        indices = torch.arange(start, start + len(scores.T)).expand(len(queries), -1)
        best_scores = torch.cat([best_scores, scores], dim=1)
        best_indices = torch.cat([best_indices, indices], dim=1)
        best_scores, order = best_scores.topk(min(k, best_scores.shape[1]), dim=1)
        best_indices = best_indices.gather(1, order)
    return best_indices


# Cross-modal attention and fusion ----------------------------------------------------------------


class CrossModalAttention(nn.Module):
    """Multi-head attention from text tokens ``(batch, L, d_model)`` to image patches
    ``(batch, P, d_image)``: queries from the text, keys and values from the image.

    Parameters ``q_proj`` (``d_model -> d_model``), ``k_proj``, ``v_proj`` (``d_image ->
    d_model``) and ``out_proj``. :meth:`load_from_torch` copies a
    ``torch.nn.MultiheadAttention(d_model, heads, kdim=d_image, vdim=d_image)``.
    """

    def __init__(self, d_model: int, d_image: int, num_heads: int = 1):
        super().__init__()
        if num_heads < 1 or d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.d_model, self.d_image, self.num_heads = d_model, d_image, num_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_image, d_model)
        self.v_proj = nn.Linear(d_image, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, text: Tensor, image: Tensor) -> tuple[Tensor, Tensor]:
        """``(output (batch, L, d_model), weights (batch, L, P) averaged over heads)``; row
        ``[b, t]`` of the weights says where token ``t`` looked in image ``b``."""
        if text.dim() != 3 or text.shape[-1] != self.d_model:
            raise ValueError(
                f"expected text of shape (batch, L, {self.d_model}), got {tuple(text.shape)}"
            )
        if image.dim() != 3 or image.shape[-1] != self.d_image or len(image) != len(text):
            raise ValueError(
                f"expected image patches of shape ({len(text)}, P, {self.d_image}), "
                f"got {tuple(image.shape)}"
            )
        q = split_heads(self.q_proj(text), self.num_heads)
        k = split_heads(self.k_proj(image), self.num_heads)
        v = split_heads(self.v_proj(image), self.num_heads)
        attended, weights = scaled_dot_product_attention(q, k, v)
        return self.out_proj(merge_heads(attended)), weights.mean(dim=1)

    @torch.no_grad()
    def load_from_torch(self, attention: nn.MultiheadAttention) -> CrossModalAttention:
        """Copy the weights of a ``torch.nn.MultiheadAttention`` of the same sizes; return self."""
        if (attention.embed_dim, attention.kdim, attention.num_heads) != (
            self.d_model,
            self.d_image,
            self.num_heads,
        ):
            raise ValueError(
                "expected nn.MultiheadAttention(embed_dim, num_heads, kdim=vdim=d_image) = "
                f"({self.d_model}, {self.num_heads}, {self.d_image}), got "
                f"({attention.embed_dim}, {attention.num_heads}, {attention.kdim})"
            )
        d = self.d_model
        if attention._qkv_same_embed_dim:
            weights = attention.in_proj_weight.split(d)
        else:
            weights = (attention.q_proj_weight, attention.k_proj_weight, attention.v_proj_weight)
        biases = attention.in_proj_bias.split(d)
        for projection, weight, bias in zip(
            (self.q_proj, self.k_proj, self.v_proj), weights, biases, strict=True
        ):
            projection.weight.copy_(weight)
            projection.bias.copy_(bias)
        self.out_proj.weight.copy_(attention.out_proj.weight)
        self.out_proj.bias.copy_(attention.out_proj.bias)
        return self


def image_patches(images: Tensor, patch: int = 2) -> Tensor:
    """Cut images ``(batch, 1, side, side)`` into non-overlapping ``patch x patch`` squares,
    row by row: ``(batch, (side // patch) ** 2, patch * patch)``."""
    if images.dim() != 4 or images.shape[-1] % patch or images.shape[-2] % patch:
        raise ValueError(
            f"expected images (batch, 1, side, side) with side divisible by {patch}, "
            f"got {tuple(images.shape)}"
        )
    return F.unfold(images, kernel_size=patch, stride=patch).transpose(1, 2)


# Reranking with cross-modal attention -----------------------------------------------------------


class CrossAttentionReranker(nn.Module):
    """A fusion scorer of (caption, image) pairs built on :class:`CrossModalAttention`.

    The caption's tokens ``(n, L)`` are embedded to ``(n, L, d_model)``; the image ``(n, 1, side,
    side)`` is cut into ``patch x patch`` patches, each projected to ``d_model`` plus a learned
    position embedding (without it a patch would not know where it is, and slant is about
    where). The tokens attend to the patches, a residual connection and a layer norm follow, the
    non-padding tokens are averaged and an MLP gives one score per pair: ``(n,)``.

    The last layer starts at zero, so an untrained reranker adds 0 to whatever score it refines.
    """

    def __init__(
        self, vocab_size: int, d_model: int = 32, num_heads: int = 4, patch: int = 2, side: int = 8
    ):
        super().__init__()
        if side % patch:
            raise ValueError(f"side={side} is not divisible by patch={patch}")
        self.patch = patch
        self.token_embedding = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.patch_projection = nn.Linear(patch * patch, d_model)
        self.patch_position = nn.Parameter(0.1 * torch.randn((side // patch) ** 2, d_model))
        self.cross_attention = CrossModalAttention(d_model, d_model, num_heads=num_heads)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, 1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, tokens: Tensor, images: Tensor) -> Tensor:
        """Scores ``(n,)`` of ``n`` caption-image pairs: ``tokens`` ``(n, L)``, ``images``
        ``(n, 1, side, side)``."""
        if tokens.dim() != 2 or len(tokens) != len(images):
            raise ValueError(
                "expected tokens (n, L) and images (n, 1, side, side) with the same n, "
                f"got {tuple(tokens.shape)} and {tuple(images.shape)}"
            )
        text = self.token_embedding(tokens)
        patches = self.patch_projection(image_patches(images, self.patch)) + self.patch_position
        attended, _ = self.cross_attention(text, patches)
        states = self.norm(text + attended)
        present = (tokens != 0).unsqueeze(-1).to(states.dtype)
        pooled = (states * present).sum(dim=1) / present.sum(dim=1).clamp(min=1.0)
        return self.head(pooled).squeeze(-1)


def candidate_lists(similarity: Tensor, k: int) -> Tensor:
    """The retriever's shortlist: each query's ``k`` best items, best first, ``(queries, k)``."""
    return top_k_indices(similarity, k)


def rerank_scores(
    reranker: CrossAttentionReranker,
    tokens: Tensor,
    images: Tensor,
    candidates: Tensor,
    prior: Tensor,
) -> Tensor:
    """Scores ``(queries, k)`` of each query's candidates: the retriever's logit ``prior``
    ``(queries, k)`` plus the reranker's score of the (caption, candidate image) pair.

    ``tokens`` ``(queries, L)``; ``images`` the catalogue ``(items, 1, side, side)``;
    ``candidates`` ``(queries, k)`` indices into it. One forward pass per pair: ``queries * k``
    of them, which is why a fusion model reranks a shortlist and does not search a catalogue.
    """
    queries, k = candidates.shape
    pair_tokens = tokens.unsqueeze(1).expand(-1, k, -1).reshape(queries * k, -1)
    pair_images = images[candidates.reshape(-1)]
    return prior + reranker(pair_tokens, pair_images).view(queries, k)


def listwise_loss(scores: Tensor, relevant: Tensor) -> Tensor:
    """Cross-entropy of picking a relevant candidate: ``-log`` of the softmax mass of the
    relevant ones, averaged over queries. ``scores`` and ``relevant`` (bool) ``(queries, k)``;
    every row needs one relevant candidate."""
    if not relevant.any(dim=1).all():
        raise ValueError("every query needs at least one relevant candidate")
    on_relevant = scores.masked_fill(~relevant, float("-inf"))
    return (torch.logsumexp(scores, dim=1) - torch.logsumexp(on_relevant, dim=1)).mean()


def train_reranker(
    reranker: CrossAttentionReranker,
    tokens: Tensor,
    images: Tensor,
    relevant: Tensor,
    prior: Tensor,
    *,
    epochs: int,
    candidates: int = 10,
    pool: int = 50,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    seed: int = 0,
    description: str = "reranker",
) -> list[float]:
    """Train ``reranker`` on the training queries; return the mean loss of each epoch.

    ``tokens`` ``(queries, L)`` are the training captions and ``images`` ``(items, 1, side,
    side)`` the training images; ``relevant`` ``(queries, items)`` bool; ``prior``
    ``(queries, items)`` the retriever's logits, which the reranker refines. For every query and
    epoch, ``candidates - 1`` negatives are drawn at random from the retriever's ``pool`` best
    items, and the query's own image (item ``i`` for query ``i``) completes the list: the
    retriever's own top-k on its training data is nearly always right and would teach little.
    The loss is :func:`listwise_loss` over :func:`rerank_scores`.
    """
    if relevant.shape != prior.shape or len(tokens) != len(prior):
        raise ValueError(
            f"expected relevant and prior of shape ({len(tokens)}, items), "
            f"got {tuple(relevant.shape)} and {tuple(prior.shape)}"
        )
    if not 2 <= candidates <= pool <= prior.shape[1]:
        raise ValueError(
            f"expected 2 <= candidates <= pool <= items, got {candidates}, {pool}, {prior.shape[1]}"
        )
    generator = train.set_seed(seed)
    optimizer = torch.optim.AdamW(reranker.parameters(), lr=learning_rate, weight_decay=1e-4)
    shortlist = top_k_indices(prior, pool)
    queries = torch.arange(len(tokens))
    losses = []
    progress = tqdm(range(epochs), desc=description, disable=not config.live_progress())
    for _ in progress:
        reranker.train()
        total = 0.0
        for batch in torch.randperm(len(tokens), generator=generator).split(batch_size):
            drawn = torch.rand(len(batch), pool, generator=generator).argsort(dim=1)
            negatives = shortlist[batch].gather(1, drawn[:, : candidates - 1])
            chosen = torch.cat([queries[batch, None], negatives], dim=1)
            scores = rerank_scores(
                reranker, tokens[batch], images, chosen, prior[batch[:, None], chosen]
            )
            loss = listwise_loss(scores, relevant[batch[:, None], chosen])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        losses.append(total / len(tokens))
        progress.set_postfix(loss=f"{losses[-1]:.3f}")
    reranker.eval()
    return losses


@torch.no_grad()
def reranked_similarity(
    reranker: CrossAttentionReranker,
    tokens: Tensor,
    images: Tensor,
    prior: Tensor,
    k: int,
) -> Tensor:
    """The retriever's ``prior`` ``(queries, items)`` with each query's top ``k`` rescored by
    :func:`rerank_scores` and kept above every item outside the shortlist, so that recall@j
    for j <= k measures the reranked order and the rest is the retriever's."""
    reranker.eval()
    shortlist = candidate_lists(prior, k)
    rescored = rerank_scores(reranker, tokens, images, shortlist, prior.gather(1, shortlist))
    outside = prior - prior.max(dim=1, keepdim=True).values  # <= 0: below every candidate
    inside = rescored - rescored.min(dim=1, keepdim=True).values + 1.0  # >= 1
    return outside.scatter(1, shortlist, inside)


# Benchmarks --------------------------------------------------------------------------------------


def benchmarks(smoke: bool = False) -> list[bench.Measurement]:
    """Text-to-image search over a catalogue of random unit vectors (dimension 64): the full
    similarity matrix and ``topk`` against the chunked scan of :func:`chunked_top_k`, which
    never holds more than ``(queries, k + chunk)`` scores. Smoke mode: a smaller catalogue,
    fewer repeats."""
    generator = torch.Generator().manual_seed(0)
    catalogue = 20_000 if smoke else 200_000
    queries = F.normalize(torch.randn(64, 64, generator=generator), dim=1)
    items = F.normalize(torch.randn(catalogue, 64, generator=generator), dim=1)
    return bench.compare(
        f"ch08 top-10 search: 64 queries x {catalogue} items",
        {
            "full matrix + topk": lambda: top_k_indices(queries @ items.T, 10),
            "chunked, 4096 items": lambda: chunked_top_k(queries, items, 10, chunk=4096),
        },
        baseline="full matrix + topk",
        repeats=3 if smoke else 7,
        measure_memory=not smoke,
        details={
            "full matrix + topk": f"{64 * catalogue * 4 / 2**20:.0f} MiB of scores",
            "chunked, 4096 items": f"{64 * (4096 + 10) * 4 / 2**20:.1f} MiB of scores",
        },
    )
