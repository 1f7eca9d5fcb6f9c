"""Chapter 0's exercise checks: right answers pass, typical mistakes fail with a useful message.

The reference solutions live here, not in the package, so that a learner reading
``handbook.exercises.ch00`` finds the checks but not the answers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from exercise_harness import (  # noqa: F401  (collected by pytest in this module)
    test_a_stub_reads_as_not_done,
    test_a_typical_mistake_fails_with_a_message_saying_what_was_expected,
    test_the_reference_solution_passes_every_case,
)

from handbook import config
from handbook.exercises import ch00
from handbook.exercises.checks import ExerciseFailed


def stub(*arguments: object) -> object:
    """What the student edition holds before the learner starts."""
    raise NotImplementedError("Exercise 0.x: not written yet")


# Exercise 0.1 ---------------------------------------------------------------------------------


def normalize_images(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(images, dtype=np.float32) / 16).reshape(-1, 1, 8, 8)


def normalize_by_255(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(images, dtype=np.float32) / 255).reshape(-1, 1, 8, 8)


def normalize_by_batch_maximum(images: np.ndarray) -> torch.Tensor:
    scaled = np.asarray(images, dtype=np.float32) / np.float32(np.max(images, initial=1))
    return torch.from_numpy(scaled).reshape(-1, 1, 8, 8)


def normalize_in_float64(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(images, dtype=np.float64) / 16).reshape(-1, 1, 8, 8)


def normalize_without_reshaping(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(images, dtype=np.float32) / 16)


def normalize_transposed(images: np.ndarray) -> torch.Tensor:
    return normalize_images(images).transpose(2, 3)


def normalize_to_numpy(images: np.ndarray) -> np.ndarray:
    return normalize_images(images).numpy()


def normalize_and_clobber_input(images: np.ndarray) -> torch.Tensor:
    result = normalize_images(images)
    images[...] = 0
    return result


# Exercise 0.2 ---------------------------------------------------------------------------------


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    if len(labels) == 0:
        raise ValueError("accuracy of an empty batch is undefined")
    return (logits.argmax(dim=1) == labels).float().mean().item()


def accuracy_as_tensor(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.tensor(accuracy(logits, labels))


def accuracy_of_argmin(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return accuracy(-logits, labels)


def count_of_correct(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return accuracy(logits, labels) * len(labels)


def accuracy_without_empty_check(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(dim=1) == labels).float().mean().item()


# Exercise 0.3 ---------------------------------------------------------------------------------


def confusion_matrix(
    predictions: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    counts = torch.bincount(labels * num_classes + predictions, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def confusion_transposed(
    predictions: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    return confusion_matrix(predictions, labels, num_classes).T


def confusion_sized_by_the_data(
    predictions: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    seen = int(max(predictions.max(), labels.max())) + 1
    return confusion_matrix(predictions, labels, seen)


def confusion_of_floats(
    predictions: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    return confusion_matrix(predictions, labels, num_classes).float()


# Exercise 0.5 ---------------------------------------------------------------------------------


def train_one_epoch(model, loader, optimizer, loss_fn) -> float:
    model.train()
    total, count = 0.0, 0
    for inputs, targets in loader:
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        total += loss.item() * len(targets)
        count += len(targets)
    return total / count


def epoch_clearing_first(model, loader, optimizer, loss_fn) -> float:
    """Right too: zero_grad before the backward pass instead of after the step (fit's order)."""
    model.train()
    losses = []
    for inputs, targets in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item() * len(targets))
    return sum(losses) / len(loader.dataset)


def epoch_in_the_mode_handed_over(model, loader, optimizer, loss_fn) -> float:
    total, count = 0.0, 0
    for inputs, targets in loader:
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        total, count = total + loss.item() * len(targets), count + len(targets)
    return total / count


def epoch_averaging_batch_means(model, loader, optimizer, loss_fn) -> float:
    model.train()
    losses = []
    for inputs, targets in loader:
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return sum(losses) / len(losses)


def epoch_without_zero_grad(model, loader, optimizer, loss_fn) -> float:
    model.train()
    total, count = 0.0, 0
    for inputs, targets in loader:
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        total, count = total + loss.item() * len(targets), count + len(targets)
    return total / count


