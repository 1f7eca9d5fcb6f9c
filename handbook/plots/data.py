"""Chapter 3 figures: padding per batch and detection scores of the data-cleaning methods."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from handbook.i18n import _
from handbook.plots.style import finish, pyplot


def padding_per_batch(
    batch_lengths: Mapping[str, Sequence[Sequence[int]]], *, title: str | None = None
):
    """Real tokens and padding of every batch, one panel per batching strategy.

    ``batch_lengths``: for each strategy, one sequence of row lengths per batch (tokens). Each
    batch is a bar as tall as ``rows x longest row``; its dark part is real tokens, the light
    part padding; the panel title gives the padding share over all batches.
    """
    if not batch_lengths:
        raise ValueError("expected at least one batching strategy to draw")
    plt = pyplot()
    figure, axes = plt.subplots(
        1,
        len(batch_lengths),
        figsize=(5.2 * len(batch_lengths), 3.4),
        squeeze=False,
        sharey=True,
    )
    for axis, (name, batches) in zip(axes.flat, batch_lengths.items(), strict=True):
        real = np.array([np.sum(lengths) for lengths in batches], dtype=float)
        slots = np.array([len(lengths) * np.max(lengths) for lengths in batches], dtype=float)
        positions = np.arange(len(batches))
        axis.bar(positions, real, width=1.0, color="#4c72b0", label=_("real tokens"))
        axis.bar(
            positions, slots - real, bottom=real, width=1.0, color="#f2a65a", label=_("padding")
        )
        share = 1.0 - real.sum() / slots.sum() if slots.sum() else 0.0
        axis.set_title(
            _("{strategy}: {share:.1f}% padding").format(strategy=name, share=100 * share),
            fontsize=10,
        )
        axis.set_xlabel(_("batch"))
    axes.flat[0].set_ylabel(_("positions in the batch"))
    axes.flat[0].legend(fontsize=8, loc="lower right")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def detection_quality_bars(scores: Mapping[str, Mapping[str, float]], *, title: str | None = None):
    """Grouped bars of detection quality: one group per detector, one bar per metric.

    ``scores``: ``{detector: {"precision": 0.9, "recall": 0.8, ...}}``, values in [0, 1].
    """
    if not scores:
        raise ValueError("expected at least one detector to draw")
    metrics = list(next(iter(scores.values())))
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(1.8 + 1.9 * len(scores), 3.4))
    width = 0.8 / len(metrics)
    positions = np.arange(len(scores))
    for offset, metric in enumerate(metrics):
        values = [float(detector[metric]) for detector in scores.values()]
        bars = axis.bar(
            positions + (offset - (len(metrics) - 1) / 2) * width, values, width, label=metric
        )
        axis.bar_label(bars, fmt="%.2f", fontsize=8)
    axis.set_xticks(positions, list(scores))
    axis.set_ylim(0, 1.12)
    axis.set_ylabel(_("score"))
    axis.legend(fontsize=8, loc="lower right")
    return finish(figure, axis, title)
