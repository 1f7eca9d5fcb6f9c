"""Figures several chapters draw: image grids, learning curves, confusion matrices, bar charts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from handbook.i18n import _
from handbook.plots.style import finish, pyplot


def image_grid(
    images: np.ndarray,
    labels: Sequence,
    *,
    columns: int = 10,
    title: str | None = None,
    predictions: Sequence | None = None,
):
    """A grid of grey-scale images with their labels (and predictions, wrong ones in red).

    ``images``: ``(n, side, side)`` or ``(n, 1, side, side)`` or ``(n, side*side)``.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 2:
        side = int(round(images.shape[1] ** 0.5))
        images = images.reshape(-1, side, side)
    images = images.reshape(len(images), images.shape[-2], images.shape[-1])
    if len(images) != len(labels):
        raise ValueError(
            f"expected one label per image, got {len(images)} images, {len(labels)} labels"
        )
    rows = max(1, -(-len(images) // columns))
    plt = pyplot()
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 1.05), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= len(images):
            continue
        axis.imshow(images[index], cmap="gray_r")
        text, color = f"{labels[index]}", "black"
        if predictions is not None:
            text = f"{labels[index]}→{predictions[index]}"
            color = "black" if predictions[index] == labels[index] else "crimson"
        axis.set_title(text, fontsize=9, color=color)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def learning_curves(
    histories: Mapping[str, object], *, metrics: Sequence[str] = ("loss", "accuracy")
):
    """Training and validation curves of several :class:`handbook.train.History`, per epoch."""
    plt = pyplot()
    metric_names = {"loss": _("loss"), "accuracy": _("accuracy")}
    figure, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.6), squeeze=False)
    for axis, metric in zip(axes.flat, metrics, strict=False):
        colors = plt.rcParams["axes.prop_cycle"]
        for (name, history), color in zip(histories.items(), colors, strict=False):
            train = getattr(history, f"train_{metric}")
            validation = getattr(history, f"val_{metric}")
            epochs = np.arange(1, len(train) + 1)
            axis.plot(
                epochs,
                train,
                linestyle="--",
                color=color["color"],
                label=_("{name} (train)").format(name=name),
            )
            if validation:
                axis.plot(
                    epochs,
                    validation,
                    color=color["color"],
                    label=_("{name} (validation)").format(name=name),
                )
        axis.set_xlabel(_("epoch"))
        axis.set_ylabel(metric_names.get(metric, metric))
        axis.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    figure.tight_layout()
    return figure


def confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], *, title: str | None = None):
    """A confusion-matrix heat map: rows are true classes, columns predicted ones."""
    matrix = np.asarray(matrix)
    if matrix.shape != (len(class_names), len(class_names)):
        raise ValueError(
            f"expected a {len(class_names)}x{len(class_names)} matrix for "
            f"{len(class_names)} classes, got {matrix.shape}"
        )
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5.2, 4.6))
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis, fraction=0.046)
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names)
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel(_("predicted"))
    axis.set_ylabel(_("true"))
    threshold = matrix.max() / 2 if matrix.size else 0
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            if matrix[row, column]:
                color = "white" if matrix[row, column] > threshold else "black"
                axis.text(
                    column,
                    row,
                    int(matrix[row, column]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color=color,
                )
    return finish(figure, axis, title)


def bar_comparison(
    values: Mapping[str, float],
    *,
    ylabel: str,
    title: str | None = None,
    reference: float | None = None,
    reference_label: str = "",
    ylim: tuple[float, float] | None = None,
):
    """Bars for a few named values, with an optional horizontal reference line and y range."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(1.6 + 1.3 * len(values), 3.4))
    bars = axis.bar(list(values), list(values.values()), color="#4c72b0")
    axis.bar_label(bars, fmt="%.3g")
    if reference is not None:
        axis.axhline(reference, color="crimson", linestyle="--", label=reference_label)
        axis.legend()
    axis.set_ylabel(ylabel)
    if ylim is not None:
        axis.set_ylim(*ylim)
    return finish(figure, axis, title)
