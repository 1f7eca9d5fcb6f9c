"""Chapter 4 figures: the size/speed/quality trade-off of compressed models and its Pareto front."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from handbook.i18n import _
from handbook.plots.style import pyplot


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the ``(cost, quality)`` points no other point beats on both, by rising cost.

    A point is dominated when another costs no more and scores at least as well (and is strictly
    better on one of the two).
    """
    order = sorted(range(len(points)), key=lambda index: (points[index][0], -points[index][1]))
    front, best = [], -np.inf
    for index in order:
        if points[index][1] > best:
            front.append(index)
            best = points[index][1]
    return front


def compression_tradeoff(
    variants: Mapping[str, Mapping[str, float]],
    *,
    title: str | None = None,
):
    """Accuracy against model size and against latency for every variant, Pareto fronts dashed.

    ``variants``: ``{name: {"accuracy": fraction, "size_bytes": bytes, "latency_ms": ms}}``.
    Left panel: size in KiB (log scale); right panel: latency in milliseconds (log scale).
    """
    for name, values in variants.items():
        missing = {"accuracy", "size_bytes", "latency_ms"} - set(values)
        if missing:
            raise ValueError(f"variant {name!r} lacks {sorted(missing)}")
    from matplotlib.ticker import LogLocator, ScalarFormatter

    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    names = list(variants)
    accuracy = [100 * variants[name]["accuracy"] for name in names]
    panels = (
        ("size_bytes", 1 / 1024, _("model size (KiB, log scale)")),
        ("latency_ms", 1.0, _("latency, batch 1, one thread (ms, log scale)")),
    )
    # one marker per variant, named once in a shared legend: labels beside crowded points overlap
    markers = "os^vD<>pPX*h"
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, (key, factor, label) in zip(axes, panels, strict=True):
        cost = [variants[name][key] * factor for name in names]
        for index, (name, x, y) in enumerate(zip(names, cost, accuracy, strict=True)):
            axis.scatter(
                x,
                y,
                marker=markers[index % len(markers)],
                s=45,
                zorder=3,
                color=colors[index % len(colors)],
                label=name,
            )
        front = pareto_front(list(zip(cost, accuracy, strict=True)))
        axis.plot(
            [cost[i] for i in front],
            [accuracy[i] for i in front],
            linestyle="--",
            color="tab:orange",
            label=_("Pareto front"),
        )
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(ScalarFormatter())
        axis.xaxis.set_minor_formatter(plt.NullFormatter())
        axis.set_xlabel(label)
        axis.set_ylabel(_("test accuracy (%)"))
        axis.grid(alpha=0.3, which="both")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(
        handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False
    )
    if title:
        figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.06 + 0.045 * ((len(labels) - 1) // 4), 1, 1))
    return figure


def onnx_byte_breakdown(
    breakdowns: Mapping[str, Mapping[str, int]],
    *,
    reference_bytes: int | None = None,
    title: str | None = None,
):
    """One horizontal bar per ONNX file, split into the parts of
    :func:`handbook.compression.onnx_byte_breakdown` (KiB), so the eye finds where the bytes are.

    ``breakdowns``: ``{file label: {part: bytes}}``; ``reference_bytes`` draws a dashed line
    (the fp32 state dict, say) and its quarter, the ideal INT8 size.
    """
    if not breakdowns:
        raise ValueError("expected at least one breakdown to plot")
    plt = pyplot()
    labels = list(breakdowns)
    parts = list(dict.fromkeys(part for values in breakdowns.values() for part in values))
    figure, axis = plt.subplots(figsize=(10, 1.2 + 0.6 * len(labels)))
    left = np.zeros(len(labels))
    for part in parts:
        widths = np.array([breakdowns[label].get(part, 0) / 1024 for label in labels])
        if widths.any():
            axis.barh(labels, widths, left=left, label=part)
            left += widths
    if reference_bytes:
        for fraction, style in ((1.0, "--"), (0.25, ":")):
            axis.axvline(reference_bytes * fraction / 1024, color="black", linestyle=style, lw=1)
    axis.invert_yaxis()
    axis.set_xlabel(_("KiB (dashed: fp32 state dict; dotted: a quarter of it)"))
    axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3, frameon=False)
    axis.grid(alpha=0.3, axis="x")
    if title:
        axis.set_title(title)
    figure.tight_layout()
    return figure
