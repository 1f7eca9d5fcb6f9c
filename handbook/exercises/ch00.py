"""Checks for the exercises of chapter 0, handwritten digits.

The chapter works on scikit-learn's digits: 8x8 grey images flattened to 64 pixels whose values
run from 0 (background) to 16 (ink). Each check runs the learner's function on several inputs,
edge cases included, and compares it with a library that does the same job (scikit-learn)
wherever one exists. Exercise 0.4 is a prediction: :func:`check_parameter_prediction` counts
``SmallCNN``'s parameters itself and names the typical slip a wrong count matches. Exercise 0.5's
reference is :func:`handbook.train.fit` itself, run for one epoch from the same weights, the same
batches and the same dropout draws. Call them from the check cells:
``ch00.check_accuracy(accuracy)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn import datasets, metrics, preprocessing
from torch import nn

from handbook import bench, digits, train
from handbook.exercises.checks import (
    PREDICTION,
    Case,
    ExerciseResult,
    check_exercise,
    check_number,
    describe,
    expect,
    expect_close,
    expect_equal,
    expect_raises,
    expect_shape,
    expect_type,
)
from handbook.i18n import _

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
        _normalize_case(normalize_images, _("5 random images with integer pixels"), random_images),
        _normalize_case(
            normalize_images,
            _("the first 10 images of sklearn's load_digits (float64 pixels)"),
            datasets.load_digits().data[:10],
        ),
        _normalize_case(normalize_images, _("a single image (n=1)"), random_images[:1]),
        _normalize_case(normalize_images, _("an all-0 image and an all-16 image"), black_and_white),
        _normalize_case(
            normalize_images, _("a faint image (no pixel above 8)"), random_images[:1] // 2
        ),
        Case(
            _("an empty batch (n=0)"),
            lambda: _expect_image_tensor(
                normalize_images(np.zeros((0, PIXELS))), 0, "normalize_images(images)"
            ),
        ),
        Case(
            _("the input array is left unchanged"),
            lambda: _expect_input_unchanged(normalize_images, random_images.astype(np.float64)),
        ),
    ]
    return check_exercise("0.1", _("normalize the images"), cases)


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
        expect_close(
            result, _reference_normalized(images), _("{what} values").format(what=what), atol=1e-6
        )

    return Case(description, run)


def _expect_image_tensor(result: object, count: int, what: str) -> None:
    expect_type(result, torch.Tensor, what)
    expect_shape(result, (count, 1, IMAGE_SIDE, IMAGE_SIDE), what)
    expect_equal(result.dtype, torch.float32, _("{what} dtype").format(what=what))


def _expect_input_unchanged(
    normalize_images: Callable[[np.ndarray], torch.Tensor], images: np.ndarray
) -> None:
    original = images.copy()
    normalize_images(images)
    expect(
        np.array_equal(images, original),
        _(
            "the array passed to normalize_images was modified; expected it to keep its pixel "
            "values 0..16 (work on a copy or build a new tensor)"
        ),
    )


# Exercise 0.2 ---------------------------------------------------------------------------------


def check_accuracy(accuracy: Callable[[torch.Tensor, torch.Tensor], float]) -> ExerciseResult:
    """Exercise 0.2: ``accuracy(logits, labels)``.

    ``logits`` is a float tensor ``(n, num_classes)``, ``labels`` an int64 tensor ``(n,)``; the
    answer is a Python float, the fraction of rows whose highest logit is at the label's index,
    compared with ``sklearn.metrics.accuracy_score``. An empty batch must raise ValueError.
    """
    cases = [
        _accuracy_case(accuracy, _("10 samples, 3 classes"), *_random_logits(10, 3, seed=1)),
        _accuracy_case(accuracy, _("200 samples, 10 classes"), *_random_logits(200, 10, seed=2)),
        _accuracy_case(accuracy, _("a single sample"), *_random_logits(1, 5, seed=3)),
        _accuracy_case(accuracy, _("2 classes"), *_random_logits(30, 2, seed=4)),
        _accuracy_case(accuracy, _("every prediction right"), *_logits_favouring(8, 4, shift=0)),
        _accuracy_case(accuracy, _("every prediction wrong"), *_logits_favouring(8, 4, shift=1)),
        Case(
            _("an empty batch (0 samples)"),
            lambda: expect_raises(
                lambda: accuracy(torch.zeros(0, 10), torch.zeros(0, dtype=torch.int64)),
                ValueError,
                _("accuracy of an empty batch"),
            ),
        ),
    ]
    return check_exercise("0.2", _("accuracy"), cases)


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
        _confusion_case(confusion_matrix, _("20 samples, 3 classes"), *_random_pair(rng, 20, 3), 3),
        _confusion_case(
            confusion_matrix, _("200 samples, 10 classes"), *_random_pair(rng, 200, 10), 10
        ),
        _confusion_case(
            confusion_matrix,
            _("3 samples of class 0, all predicted as class 1"),
            np.array([1, 1, 1]),
            np.array([0, 0, 0]),
            2,
        ),
        _confusion_case(
            confusion_matrix,
            _("5 classes of which only 0 and 1 occur"),
            *_random_pair(rng, 12, 2),
            5,
        ),
        _confusion_case(
            confusion_matrix,
            _("class 3 is predicted but is never a true label"),
            np.array([3, 0, 3, 2, 1]),
            np.array([0, 0, 1, 2, 1]),
            4,
        ),
        _confusion_case(confusion_matrix, _("a single sample"), np.array([2]), np.array([2]), 3),
        _confusion_case(
            confusion_matrix, _("no samples"), np.zeros(0, np.int64), np.zeros(0, np.int64), 4
        ),
    ]
    return check_exercise("0.3", _("confusion matrix"), cases)


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
            _("{what}: expected an integer dtype (counts of samples), got {dtype}").format(
                what=what, dtype=result.dtype
            ),
        )
        expect_equal(result, _reference_confusion(predictions, labels, num_classes), what)

    return Case(description, run)


# Exercise 0.4 ---------------------------------------------------------------------------------

#: Exercise 0.4 asks for the parameters of ``digits.SmallCNN`` on the 8x8 digits.
PREDICTION_SIDE = 8
#: A prediction within 5% of the true count passes: the point is where the parameters are.
PREDICTION_TOLERANCE = 0.05


def parameter_breakdown(side: int = PREDICTION_SIDE) -> dict[str, int]:
    """Parameters of ``digits.SmallCNN(side=side)`` per layer (weights and biases together),
    counted from a freshly built model."""
    model = digits.SmallCNN(side=side)
    names = {
        "features.0": _("convolution 1 (1 -> 32 channels, 3x3)"),
        "features.1": _("batch norm 1 (a scale and a shift per channel)"),
        "features.4": _("convolution 2 (32 -> 64 channels, 3x3)"),
        "features.5": _("batch norm 2"),
        "head.2": _("linear head"),
    }
    counts: dict[str, int] = {}
    for name, parameter in model.named_parameters():
        layer = names[name.rsplit(".", 1)[0]]
        counts[layer] = counts.get(layer, 0) + parameter.numel()
    return counts


def parameter_slips(side: int = PREDICTION_SIDE) -> dict[int, str]:
    """Exercise 0.4's typical wrong counts (value -> what it corresponds to)."""
    channels, classes = 32, 10
    total = bench.count_parameters(digits.SmallCNN(side=side))
    head = 2 * channels * (side // 4) ** 2 * classes + classes
    return {
        total - head + 2 * channels * side**2 * classes + classes: _(
            "the count with a linear head on the unpooled feature map; the two 2x2 poolings "
            "leave a {pooled}x{pooled} map, so the head sees {channels} x "
            "{cells} = {features} features"
        ).format(
            pooled=side // 4,
            channels=2 * channels,
            cells=(side // 4) ** 2,
            features=2 * channels * (side // 4) ** 2,
        ),
        total - head + 2 * channels * (side // 2) ** 2 * classes + classes: _(
            "the count with one pooling before the head; there are two"
        ),
        bench.count_parameters(digits.MLP(side=side)): _(
            "the MLP's count; the question is about SmallCNN"
        ),
        total - 9 * (channels + 2 * channels * channels) + (channels + 2 * channels * channels): _(
            "the count with 1x1 kernels; a 3x3 kernel has 9 weights per input channel"
        ),
    }


def check_parameter_prediction(predicted_parameters: object) -> ExerciseResult:
    """Exercise 0.4 (predict, then run): how many parameters ``digits.SmallCNN`` has on the 8x8
    digits. The true value is counted here from a fresh model (``bench.count_parameters``); a
    prediction within 5% passes, and a typical slip is named in the message."""
    breakdown = parameter_breakdown()
    total = sum(breakdown.values())
    slip = ""
    if isinstance(predicted_parameters, (int, float, np.integer, np.floating)) and not isinstance(
        predicted_parameters, (bool, np.bool_)
    ):
        value = float(predicted_parameters)
        if abs(value - total) > PREDICTION_TOLERANCE * total:
            slip = next(
                (
                    _("Your number is {meaning}. ").format(meaning=meaning)
                    for count, meaning in parameter_slips().items()
                    if abs(value - count) <= 0.005 * count
                ),
                "",
            )
    lines = _("; ").join(f"{layer} {count:,}" for layer, count in breakdown.items())
    explain = slip + _(
        "Per layer: {layers}. A convolution from c_in to c_out channels with k x k "
        "kernels has c_out x c_in x k x k weights and c_out biases, whatever the image's size; "
        "the linear head sees the flattened feature map left by the two poolings."
    ).format(layers=lines)
    return check_number(
        "0.4",
        _("the parameters of SmallCNN"),
        predicted_parameters,
        total,
        tolerance=PREDICTION_TOLERANCE,
        relative=True,
        unit=_("parameters"),
        kind=PREDICTION,
        explain=explain,
    )


# Exercise 0.5 ---------------------------------------------------------------------------------

#: One epoch: (model, loader, optimizer, loss_fn) -> mean loss over the epoch's examples.
TrainOneEpoch = Callable[
    [nn.Module, torch.utils.data.DataLoader, torch.optim.Optimizer, Callable], float
]


def check_train_one_epoch(train_one_epoch: TrainOneEpoch) -> ExerciseResult:
    """Exercise 0.5: ``train_one_epoch(model, loader, optimizer, loss_fn)``.

    ``loader`` yields ``(inputs, targets)`` batches; the function trains ``model`` for one pass
    over it (forward, loss, backward, step, with the gradients cleared between batches, in
    training mode) and returns the mean of the loss over the epoch's examples as a Python
    float, each batch weighted by its size. The reference is :func:`handbook.train.fit` with
    ``epochs=1`` from the same weights, batches and dropout draws: the weights after the epoch
    (tolerance 1e-5) and the mean loss (1e-6) must match it.
    """
    cases = [
        _epoch_case(train_one_epoch, _("a linear model, 40 examples in batches of 8"), _linear, 40),
        _epoch_case(
            train_one_epoch,
            _("a last batch smaller than the others (30 examples in batches of 8)"),
            _linear,
            30,
            smaller_last_batch=True,
        ),
        _epoch_case(
            train_one_epoch,
            _("an MLP with dropout, handed over in evaluation mode"),
            _mlp,
            48,
            handed_in_eval_mode=True,
        ),
        _epoch_case(
            train_one_epoch,
            _("plain SGD with momentum, where every step counts"),
            _linear,
            40,
            optimizer="sgd",
        ),
        _epoch_case(
            train_one_epoch,
            _("a loss function other than cross-entropy (label smoothing 0.2)"),
            _linear,
            24,
            loss_fn=_smoothed_cross_entropy,
        ),
        _epoch_case(train_one_epoch, _("a single batch"), _mlp, 8),
        Case(_("the answer is a Python float"), lambda: _expect_float_loss(train_one_epoch)),
    ]
    return check_exercise("0.5", _("one epoch of training"), cases)


def _linear() -> nn.Module:
    return nn.Linear(6, 3)


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))


def _smoothed_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits, targets, label_smoothing=0.2)


