"""Checks for the exercises of chapter 8, multimodal learning.

Each check runs the learner's function on several inputs, edge cases included, and compares it
with ``torch.nn.functional`` (cosine similarity, cross-entropy), scikit-learn
(``top_k_accuracy_score``) or the tested reference in :mod:`handbook.multimodal`. Exercise 8.4
is a prediction, checked against the exact value that :func:`chance_recall_at_k` computes and
named when it matches a typical slip; 8.5 is an open question, submitted with its rubric. Call
them from the check cells: ``ch08.check_cosine_similarity_matrix(cosine_similarity_matrix)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from handbook.exercises.checks import (
    PREDICTION,
    Case,
    ExerciseResult,
    check_exercise,
    check_number,
    check_open_answer,
    expect,
    expect_close,
    typical_slip,
)
from handbook.i18n import N_, _

# Exercise 8.1 ---------------------------------------------------------------------------------


def check_cosine_similarity_matrix(
    cosine_similarity_matrix: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> ExerciseResult:
    """Exercise 8.1: ``cosine_similarity_matrix(images, texts)``: ``(n, d)`` and ``(m, d)``
    float tensors in, the ``(n, m)`` tensor of cosine similarities out, compared with
    ``F.cosine_similarity``."""
    generator = torch.Generator().manual_seed(81)

    def case(description: str, images: torch.Tensor, texts: torch.Tensor) -> Case:
        def run() -> None:
            before = (images.clone(), texts.clone())
            result = cosine_similarity_matrix(images, texts)
            expected = F.cosine_similarity(images[:, None, :], texts[None, :, :], dim=2)
            what = "cosine_similarity_matrix(images, texts)"
            expect(
                isinstance(result, torch.Tensor),
                _("{what}: expected a torch.Tensor").format(what=what),
            )
            expect_close(result, expected, what, atol=1e-5)
            expect(
                torch.equal(images, before[0]) and torch.equal(texts, before[1]),
                _("the tensors passed in were modified; expected them unchanged"),
            )

        return Case(description, run)

    cases = [
        case(_("unit vectors along the axes"), torch.eye(3), torch.eye(3)[[2, 0]]),
        case(
            _("vectors of very different lengths"),
            torch.tensor([[3.0, 4.0], [0.1, 0.0]]),
            torch.tensor([[10.0, 0.0], [0.0, -2.0], [1.0, 1.0]]),
        ),
        case(
            _("3 images and 5 captions in 16 dimensions"),
            torch.randn(3, 16, generator=generator),
            torch.randn(5, 16, generator=generator),
        ),
        case(
            _("one image, many captions"),
            torch.randn(1, 8, generator=generator),
            torch.randn(40, 8, generator=generator) * 7,
        ),
        case(
            _("large values (no overflow expected)"),
            torch.randn(4, 6, generator=generator) * 1e4,
            torch.randn(4, 6, generator=generator) * 1e4,
        ),
    ]
    return check_exercise("8.1", _("cosine-similarity matrix"), cases)


# Exercise 8.2 ---------------------------------------------------------------------------------


def _reference_clip_loss(images: torch.Tensor, texts: torch.Tensor, temperature: float):
    logits = F.normalize(images, dim=1) @ F.normalize(texts, dim=1).T / temperature
    targets = torch.arange(len(images))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def check_clip_loss(
    clip_loss: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor],
) -> ExerciseResult:
    """Exercise 8.2: ``clip_loss(image_embeddings, text_embeddings, temperature)``: two
    ``(batch, d)`` tensors whose row i belong together, and a positive temperature; a scalar
    tensor out, the symmetric InfoNCE loss, compared with ``F.cross_entropy`` both ways and its
    gradient checked."""
    generator = torch.Generator().manual_seed(82)

    def case(description: str, images: torch.Tensor, texts: torch.Tensor, temperature: float):
        def run() -> None:
            result = clip_loss(images, texts, temperature)
            what = f"clip_loss(images, texts, temperature={temperature})"
            expect(
                isinstance(result, torch.Tensor) and result.dim() == 0,
                _("{what}: expected a scalar tensor, got {type}").format(
                    what=what, type=type(result).__name__
                )
                + (
                    _(" of shape {shape}").format(shape=tuple(result.shape))
                    if isinstance(result, torch.Tensor)
                    else ""
                ),
            )
            expected = _reference_clip_loss(images, texts, temperature)
            expect_close(result.detach(), expected, what, atol=1e-4, rtol=1e-4)

        return Case(description, run)

    def gradient_case() -> None:
        images = torch.randn(5, 4, generator=generator)
        texts = torch.randn(5, 4, generator=generator)
        ours = images.clone().requires_grad_(True)
        theirs = images.clone().requires_grad_(True)
        result = clip_loss(ours, texts, 0.2)
        expect(result.requires_grad, _("the loss must keep its gradient (do not detach it)"))
        result.backward()
        _reference_clip_loss(theirs, texts, 0.2).backward()
        expect_close(
            ours.grad, theirs.grad, _("the gradient with respect to the images"), atol=1e-5
        )

    cases = [
        case(
            _("a batch of 4 in 8 dimensions, temperature 0.1"),
            torch.randn(4, 8, generator=generator),
            torch.randn(4, 8, generator=generator),
            0.1,
        ),
        case(
            _("image i confused with caption i+1 but not the other way round"),
            torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
            torch.eye(3),
            0.5,
        ),
        case(
            _("embeddings of different lengths (the loss uses directions only)"),
            torch.randn(6, 5, generator=generator) * 30,
            torch.randn(6, 5, generator=generator) * 0.01,
            0.07,
        ),
        case(
            _("a batch of one (no negatives)"),
            torch.randn(1, 4, generator=generator),
            torch.randn(1, 4, generator=generator),
            0.1,
        ),
        case(
            _("temperature 1 on a batch of 32"),
            torch.randn(32, 16, generator=generator),
            torch.randn(32, 16, generator=generator),
            1.0,
        ),
        Case(_("the gradient matches the reference"), gradient_case),
    ]
    return check_exercise("8.2", _("symmetric InfoNCE loss"), cases)


# Exercise 8.3 ---------------------------------------------------------------------------------


def check_recall_at_k(
    recall_at_k: Callable[[torch.Tensor, int], float],
) -> ExerciseResult:
    """Exercise 8.3: ``recall_at_k(similarity, k)``: a ``(queries, items)`` tensor whose item i
    is query i's answer; a float, the fraction of queries whose answer is among their k
    best-scored items, compared with ``sklearn.metrics.top_k_accuracy_score``."""
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import top_k_accuracy_score

    rng = np.random.default_rng(83)

    def case(description: str, similarity: np.ndarray, k: int) -> Case:
        def run() -> None:
            tensor = torch.from_numpy(similarity.astype(np.float32))
            result = recall_at_k(tensor.clone(), k)
            what = f"recall_at_k(similarity, k={k})"
            expect(
                isinstance(result, (float, np.floating)),
                _("{what}: expected a float, got {type}").format(
                    what=what, type=type(result).__name__
                ),
            )
            size = len(similarity)
            with warnings.catch_warnings():  # k = size is a legitimate edge case here
                warnings.simplefilter("ignore", UndefinedMetricWarning)
                expected = top_k_accuracy_score(
                    np.arange(size), similarity, k=k, labels=np.arange(size)
                )
            expect(
                expected == 0 or not np.isclose(result, 100 * expected),
                _(
                    "{what}: expected a fraction ({expected:.4g}), got {result:.4g} (a percentage?)"
                ).format(what=what, expected=expected, result=result),
            )
            expect_close(result, expected, what, atol=1e-9)

        return Case(description, run)

    hits_only_on_rows = np.eye(4) + 0.5 * np.array(
        [[0, 0, 0, 0], [2, 0, 0, 0], [3, 3, 0, 0], [0, 0, 0, 0]]
    )
    cases = [
        case(_("a perfect ranking, k=1"), np.eye(5) + 0.01 * rng.random((5, 5)), 1),
        case(_("a random 20 x 20 matrix, k=1"), rng.normal(size=(20, 20)), 1),
        case(_("a random 20 x 20 matrix, k=5"), rng.normal(size=(20, 20)), 5),
        case(
            _("answers ranked second or third, k=1 and the rows differ from the columns"),
            hits_only_on_rows,
            1,
        ),
        case(_("the same, k=2"), hits_only_on_rows, 2),
        case(_("k equal to the number of items"), rng.normal(size=(6, 6)), 6),
    ]
    return check_exercise("8.3", "recall@k", cases)


# Exercise 8.4 ---------------------------------------------------------------------------------

#: Exercise 8.4's catalogue: 360 images, 9 of them relevant to the query, the top 10 read.
PREDICTION_ITEMS, PREDICTION_RELEVANT, PREDICTION_K = 360, 9, 10
PREDICTION_TOLERANCE = 0.01


def chance_recall_at_k(items: int, relevant: int, k: int) -> float:
    """The exact recall@k of a random ranking: the probability that ``k`` items drawn without
    replacement from ``items`` include at least one of the ``relevant`` ones,
    ``1 - C(items - relevant, k) / C(items, k)``."""
    if not 0 <= relevant <= items or not 0 <= k <= items:
        raise ValueError(
            f"expected 0 <= relevant, k <= items, got items={items}, relevant={relevant}, k={k}"
        )
    return 1.0 - math.comb(items - relevant, k) / math.comb(items, k)


def chance_recall_slips() -> dict[float, str]:
    """Exercise 8.4's typical wrong answers (value -> what it corresponds to)."""
    n, r, k = PREDICTION_ITEMS, PREDICTION_RELEVANT, PREDICTION_K
    return {
        k * r / n: _(
            "k r / n = {k} x {r} / {n}, the expected number of relevant items in the top {k}: "
            "it adds the chances of overlapping events (two relevant items in the top 10 are "
            "counted twice), so it overestimates the chance of at least one"
        ).format(k=k, r=r, n=n),
        r / n: _("recall@1 ({r} / {n}): the top {k} gives {k} chances, not one").format(
            k=k, r=r, n=n
        ),
        k / n: _(
            "k / n, recall@{k} with one relevant item per query; here {r} are relevant"
        ).format(k=k, r=r),
        100 * chance_recall_at_k(n, r, k): _(
            "the recall as a percentage; write it as a fraction (0.5 = 50%)"
        ),
    }