def epoch_with_cross_entropy_always(model, loader, optimizer, loss_fn) -> float:
    return train_one_epoch(model, loader, optimizer, torch.nn.functional.cross_entropy)


def epoch_returning_a_tensor(model, loader, optimizer, loss_fn) -> torch.Tensor:
    return torch.tensor(train_one_epoch(model, loader, optimizer, loss_fn))


def epoch_reporting_the_loss_after_each_step(model, loader, optimizer, loss_fn) -> float:
    model.train()
    total, count = 0.0, 0
    for inputs, targets in loader:
        loss_fn(model(inputs), targets).backward()
        optimizer.step()
        optimizer.zero_grad()
        with torch.no_grad():
            total += loss_fn(model(inputs), targets).item() * len(targets)
        count += len(targets)
    return total / count


# The checks against them ----------------------------------------------------------------------

CHECKS = {
    "0.1": ch00.check_normalize_images,
    "0.2": ch00.check_accuracy,
    "0.3": ch00.check_confusion_matrix,
    "0.5": ch00.check_train_one_epoch,
}
SOLUTIONS = {
    "0.1": normalize_images,
    "0.2": accuracy,
    "0.3": confusion_matrix,
    "0.5": train_one_epoch,
}


def test_strict_mode_turns_a_wrong_answer_into_an_exception(monkeypatch) -> None:
    monkeypatch.setenv(config.STRICT_EXERCISES_ENV, "1")

    assert ch00.check_accuracy(accuracy).status == "passed"
    with pytest.raises(ExerciseFailed, match="Exercise 0.2 \\(accuracy\\): 1 of 7 checks passed"):
        ch00.check_accuracy(accuracy_as_tensor)


MISTAKES = [
    ("0.1", normalize_by_255, "failed", "(n=1): normalize_images(images) values: 56 of 64 "),
    ("0.1", normalize_by_batch_maximum, "failed", "a faint image (no pixel above 8): "),
    ("0.1", normalize_in_float64, "failed", "dtype: expected torch.float32, got torch.float64"),
    ("0.1", normalize_without_reshaping, "failed", "expected shape (5, 1, 8, 8), got (5, 64)"),
    ("0.1", normalize_transposed, "failed", "the first 10 images of sklearn's load_digits"),
    ("0.1", normalize_to_numpy, "failed", "expected a Tensor, got ndarray"),
    ("0.1", normalize_and_clobber_input, "failed", "the input array is left unchanged: the array"),
    ("0.2", accuracy_as_tensor, "failed", "accuracy(logits, labels): expected a float, got Tensor"),
    ("0.2", accuracy_of_argmin, "failed", "every prediction right: accuracy(logits, labels): "),
    ("0.2", count_of_correct, "failed", "200 samples, 10 classes: accuracy(logits, labels): "),
    ("0.2", accuracy_without_empty_check, "failed", "expected ValueError, but it returned nan"),
    ("0.3", confusion_transposed, "failed", "expected array of shape (2, 2) and dtype int64:\n"),
    ("0.3", confusion_sized_by_the_data, "error", "expected shape (5, 5), got (2, 2)"),
    ("0.3", confusion_of_floats, "failed", "expected an integer dtype (counts of samples)"),
    (
        "0.5",
        epoch_in_the_mode_handed_over,
        "failed",
        "handed over in evaluation mode: train_one_epoch(model, loader, optimizer, loss_fn): the "
        "weights after the epoch differ from the reference's (['0.weight', '0.bias', '3.weight', "
        "'3.bias']); they are what training with dropout switched off gives",
    ),
    ("0.5", epoch_averaging_batch_means, "failed", "the mean of the batch losses; expected"),
    ("0.5", epoch_without_zero_grad, "failed", "added to the gradients of all the batches before"),
    (
        "0.5",
        epoch_with_cross_entropy_always,
        "failed",
        "(label smoothing 0.2): train_one_epoch(model, loader, optimizer, loss_fn): the weights "
        "'weight' after one epoch: 18 of 18 values differ",
    ),
    ("0.5", epoch_returning_a_tensor, "failed", "expected a Python float (the mean loss), got"),
    (
        "0.5",
        epoch_reporting_the_loss_after_each_step,
        "failed",
        "a single batch: train_one_epoch(model, loader, optimizer, loss_fn): the mean loss: "
        "expected",
    ),
]


def test_a_partly_right_answer_counts_the_cases_it_passes() -> None:
    result = ch00.check_accuracy(accuracy_without_empty_check)

    assert (result.status, result.passed, result.total) == ("failed", 6, 7)
    assert result.messages == [
        "an empty batch (0 samples): accuracy of an empty batch: expected ValueError, "
        "but it returned nan"
    ]


def test_a_transposed_confusion_matrix_shows_both_matrices() -> None:
    result = ch00.check_confusion_matrix(confusion_transposed)

    swapped = next(line for line in result.messages if line.startswith("3 samples of class 0"))
    assert swapped == (
        "3 samples of class 0, all predicted as class 1: confusion_matrix(predictions, labels, "
        "num_classes=2): 2 of 4 values differ, the first at index (0, 1): expected 3, got 0\n"
        "expected array of shape (2, 2) and dtype int64:\n[[0 3]\n [0 0]]\n"
        "got tensor of shape (2, 2) and dtype torch.int64:\n[[0 0]\n [3 0]]"
    )


def test_the_checks_leave_the_learners_inputs_to_the_learner() -> None:
    """A function that scribbles on its arguments must not corrupt the following cases."""

    def clobbering_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
        value = accuracy(logits, labels)
        logits.zero_()
        labels.fill_(-1)
        return value

    assert ch00.check_accuracy(clobbering_accuracy).status == "passed"


def test_clearing_the_gradients_before_the_backward_pass_is_right_too() -> None:
    assert ch00.check_train_one_epoch(epoch_clearing_first).status == "passed"


def test_fit_is_the_reference_of_one_epoch() -> None:
    """The check's reference is train.fit for one epoch: the chapter's claim that fit is the
    loop the learner writes rests on it."""
    model, loss = ch00._one_epoch(
        train_one_epoch, ch00._mlp, 24, "adamw", torch.nn.functional.cross_entropy, False
    )
    reference, reference_loss = ch00._one_epoch(
        ch00._reference_epoch, ch00._mlp, 24, "adamw", torch.nn.functional.cross_entropy, False
    )
    assert loss == pytest.approx(reference_loss, abs=1e-7)
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs)


# Exercise 0.4 (predict, then run) -------------------------------------------------------------


def test_the_parameter_prediction_passes_the_true_count_and_near_guesses() -> None:
    true_count = sum(ch00.parameter_breakdown().values())
    assert true_count == ch00.bench.count_parameters(ch00.digits.SmallCNN(side=8))
    for answer in (true_count, 21_000, 22_500, float(true_count)):
        result = ch00.check_parameter_prediction(answer)
        assert (result.id, result.status, result.kind) == ("0.4", "passed", "prediction")
        assert "convolution 2 (32 -> 64 channels, 3x3) 18,496" in result.messages[0]


@pytest.mark.parametrize(
    ("answer", "slip"),
    [
        (59_978, "a linear head on the unpooled feature map"),
        (29_258, "one pooling before the head; there are two"),
        (26_122, "the MLP's count"),
        (4_938, "1x1 kernels"),
    ],
)
def test_a_typical_parameter_slip_fails_and_is_named(answer, slip) -> None:
    result = ch00.check_parameter_prediction(answer)
    assert result.status == "failed"
    assert f"you predicted {answer:,} parameters, this run measured 21,578" in result.messages[0]
    assert slip in result.messages[0], result.messages


def test_an_unrelated_wrong_count_fails_with_the_breakdown_and_no_slip() -> None:
    result = ch00.check_parameter_prediction(1_000_000)
    assert result.status == "failed"
    assert "Your number is" not in result.messages[0]
    assert "linear head 2,570" in result.messages[0]


def test_the_parameter_slips_are_all_outside_the_tolerance() -> None:
    true_count = sum(ch00.parameter_breakdown().values())
    for slip in ch00.parameter_slips():
        assert abs(slip - true_count) > ch00.PREDICTION_TOLERANCE * true_count


@pytest.mark.parametrize("stub_value", [None, ...])
def test_the_parameter_stub_reads_as_not_done(stub_value) -> None:
    assert ch00.check_parameter_prediction(stub_value).status == "not done"


def test_a_parameter_count_written_as_text_fails_saying_so() -> None:
    result = ch00.check_parameter_prediction("21578")
    assert result.status == "failed" and "without quotes" in result.messages[0]