def _epoch_data(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(50 + count)
    inputs = torch.randn(count, 6, generator=generator)
    return inputs, torch.randint(0, 3, (count,), generator=generator)


def _optimizer(kind: str, model: nn.Module) -> torch.optim.Optimizer:
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return torch.optim.AdamW(model.parameters(), lr=0.05)


def _one_epoch(run, make_model, count, optimizer, loss_fn, eval_mode):
    """``run(model, loader, optimizer, loss_fn)`` from fixed weights, batches and dropout draws;
    returns (the model after the epoch, what ``run`` returned)."""
    torch.manual_seed(5)
    model = make_model()
    if eval_mode:
        model.eval()
    inputs, targets = _epoch_data(count)
    loader = train.make_loader(inputs, targets, batch_size=8, shuffle=True, seed=7)
    torch.manual_seed(6)  # the dropout draws
    returned = run(model, loader, _optimizer(optimizer, model), loss_fn)
    return model, returned


def _reference_epoch(model, loader, optimizer, loss_fn) -> float:
    history = train.fit(
        model,
        loader,
        epochs=1,
        optimizer=optimizer,
        loss_fn=loss_fn,
        device=torch.device("cpu"),
        progress=False,
    )
    return history.train_loss[0]


def _batch_mean_epoch(model, loader, optimizer, loss_fn) -> float:
    """The reference's training with the plain mean of the batch means (a typical slip)."""
    losses = []
    model.train()
    for inputs, targets in loader:
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return sum(losses) / len(losses)


def _epoch_without_clearing(model, loader, optimizer, loss_fn) -> float:
    """The reference's training with gradients never cleared (a typical slip)."""
    model.train()
    for inputs, targets in loader:
        loss_fn(model(inputs), targets).backward()
        optimizer.step()
    return 0.0


def _epoch_case(
    train_one_epoch: TrainOneEpoch,
    description: str,
    make_model: Callable[[], nn.Module],
    count: int,
    *,
    optimizer: str = "adamw",
    loss_fn: Callable = nn.functional.cross_entropy,
    smaller_last_batch: bool = False,
    handed_in_eval_mode: bool = False,
) -> Case:
    def run() -> None:
        what = "train_one_epoch(model, loader, optimizer, loss_fn)"
        settings = (make_model, count, optimizer, loss_fn, handed_in_eval_mode)
        model, loss = _one_epoch(train_one_epoch, *settings)
        reference, reference_loss = _one_epoch(_reference_epoch, *settings)
        weights = dict(reference.named_parameters())
        differing = [
            name
            for name, parameter in model.named_parameters()
            if not torch.allclose(parameter.detach(), weights[name].detach(), atol=1e-5)
        ]
        if differing:
            expect(
                not (
                    handed_in_eval_mode
                    and _same_weights(model, _one_epoch(_eval_epoch, *settings)[0])
                ),
                _(
                    "{what}: the weights after the epoch differ from the reference's "
                    "({differing}); they are what training with dropout switched off gives: the "
                    "model was handed over in evaluation mode and trained in it"
                ).format(what=what, differing=differing),
            )
            expect(
                not _same_weights(model, _one_epoch(_epoch_without_clearing, *settings)[0]),
                _(
                    "{what}: the weights after the epoch differ from the reference's "
                    "({differing}); they are what you get when each batch's gradient is added to "
                    "the gradients of all the batches before it"
                ).format(what=what, differing=differing),
            )
            name = differing[0]
            expect_close(
                model.get_parameter(name).detach(),
                weights[name].detach(),
                _("{what}: the weights {name} after one epoch").format(what=what, name=repr(name)),
                atol=1e-5,
            )
        expect(
            isinstance(loss, (int, float, np.floating))
            or (isinstance(loss, torch.Tensor) and loss.numel() == 1),
            _("{what}: expected the mean loss as a number, got {loss}").format(
                what=what, loss=describe(loss)
            ),
        )
        loss = float(loss)
        if smaller_last_batch:
            batch_mean = _one_epoch(_batch_mean_epoch, *settings)[1]
            expect(
                abs(loss - batch_mean) > 1e-9 or abs(batch_mean - reference_loss) < 1e-9,
                _(
                    "{what}: returned {loss:.6f}, the mean of the batch losses; expected "
                    "{reference:.6f}, the mean over the {count} examples (the last batch "
                    "holds fewer examples than the others)"
                ).format(what=what, loss=loss, reference=reference_loss, count=count),
            )
        expect_close(
            loss,
            reference_loss,
            _("{what}: the mean loss").format(what=what),
            atol=1e-6,
            rtol=1e-6,
        )

    return Case(description, run)


def _eval_epoch(model, loader, optimizer, loss_fn) -> float:
    """The reference's training left in evaluation mode, dropout off (a typical slip)."""
    for inputs, targets in loader:
        loss_fn(model(inputs), targets).backward()
        optimizer.step()
        optimizer.zero_grad()
    return 0.0


def _same_weights(first: nn.Module, second: nn.Module) -> bool:
    return all(
        torch.allclose(a.detach(), b.detach(), atol=1e-5)
        for a, b in zip(first.parameters(), second.parameters(), strict=True)
    )


def _expect_float_loss(train_one_epoch: TrainOneEpoch) -> None:
    loss = _one_epoch(train_one_epoch, _linear, 16, "adamw", nn.functional.cross_entropy, False)[1]
    expect(
        isinstance(loss, float),
        _(
            "train_one_epoch(...): expected a Python float (the mean loss), got {type} {value}"
        ).format(type=type(loss).__name__, value=describe(loss)),
    )