def check_chance_recall_prediction(prediction: object) -> ExerciseResult:
    """Exercise 8.4 (predict, then run): the recall@10 of a random ranking of
    :data:`PREDICTION_ITEMS` images of which :data:`PREDICTION_RELEVANT` are relevant, the
    "chance" row of section 3. The true value is :func:`chance_recall_at_k`, exact; the
    tolerance is 0.01."""
    n, r, k = PREDICTION_ITEMS, PREDICTION_RELEVANT, PREDICTION_K
    expected = chance_recall_at_k(n, r, k)
    missed = math.comb(n - r, k) / math.comb(n, k)
    explain = _(
        "A random top {k} misses every relevant image with probability C({others}, {k}) / "
        "C({n}, {k}) = ({others}/{n}) x ({others_less}/{n_less}) x ... ({k} factors) = "
        "{missed:.3f}, so recall@{k} = 1 - {missed:.3f} = {expected:.3f}: a little under "
        "k r / n = {union_bound:.3f}, because the top {k} sometimes holds two relevant images."
    ).format(
        k=k,
        n=n,
        others=n - r,
        others_less=n - r - 1,
        n_less=n - 1,
        missed=missed,
        expected=expected,
        union_bound=k * r / n,
    )
    return check_number(
        "8.4",
        _("the recall@10 of chance"),
        prediction,
        expected,
        tolerance=PREDICTION_TOLERANCE,
        kind=PREDICTION,
        explain=typical_slip(
            prediction,
            expected,
            chance_recall_slips(),
            tolerance=PREDICTION_TOLERANCE,
            slip_tolerance=0.005,
        )
        + explain,
    )


