"""Chapter 8's exercise checks: right answers pass, typical mistakes fail with a useful message.

The reference solutions live here, not in the package, so that a learner reading
``handbook.exercises.ch08`` finds the checks but not the answers.
"""

from __future__ import annotations

import pytest
import torch
from exercise_harness import (  # noqa: F401  (collected by pytest in this module)
    test_a_stub_reads_as_not_done,
    test_a_typical_mistake_fails_with_a_message_saying_what_was_expected,
    test_the_reference_solution_passes_every_case,
)
from torch.nn import functional as F

from handbook import config
from handbook.exercises import ch08
from handbook.exercises.checks import ExerciseFailed


def stub(*arguments: object) -> object:
    """What the student edition holds before the learner starts."""
    raise NotImplementedError("Exercise 8.x: not written yet")


# Exercise 8.1 ---------------------------------------------------------------------------------


def cosine_similarity_matrix(images, texts):
    return (images / images.norm(dim=1, keepdim=True)) @ (texts / texts.norm(dim=1, keepdim=True)).T


def cosine_without_normalizing(images, texts):
    return images @ texts.T


def cosine_normalizing_the_wrong_axis(images, texts):
    return F.normalize(images, dim=0) @ F.normalize(texts, dim=0).T


def cosine_normalizing_in_place(images, texts):
    images /= images.norm(dim=1, keepdim=True)
    texts /= texts.norm(dim=1, keepdim=True)
    return images @ texts.T


# Exercise 8.2 ---------------------------------------------------------------------------------


def clip_loss(images, texts, temperature):
    logits = F.normalize(images, dim=1) @ F.normalize(texts, dim=1).T / temperature
    targets = torch.arange(len(logits))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def clip_loss_one_direction(images, texts, temperature):
    logits = F.normalize(images, dim=1) @ F.normalize(texts, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(logits)))


def clip_loss_times_temperature(images, texts, temperature):
    logits = F.normalize(images, dim=1) @ F.normalize(texts, dim=1).T * temperature
    targets = torch.arange(len(logits))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def clip_loss_unnormalized(images, texts, temperature):
    logits = images @ texts.T / temperature
    targets = torch.arange(len(logits))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def clip_loss_detached(images, texts, temperature):
    return clip_loss(images, texts, temperature).detach()


# Exercise 8.3 ---------------------------------------------------------------------------------


def recall_at_k(similarity, k):
    top = similarity.topk(k, dim=1).indices
    return float((top == torch.arange(len(similarity))[:, None]).any(dim=1).float().mean())


def recall_by_columns(similarity, k):
    return recall_at_k(similarity.T, k)


def recall_in_percent(similarity, k):
    return 100 * recall_at_k(similarity, k)


def recall_of_the_lowest_scores(similarity, k):
    return recall_at_k(-similarity, k)


def recall_as_tensor(similarity, k):
    top = similarity.topk(k, dim=1).indices
    return (top == torch.arange(len(similarity))[:, None]).any(dim=1).float().mean()


# The checks against them ----------------------------------------------------------------------

CHECKS = {
    "8.1": ch08.check_cosine_similarity_matrix,
    "8.2": ch08.check_clip_loss,
    "8.3": ch08.check_recall_at_k,
}
SOLUTIONS = {"8.1": cosine_similarity_matrix, "8.2": clip_loss, "8.3": recall_at_k}
MIN_CASES = 5

MISTAKES = [
    ("8.1", cosine_without_normalizing, "failed", "vectors of very different lengths: "),
    ("8.1", cosine_normalizing_the_wrong_axis, "failed", "3 images and 5 captions in 16 dim"),
    ("8.1", cosine_normalizing_in_place, "failed", "the tensors passed in were modified"),
    ("8.2", clip_loss_one_direction, "failed", "image i confused with caption i+1 but not"),
    ("8.2", clip_loss_times_temperature, "failed", "a batch of 4 in 8 dimensions, temperatur"),
    ("8.2", clip_loss_unnormalized, "failed", "embeddings of different lengths"),
    ("8.2", clip_loss_detached, "failed", "the loss must keep its gradient"),
    ("8.3", recall_by_columns, "failed", "the rows differ from the columns"),
    ("8.3", recall_in_percent, "failed", "(a percentage?)"),
    ("8.3", recall_of_the_lowest_scores, "failed", "a perfect ranking, k=1: "),
    ("8.3", recall_as_tensor, "failed", "expected a float, got Tensor"),
]


def test_strict_mode_turns_a_wrong_answer_into_an_exception(monkeypatch) -> None:
    monkeypatch.setenv(config.STRICT_EXERCISES_ENV, "1")

    assert ch08.check_recall_at_k(recall_at_k).status == "passed"
    with pytest.raises(ExerciseFailed, match=r"Exercise 8.3 \(recall@k\)"):
        ch08.check_recall_at_k(recall_in_percent)


# Exercise 8.4 (predict, then run) -------------------------------------------------------------


def test_chance_recall_is_the_hypergeometric_miss_and_matches_a_simulation() -> None:
    exact = ch08.chance_recall_at_k(360, 9, 10)
    generator = torch.Generator().manual_seed(0)
    ranks = torch.rand(20_000, 360, generator=generator).argsort(dim=1)[:, :10]
    simulated = (ranks < 9).any(dim=1).float().mean().item()
    assert abs(simulated - exact) < 0.01
    assert ch08.chance_recall_at_k(360, 1, 1) == pytest.approx(1 / 360)
    assert ch08.chance_recall_at_k(10, 10, 1) == 1.0
    with pytest.raises(ValueError, match="relevant"):
        ch08.chance_recall_at_k(5, 6, 1)


def test_the_chance_prediction_passes_within_its_tolerance() -> None:
    result = ch08.check_chance_recall_prediction(0.23)
    assert (result.id, result.status, result.kind) == ("8.4", "passed", "prediction")
    assert "C(351, 10) / C(360, 10)" in result.messages[0]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (0.25, "it adds the chances of overlapping events"),
        (0.025, "recall@1 (9 / 360)"),
        (22.6, "write it as a fraction"),
        (0.5, "you predicted 0.5, this run measured 0.2262"),
    ],
)
def test_a_wrong_chance_prediction_fails_saying_why(answer, message) -> None:
    result = ch08.check_chance_recall_prediction(answer)
    assert result.status == "failed"
    assert message in result.messages[0], result.messages


@pytest.mark.parametrize("stub_value", [None, ...])
def test_the_chance_prediction_stub_reads_as_not_done(stub_value) -> None:
    assert ch08.check_chance_recall_prediction(stub_value).status == "not done"


def test_a_text_is_not_a_chance_prediction() -> None:
    assert ch08.check_chance_recall_prediction("about a quarter").status == "failed"


# Exercise 8.5 (open investigation) ------------------------------------------------------------


def test_the_reranker_investigation_is_submitted_with_its_rubric(capsys) -> None:
    answer = " ".join(["The cross-attention term was trained as a correction."] * 10)
    result = ch08.check_reranker_investigation(answer)
    assert (result.id, result.status, result.kind) == ("8.5", "submitted", "open")
    assert "a residual starting at zero" in capsys.readouterr().out


@pytest.mark.parametrize("stub_value", ["", "too short to be an answer", None])
def test_an_empty_or_short_investigation_reads_as_not_done(stub_value) -> None:
    assert ch08.check_reranker_investigation(stub_value).status == "not done"
