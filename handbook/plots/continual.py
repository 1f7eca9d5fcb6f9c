"""Chapter 7 figures: accuracy through the stream, compute against accuracy, savings, stability."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from handbook.i18n import _
from handbook.plots.style import finish, pyplot


def accuracy_through_stream(
    accuracies: Mapping[str, np.ndarray],
    period_names: Sequence[str],
    *,
    title: str | None = None,
):
    """The forgetting picture: one panel per strategy, one line per period of the stream.

    ``accuracies``: ``{strategy: (T, T) matrix}``, entry ``[i, j]`` the accuracy (fraction) on
    period ``j``'s test set after training on period ``i``; ``period_names``: ``T`` labels
    ("sports, weather"). Each line starts where its period is learned; a falling line is
    forgetting.
    """
    periods = len(period_names)
    for name, matrix in accuracies.items():
        if np.shape(matrix) != (periods, periods):
            raise ValueError(
                f"{name!r}: expected a ({periods}, {periods}) accuracy matrix, "
                f"got {np.shape(matrix)}"
            )
    plt = pyplot()
    figure, axes = plt.subplots(
        1, len(accuracies), figsize=(2.9 * len(accuracies) + 0.6, 3.3), sharey=True, squeeze=False
    )
    after = np.arange(periods)
    for axis, (name, matrix) in zip(axes.flat, accuracies.items(), strict=True):
        matrix = np.asarray(matrix, dtype=np.float64)
        for period in range(periods):
            axis.plot(
                after[period:],
                100 * matrix[period:, period],
                marker="o",
                markersize=4,
                label=period_names[period],
            )
        axis.set_title(name, fontsize=10)
        axis.set_xticks(after)
        axis.set_xlabel(_("after training on period"))
        axis.set_ylim(-3, 103)
        axis.grid(alpha=0.3)
    axes.flat[0].set_ylabel(_("test accuracy on the period (%)"))
    axes.flat[-1].legend(fontsize=7, title=_("period's topics"), title_fontsize=7, loc="lower left")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def compute_and_accuracy(
    results: Mapping[str, tuple[float, float, float]],
    *,
    reference: str | None = None,
    title: str | None = None,
):
    """Final accuracy against total training compute, one point per strategy.

    ``results``: ``{strategy: (compute, mean accuracy, spread)}``, compute in FLOPs, accuracy
    and spread (an error bar, e.g. the standard deviation over seeds) as fractions. With
    ``reference`` (a key, e.g. "retrain") the x axis is compute relative to it, in percent.
    """
    if reference is not None and reference not in results:
        raise ValueError(f"reference {reference!r} is not one of {sorted(results)}")
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    scale = 100 / results[reference][0] if reference is not None else 1.0
    for name, (compute, accuracy, spread) in results.items():
        axis.errorbar(
            compute * scale,
            100 * accuracy,
            yerr=100 * spread,
            marker="o",
            capsize=3,
            linestyle="none",
            label=name,
        )
    axis.set_xlabel(
        _("training compute (% of {reference})").format(reference=reference)
        if reference is not None
        else _("training FLOPs")
    )
    if reference is None:
        axis.set_xscale("log")
    axis.set_ylabel(_("final accuracy on all topics (%)"))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return finish(figure, axis, title)


def compute_savings(
    old_to_new: np.ndarray,
    curves: Mapping[str, np.ndarray],
    *,
    measured: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    claimed: float | None = None,
    title: str | None = None,
):
    """Compute saved by an incremental update against retraining, as old data accumulates.

    ``old_to_new``: ``(k,)`` ratios of old to new data; ``curves``: ``{label: (k,) savings}``
    (fractions, e.g. from :func:`handbook.continual.replay_compute_share`); ``measured``:
    ``{label: (ratios, savings)}`` drawn as points; ``claimed``: a horizontal line (the
    article's figure, a fraction).
    """
    old_to_new = np.asarray(old_to_new, dtype=np.float64)
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 3.9))
    for label, savings in curves.items():
        if len(savings) != len(old_to_new):
            raise ValueError(
                f"{label!r}: expected {len(old_to_new)} savings (one per ratio), got {len(savings)}"
            )
        axis.plot(old_to_new, 100 * np.asarray(savings), label=label)
    for label, (ratios, savings) in (measured or {}).items():
        axis.plot(ratios, 100 * np.asarray(savings), "o", color="black", markersize=6, label=label)
    if claimed is not None:
        axis.axhline(100 * claimed, color="crimson", linestyle=":", label=_("the article's figure"))
    axis.set_xlabel(_("old data / new data at the update"))
    axis.set_ylabel(_("compute saved vs retraining (%)"))
    axis.set_ylim(0, 100)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return finish(figure, axis, title)


def stability_plasticity(
    sweeps: Mapping[str, Sequence[tuple[float, float, float]]],
    *,
    title: str | None = None,
):
    """Accuracy on the old periods against accuracy on the newest one, as a knob turns.

    ``sweeps``: ``{label: [(knob value, old accuracy, new accuracy), ...]}`` (fractions), one
    line per label, each point annotated with its knob value (EWC's lambda). Top right is
    the goal: remember the old, learn the new.
    """
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.0, 4.2))
    for label, points in sweeps.items():
        if not points:
            raise ValueError(f"{label!r}: expected at least one (value, old, new) point")
        values, old, new = np.asarray(points, dtype=np.float64).T
        axis.plot(100 * new, 100 * old, marker="o", label=label)
        for value, x, y in zip(values, 100 * new, 100 * old, strict=True):
            axis.annotate(
                f"{value:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7
            )
    axis.set_xlabel(_("accuracy on the newest period (%)"))
    axis.set_ylabel(_("mean accuracy on the older periods (%)"))
    axis.set_xlim(-3, 103)
    axis.set_ylim(-3, 103)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return finish(figure, axis, title)
