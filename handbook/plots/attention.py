"""Chapter 1 figures: attention maps, gradient norms by layer, loss curves, scaling with length."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from handbook.i18n import N_, _
from handbook.plots.style import finish, pyplot


def attention_heatmap(
    weights: np.ndarray,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    *,
    title: str | None = None,
):
    """Attention weights as a heat map: one row per target token, one column per source token.

    ``weights``: ``(T, S)`` with ``T = len(target_tokens)`` and ``S = len(source_tokens)``, each
    row a distribution over the source (sums to 1).
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(target_tokens), len(source_tokens)):
        raise ValueError(
            f"expected weights of shape (len(target_tokens), len(source_tokens)) = "
            f"({len(target_tokens)}, {len(source_tokens)}), got {weights.shape}"
        )
    plt = pyplot()
    figure, axis = plt.subplots(
        figsize=(1.2 + 0.75 * len(source_tokens), 1.0 + 0.42 * len(target_tokens))
    )
    image = axis.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    figure.colorbar(image, ax=axis, fraction=0.046, label=_("attention weight"))
    axis.set_xticks(np.arange(len(source_tokens)), source_tokens, rotation=45, ha="right")
    axis.set_yticks(np.arange(len(target_tokens)), target_tokens)
    axis.set_xlabel(_("source (English) token"))
    axis.set_ylabel(_("target (German) token being predicted"))
    return finish(figure, axis, title)


def layer_gradient_norms(norms: Mapping[str, Sequence[float]], *, title: str | None = None):
    """Gradient norm per layer (first layer left) for several models, on a log scale.

    ``norms``: name -> one norm per layer ``(num_layers,)``.
    """
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.0, 3.6))
    for name, values in norms.items():
        layers = np.arange(1, len(values) + 1)
        axis.plot(layers, values, marker="o", markersize=3, label=name)
    axis.set_yscale("log")
    axis.set_xlabel(_("layer (1 = next to the input)"))
    axis.set_ylabel(_("gradient norm at initialization"))
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    return finish(figure, axis, title)


def loss_curves(
    losses: Mapping[str, Sequence[float]],
    *,
    xlabel: str = N_("step"),
    title: str | None = None,
    reference: float | None = None,
    reference_label: str = "",
):
    """Training loss per step for several runs, with an optional horizontal reference line.

    ``losses``: name -> one loss per step ``(steps,)``.
    """
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.0, 3.6))
    for name, values in losses.items():
        axis.plot(np.arange(1, len(values) + 1), values, label=name)
    if reference is not None:
        axis.axhline(reference, color="gray", linestyle=":", label=reference_label)
    axis.set_xlabel(_(xlabel))
    axis.set_ylabel(_("loss"))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return finish(figure, axis, title)


def scaling_plot(rows: Sequence[Mapping], *, title: str | None = None):
    """Time (and peak memory, where measured) against sequence length, one line per variant.

    ``rows``: dicts with ``seq_len``, ``variant``, ``ms`` and ``peak_bytes`` (None where not
    measured); log-log axes. A memory panel is drawn only when some row has ``peak_bytes``.
    """
    if not rows:
        raise ValueError("expected at least one row to plot")
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    with_memory = any(row.get("peak_bytes") is not None for row in rows)
    panels = [("ms", _("time per call (ms)"), 1.0)]
    if with_memory:
        panels.append(("peak_bytes", _("peak memory (MiB)"), 2.0**20))
    plt = pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
    for axis, (key, label, divisor) in zip(axes.flat, panels, strict=True):
        for variant in variants:
            points = sorted(
                (row["seq_len"], row[key] / divisor)
                for row in rows
                if row["variant"] == variant and row.get(key) is not None and row[key] > 0
            )
            if points:
                axis.plot(*zip(*points, strict=True), marker="o", label=variant)
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel(_("sequence length L (tokens)"))
        axis.set_ylabel(label)
        axis.grid(alpha=0.3, which="both")
        if axis.lines:
            axis.legend(fontsize=8)
        else:  # e.g. memory growth below what the measurement resolves at smoke sizes
            axis.text(
                0.5,
                0.5,
                _("nothing measurable at these sizes"),
                ha="center",
                va="center",
                transform=axis.transAxes,
                color="0.4",
            )
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure
