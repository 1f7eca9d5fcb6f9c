"""Checks for the exercises of chapter 0, handwritten digits.

The chapter works on scikit-learn's digits: 8x8 grey images flattened to 64 pixels whose values
run from 0 (background) to 16 (ink). Each check runs the learner's function on several inputs,
edge cases included, and compares it with a library that does the same job (scikit-learn)
wherever one exists. Call them from the check cells: ``ch00.check_accuracy(accuracy)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn import datasets, metrics, preprocessing

from handbook.exercises.checks import (
    Case,
    ExerciseResult,
    check_exercise,
    expect,
    expect_close,
    expect_equal,
    expect_raises,
    expect_shape,
    expect_type,
)

IMAGE_SIDE = 8
PIXELS = IMAGE_SIDE * IMAGE_SIDE
MAX_PIXEL_VALUE = 16


# Exercise 0.1 ---------------------------------------------------------------------------------


def check_normalize_images(
    normalize_images: Callable[[np.ndarray], torch.Tensor],
) -> ExerciseResult:
    """Exercise 0.1: ``normalize_images(images)``.

    Expects a numpy array ``(n, 64)`` of pixel values 0..16 (integers or floats) to become a
    float32 tensor ``(n, 1, 8, 8)`` (one channel, image rows then columns) with values in
    [0, 1], without modifying the input; n = 1 and n = 0 included.
    """
    rng = np.random.default_rng(0)
    random_images = rng.integers(0, MAX_PIXEL_VALUE + 1, size=(5, PIXELS))
    black_and_white = np.stack([np.zeros(PIXELS), np.full(PIXELS, MAX_PIXEL_VALUE)])
    cases = [
        _normalize_case(normalize_images, "5 random images with integer pixels", random_images),
        _normalize_case(
            normalize_images,
            "the first 10 images of sklearn's load_digits (float64 pixels)",
            datasets.load_digits().data[:10],
        ),
        _normalize_case(normalize_images, "a single image (n=1)", random_images[:1]),
        _normalize_case(normalize_images, "an all-0 image and an all-16 image", black_and_white),
        _normalize_case(
            normalize_images, "a faint image (no pixel above 8)", random_images[:1] // 2
        ),
        Case(
            "an empty batch (n=0)",
            lambda: _expect_image_tensor(
                normalize_images(np.zeros((0, PIXELS))), 0, "normalize_images(images)"
            ),
        ),
        Case(
            "the input array is left unchanged",
            lambda: _expect_input_unchanged(normalize_images, random_images.astype(np.float64)),
        ),
    ]
    return check_exercise("0.1", "normalize the images", cases)


def _reference_normalized(images: np.ndarray) -> np.ndarray:
    scaler = preprocessing.MinMaxScaler().fit(
        np.array([np.zeros(PIXELS), np.full(PIXELS, MAX_PIXEL_VALUE)])
    )
    return scaler.transform(images).reshape(-1, 1, IMAGE_SIDE, IMAGE_SIDE)


def _normalize_case(
    normalize_images: Callable[[np.ndarray], torch.Tensor], description: str, images: np.ndarray
) -> Case:
    def run() -> None:
        result = normalize_images(images.copy())
        what = "normalize_images(images)"
        _expect_image_tensor(result, len(images), what)
        expect_close(result, _reference_normalized(images), f"{what} values", atol=1e-6)

    return Case(description, run)


def _expect_image_tensor(result: object, count: int, what: str) -> None:
    expect_type(result, torch.Tensor, what)
    expect_shape(result, (count, 1, IMAGE_SIDE, IMAGE_SIDE), what)
    expect_equal(result.dtype, torch.float32, f"{what} dtype")


def _expect_input_unchanged(
    normalize_images: Callable[[np.ndarray], torch.Tensor], images: np.ndarray
) -> None:
    original = images.copy()
    normalize_images(images)
    expect(
        np.array_equal(images, original),
        "the array passed to normalize_images was modified; expected it to keep its pixel "
        "values 0..16 (work on a copy or build a new tensor)",
    )


# Exercise 0.2 ---------------------------------------------------------------------------------


def check_accuracy(accuracy: Callable[[torch.Tensor, torch.Tensor], float]) -> ExerciseResult:
    """Exercise 0.2: ``accuracy(logits, labels)``.

    ``logits`` is a float tensor ``(n, num_classes)``, ``labels`` an int64 tensor ``(n,)``; the
    answer is a Python float, the fraction of rows whose highest logit is at the label's index,
    compared with ``sklearn.metrics.accuracy_score``. An empty batch must raise ValueError.
    """
    cases = [
        _accuracy_case(accuracy, "10 samples, 3 classes", *_random_logits(10, 3, seed=1)),
        _accuracy_case(accuracy, "200 samples, 10 classes", *_random_logits(200, 10, seed=2)),
        _accuracy_case(accuracy, "a single sample", *_random_logits(1, 5, seed=3)),
        _accuracy_case(accuracy, "2 classes", *_random_logits(30, 2, seed=4)),
        _accuracy_case(accuracy, "every prediction right", *_logits_favouring(8, 4, shift=0)),
        _accuracy_case(accuracy, "every prediction wrong", *_logits_favouring(8, 4, shift=1)),
        Case(
            "an empty batch (0 samples)",
            lambda: expect_raises(
                lambda: accuracy(torch.zeros(0, 10), torch.zeros(0, dtype=torch.int64)),
                ValueError,
                "accuracy of an empty batch",
            ),
        ),
    ]
    return check_exercise("0.2", "accuracy", cases)


def _random_logits(count: int, classes: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(count, classes, generator=generator)
    labels = torch.randint(0, classes, (count,), generator=generator)
    return logits, labels


def _logits_favouring(count: int, classes: int, *, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose top class is ``label + shift`` (mod classes): all right when shift is 0."""
    logits, labels = _random_logits(count, classes, seed=5)
    favoured = (labels + shift) % classes
    logits[torch.arange(count), favoured] += 10.0
    return logits, labels


def _accuracy_case(
    accuracy: Callable[[torch.Tensor, torch.Tensor], float],
    description: str,
    logits: torch.Tensor,
    labels: torch.Tensor,
) -> Case:
    def run() -> None:
        result = accuracy(logits.clone(), labels.clone())
        what = "accuracy(logits, labels)"
        expect_type(result, float, what)
        expected = metrics.accuracy_score(labels.numpy(), logits.numpy().argmax(axis=1))
        expect_close(result, float(expected), what, atol=1e-6)

    return Case(description, run)


# Exercise 0.3 ---------------------------------------------------------------------------------


def check_confusion_matrix(
    confusion_matrix: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
) -> ExerciseResult:
    """Exercise 0.3: ``confusion_matrix(predictions, labels, num_classes)``.

    ``predictions`` and ``labels`` are int64 tensors ``(n,)`` of class indices; the answer is an
    integer tensor ``(num_classes, num_classes)`` counting samples by true label (rows) and
    prediction (columns), compared with ``sklearn.metrics.confusion_matrix`` -- including
    classes that never occur and an empty input (all zeros).
    """
    rng = np.random.default_rng(6)
    cases = [
        _confusion_case(confusion_matrix, "20 samples, 3 classes", *_random_pair(rng, 20, 3), 3),
        _confusion_case(
            confusion_matrix, "200 samples, 10 classes", *_random_pair(rng, 200, 10), 10
        ),
        _confusion_case(
            confusion_matrix,
            "3 samples of class 0, all predicted as class 1",
            np.array([1, 1, 1]),
            np.array([0, 0, 0]),
            2,
        ),
        _confusion_case(
            confusion_matrix,
            "5 classes of which only 0 and 1 occur",
            *_random_pair(rng, 12, 2),
            5,
        ),
        _confusion_case(
            confusion_matrix,
            "class 3 is predicted but is never a true label",
            np.array([3, 0, 3, 2, 1]),
            np.array([0, 0, 1, 2, 1]),
            4,
        ),
        _confusion_case(confusion_matrix, "a single sample", np.array([2]), np.array([2]), 3),
        _confusion_case(
            confusion_matrix, "no samples", np.zeros(0, np.int64), np.zeros(0, np.int64), 4
        ),
    ]
    return check_exercise("0.3", "confusion matrix", cases)


def _random_pair(
    rng: np.random.Generator, count: int, classes: int
) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, classes, size=count), rng.integers(0, classes, size=count)


def _reference_confusion(
    predictions: np.ndarray, labels: np.ndarray, num_classes: int
) -> np.ndarray:
    if len(labels) == 0:  # scikit-learn refuses empty input; nothing counted is all zeros
        return np.zeros((num_classes, num_classes), dtype=np.int64)
    return metrics.confusion_matrix(labels, predictions, labels=range(num_classes))


def _confusion_case(
    confusion_matrix: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
    description: str,
    predictions: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
) -> Case:
    def run() -> None:
        result = confusion_matrix(
            torch.as_tensor(predictions, dtype=torch.int64),
            torch.as_tensor(labels, dtype=torch.int64),
            num_classes,
        )
        what = f"confusion_matrix(predictions, labels, num_classes={num_classes})"
        expect_type(result, torch.Tensor, what)
        expect(
            not (result.dtype.is_floating_point or result.dtype.is_complex)
            and result.dtype != torch.bool,
            f"{what}: expected an integer dtype (counts of samples), got {result.dtype}",
        )
        expect_equal(result, _reference_confusion(predictions, labels, num_classes), what)

    return Case(description, run)