# Exercise 8.5 ---------------------------------------------------------------------------------

#: What an instructor reads exercise 8.5's answer against (English; each criterion is
#: translated where the check prints it).
RERANKER_RUBRIC = (
    N_(
        "Uses the chapter's own numbers: the dual encoder's recall@1, the reranked recall@1, the "
        "recall@1 of the cross-attention term alone, and a pick at random in the same shortlist."
    ),
    N_(
        "Explains that the reranker was trained as a correction added to the dual encoder's "
        "logit (a residual starting at zero), so its term alone was never asked to rank on its "
        "own."
    ),
    N_(
        "Says what the reranker can see that the dual encoder cannot (each word reads the "
        "image's patches, with their positions: where the ink is, hence slant) and what it costs "
        "(one forward pass per caption-image pair, so it only reranks a shortlist)."
    ),
    N_(
        "Proposes a measurement that would test the explanation (e.g. train the term alone with "
        "the same epochs, vary the shortlist size k, look at the attention weights of 'left' or "
        "'bold', or repeat over seeds) and says what outcome would refute it."
    ),
)


def check_reranker_investigation(answer: object) -> ExerciseResult:
    """Exercise 8.5 (open investigation): what the reranker learned, read from section 5's
    table (the dual encoder alone, a random pick in the shortlist, the cross-attention term
    alone, their sum). Submitted with :data:`RERANKER_RUBRIC`; at least 40 words."""
    return check_open_answer(
        "8.5",
        _("what the reranker adds"),
        answer,
        rubric=[_(criterion) for criterion in RERANKER_RUBRIC],
        min_words=40,
    )
