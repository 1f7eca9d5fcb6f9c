"""Every figure the chapters draw, so that notebooks stay narrative.

Each function returns a matplotlib ``Figure``; matplotlib is imported when a figure is drawn,
never when ``handbook`` is imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def _finish(figure, axis, title: str | None):
    """Title the axis (if a title is given), tighten the layout, return the figure."""
    if title:
        axis.set_title(title)
    figure.tight_layout()
    return figure


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
    plt = _pyplot()
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
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.6), squeeze=False)
    for axis, metric in zip(axes.flat, metrics, strict=False):
        colors = plt.rcParams["axes.prop_cycle"]
        for (name, history), color in zip(histories.items(), colors, strict=False):
            train = getattr(history, f"train_{metric}")
            validation = getattr(history, f"val_{metric}")
            epochs = np.arange(1, len(train) + 1)
            axis.plot(epochs, train, linestyle="--", color=color["color"], label=f"{name} (train)")
            if validation:
                axis.plot(epochs, validation, color=color["color"], label=f"{name} (validation)")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
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
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.2, 4.6))
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis, fraction=0.046)
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names)
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
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
    return _finish(figure, axis, title)


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
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(1.6 + 1.3 * len(values), 3.4))
    bars = axis.bar(list(values), list(values.values()), color="#4c72b0")
    axis.bar_label(bars, fmt="%.3g")
    if reference is not None:
        axis.axhline(reference, color="crimson", linestyle="--", label=reference_label)
        axis.legend()
    axis.set_ylabel(ylabel)
    if ylim is not None:
        axis.set_ylim(*ylim)
    return _finish(figure, axis, title)


# Chapter 1: attention and the Transformer -----------------------------------------------------


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
    plt = _pyplot()
    figure, axis = plt.subplots(
        figsize=(1.2 + 0.75 * len(source_tokens), 1.0 + 0.42 * len(target_tokens))
    )
    image = axis.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    figure.colorbar(image, ax=axis, fraction=0.046, label="attention weight")
    axis.set_xticks(np.arange(len(source_tokens)), source_tokens, rotation=45, ha="right")
    axis.set_yticks(np.arange(len(target_tokens)), target_tokens)
    axis.set_xlabel("source (English) token")
    axis.set_ylabel("target (German) token being predicted")
    return _finish(figure, axis, title)


def layer_gradient_norms(norms: Mapping[str, Sequence[float]], *, title: str | None = None):
    """Gradient norm per layer (first layer left) for several models, on a log scale.

    ``norms``: name -> one norm per layer ``(num_layers,)``.
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.0, 3.6))
    for name, values in norms.items():
        layers = np.arange(1, len(values) + 1)
        axis.plot(layers, values, marker="o", markersize=3, label=name)
    axis.set_yscale("log")
    axis.set_xlabel("layer (1 = next to the input)")
    axis.set_ylabel("gradient norm at initialization")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    return _finish(figure, axis, title)


def loss_curves(
    losses: Mapping[str, Sequence[float]],
    *,
    xlabel: str = "step",
    title: str | None = None,
    reference: float | None = None,
    reference_label: str = "",
):
    """Training loss per step for several runs, with an optional horizontal reference line.

    ``losses``: name -> one loss per step ``(steps,)``.
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.0, 3.6))
    for name, values in losses.items():
        axis.plot(np.arange(1, len(values) + 1), values, label=name)
    if reference is not None:
        axis.axhline(reference, color="gray", linestyle=":", label=reference_label)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("loss")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _finish(figure, axis, title)


def scaling_plot(rows: Sequence[Mapping], *, title: str | None = None):
    """Time (and peak memory, where measured) against sequence length, one line per variant.

    ``rows``: dicts with ``seq_len``, ``variant``, ``ms`` and ``peak_bytes`` (None where not
    measured); log-log axes. A memory panel is drawn only when some row has ``peak_bytes``.
    """
    if not rows:
        raise ValueError("expected at least one row to plot")
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    with_memory = any(row.get("peak_bytes") is not None for row in rows)
    panels = [("ms", "time per call (ms)", 1.0)]
    if with_memory:
        panels.append(("peak_bytes", "peak memory (MiB)", 2.0**20))
    plt = _pyplot()
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
        axis.set_xlabel("sequence length L (tokens)")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


# Chapter 9: ethics and safety ------------------------------------------------------------------


def accuracy_under_attack(
    epsilons: Sequence[float],
    accuracies: Mapping[str, Sequence[float]],
    *,
    marked_epsilon: float | None = None,
    title: str | None = None,
):
    """Accuracy against the perturbation size, one line per model and attack (chapter 9).

    ``epsilons``: ``(k,)`` perturbation sizes (max change per pixel, pixels in [0, 1]);
    ``accuracies``: ``{label: (k,) accuracies as fractions}``. ``marked_epsilon`` draws a dotted
    vertical line where the chapter reads off its numbers. Dashed lines for labels with "PGD".
    """
    epsilons = np.asarray(epsilons, dtype=np.float64)
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 3.8))
    for label, values in accuracies.items():
        if len(values) != len(epsilons):
            raise ValueError(
                f"{label!r}: expected {len(epsilons)} accuracies (one per epsilon), "
                f"got {len(values)}"
            )
        style = "--" if "PGD" in label else "-"
        axis.plot(epsilons, 100 * np.asarray(values), style, marker="o", markersize=4, label=label)
    if marked_epsilon is not None:
        axis.axvline(marked_epsilon, color="grey", linestyle=":", label=f"ε = {marked_epsilon:g}")
    axis.set_xlabel("ε (largest change of any pixel, pixels scaled to [0, 1])")
    axis.set_ylabel("accuracy under attack (%)")
    axis.set_ylim(0, 102)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _finish(figure, axis, title)


def group_selection_rates(
    rates: Mapping[str, Mapping[str, float]],
    *,
    title: str | None = None,
    four_fifths: bool = True,
):
    """Pass rate of each group under several decision rules, with each rule's gap (chapter 9).

    ``rates``: ``{rule: {group: selection rate as a fraction}}``. With ``four_fifths`` a
    marker shows 4/5 of the highest rate of each rule: a group below it fails the rule.
    """
    rules = list(rates)
    groups = sorted({group for rule in rules for group in rates[rule]})
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(1.2 + 1.45 * len(rules), 3.8))
    width = 0.8 / max(len(groups), 1)
    positions = np.arange(len(rules))
    for index, group in enumerate(groups):
        values = [100 * rates[rule].get(group, np.nan) for rule in rules]
        offset = (index - (len(groups) - 1) / 2) * width
        axis.bar(positions + offset, values, width, label=f"group {group}")
    for position, rule in zip(positions, rules, strict=True):
        values = 100 * np.array(list(rates[rule].values()))
        axis.text(
            position,
            values.max() + 2,
            f"gap {values.max() - values.min():.1f} pp",
            ha="center",
            fontsize=8,
        )
        if four_fifths:
            axis.plot(
                [position - 0.4, position + 0.4],
                [0.8 * values.max()] * 2,
                color="crimson",
                linestyle=":",
                label="4/5 of the highest rate" if position == 0 else None,
            )
    axis.set_xticks(positions, rules, rotation=20, ha="right", fontsize=8)
    axis.set_ylabel("pass rate (%)")
    axis.set_ylim(0, 100)
    axis.legend(fontsize=8, loc="upper right")
    return _finish(figure, axis, title)


def feature_attributions(
    importances: Mapping[str, Mapping[str, float]],
    *,
    xlabel: str = "mean |attribution| (log-odds)",
    highlight: Sequence[str] = (),
    title: str | None = None,
):
    """How much each feature moves each model's output: horizontal bars grouped by feature.

    ``importances``: ``{model: {feature: value}}`` (same features for every model);
    features named in ``highlight`` (a protected attribute and its proxy) get red labels.
    """
    models = list(importances)
    features = list(next(iter(importances.values()))) if models else []
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 1.2 + 0.22 * len(features) * max(len(models), 1)))
    height = 0.8 / max(len(models), 1)
    positions = np.arange(len(features))
    for index, model in enumerate(models):
        if list(importances[model]) != features:
            raise ValueError(
                f"{model!r}: expected the features {features}, got {list(importances[model])}"
            )
        offset = (index - (len(models) - 1) / 2) * height  # first model on top (axis inverted)
        values = [importances[model][feature] for feature in features]
        axis.barh(positions + offset, values, height, label=model)
    axis.set_yticks(positions, features)
    for label in axis.get_yticklabels():
        if label.get_text() in highlight:
            label.set_color("crimson")
            label.set_fontweight("bold")
    axis.invert_yaxis()
    axis.set_xlabel(xlabel)
    axis.grid(axis="x", alpha=0.3)
    axis.legend(fontsize=8)
    return _finish(figure, axis, title)


def saliency_maps(
    images: np.ndarray,
    maps: Mapping[str, np.ndarray],
    labels: Sequence,
    *,
    title: str | None = None,
):
    """Each image beside its attribution maps: one row per image, one column per model.

    ``images`` and every map: ``(n, side, side)`` or ``(n, 1, side, side)``. Maps use a
    diverging scale symmetric about 0 per image (red: evidence for the class, blue: against);
    a map's name is its column title, broken onto two lines after a comma.
    """
    images = np.asarray(images, dtype=np.float32)
    images = images.reshape(len(images), images.shape[-2], images.shape[-1])
    if len(labels) != len(images):
        raise ValueError(
            f"expected one label per image, got {len(images)} images, {len(labels)} labels"
        )
    arrays = {}
    for name, values in maps.items():
        values = np.asarray(values, dtype=np.float32)
        if values.size != images.size:
            raise ValueError(
                f"map {name!r}: expected the images' shape {images.shape}, got {values.shape}"
            )
        arrays[name] = values.reshape(images.shape)
    plt = _pyplot()
    columns = 1 + len(arrays)
    figure, axes = plt.subplots(
        len(images), columns, figsize=(1.6 * columns, 1.6 * len(images)), squeeze=False
    )
    for row, image in enumerate(images):
        axes[row, 0].imshow(image, cmap="gray_r", vmin=0, vmax=1)
        axes[row, 0].set_ylabel(f"{labels[row]}", rotation=0, labelpad=12, fontsize=11)
        for column, (name, values) in enumerate(arrays.items(), start=1):
            limit = float(np.abs(values[row]).max()) or 1.0
            axes[row, column].imshow(values[row], cmap="RdBu_r", vmin=-limit, vmax=limit)
            if row == 0:
                axes[row, column].set_title(name.replace(", ", ",\n"), fontsize=9)
        if row == 0:
            axes[row, 0].set_title("input", fontsize=9)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


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

    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    names = list(variants)
    accuracy = [100 * variants[name]["accuracy"] for name in names]
    panels = (
        ("size_bytes", 1 / 1024, "model size (KiB, log scale)"),
        ("latency_ms", 1.0, "latency, batch 1, one thread (ms, log scale)"),
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
            label="Pareto front",
        )
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(ScalarFormatter())
        axis.xaxis.set_minor_formatter(plt.NullFormatter())
        axis.set_xlabel(label)
        axis.set_ylabel("test accuracy (%)")
        axis.grid(alpha=0.3, which="both")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(
        handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False
    )
    if title:
        figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.06 + 0.045 * ((len(labels) - 1) // 4), 1, 1))
    return figure


# Chapter 3: data engineering ------------------------------------------------------------------


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
    plt = _pyplot()
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
        axis.bar(positions, real, width=1.0, color="#4c72b0", label="real tokens")
        axis.bar(positions, slots - real, bottom=real, width=1.0, color="#f2a65a", label="padding")
        share = 1.0 - real.sum() / slots.sum() if slots.sum() else 0.0
        axis.set_title(f"{name}: {100 * share:.1f}% padding", fontsize=10)
        axis.set_xlabel("batch")
    axes.flat[0].set_ylabel("positions in the batch")
    axes.flat[0].legend(fontsize=8, loc="lower right")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def detection_scores(scores: Mapping[str, Mapping[str, float]], *, title: str | None = None):
    """Grouped bars of detection quality: one group per detector, one bar per metric.

    ``scores``: ``{detector: {"precision": 0.9, "recall": 0.8, ...}}``, values in [0, 1].
    """
    if not scores:
        raise ValueError("expected at least one detector to draw")
    metrics = list(next(iter(scores.values())))
    plt = _pyplot()
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
    axis.set_ylabel("score")
    axis.legend(fontsize=8, loc="lower right")
    return _finish(figure, axis, title)


# Chapter 2: training optimization -------------------------------------------------------------


def learning_rate_schedules(
    schedules: Mapping[str, Sequence[float]],
    *,
    xlabel: str = "epoch",
    title: str | None = None,
):
    """Learning rate against step for several schedules, one line each.

    ``schedules``: name -> learning rate of each step ``(steps,)``, starting at step 0.
    """
    if not schedules:
        raise ValueError("expected at least one schedule to draw")
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7.0, 3.6))
    for name, values in schedules.items():
        axis.plot(np.arange(len(values)), values, marker="o", markersize=2.5, label=name)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("learning rate")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _finish(figure, axis, title)


def seed_comparison(
    results: Mapping[str, Sequence[float]],
    *,
    ylabel: str,
    title: str | None = None,
):
    """One column per configuration: a dot per seed, the mean as a bar, +- one std as an error bar.

    ``results``: configuration name -> one score per seed ``(seeds,)``.
    """
    if not results or any(len(values) == 0 for values in results.values()):
        raise ValueError("expected at least one configuration, each with at least one score")
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(1.8 + 1.8 * len(results), 3.6))
    positions = np.arange(len(results))
    means = [float(np.mean(values)) for values in results.values()]
    spreads = [float(np.std(values)) for values in results.values()]
    bars = axis.bar(positions, means, 0.6, yerr=spreads, capsize=6, color="#4c72b0", alpha=0.45)
    axis.bar_label(bars, labels=[f"{mean:.1f}" for mean in means], label_type="center")
    for position, values in zip(positions, results.values(), strict=True):
        axis.scatter(np.full(len(values), position), values, color="black", s=14, zorder=3)
    axis.set_xticks(positions, list(results))
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3, axis="y")
    return _finish(figure, axis, title)


# Chapter 5: serving ------------------------------------------------------------------------------


def throughput_and_latency(rows: Sequence[Mapping], *, title: str | None = None):
    """Two panels against the number of concurrent clients, one line per server variant:
    throughput (requests/s) and p99 latency (ms, log scale).

    ``rows``: dicts with ``server``, ``clients``, ``req/s`` and ``p99 ms`` (as
    :meth:`handbook.serve.loadtest.LoadResult.summary` gives them).
    """
    if not rows:
        raise ValueError("expected at least one load-test row to plot")
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10.4, 3.8))
    for server in dict.fromkeys(row["server"] for row in rows):
        points = sorted(
            (row["clients"], row["req/s"], row["p99 ms"]) for row in rows if row["server"] == server
        )
        clients, throughput, p99 = zip(*points, strict=True)
        left.plot(clients, throughput, marker="o", label=server)
        right.plot(clients, p99, marker="o", label=server)
    for axis, label in ((left, "throughput (requests/s)"), (right, "p99 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3, which="both")
    right.set_yscale("log")
    left.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def latency_distributions(latencies_ms: Mapping[str, np.ndarray], *, title: str | None = None):
    """Empirical CDF of request latency per server (log x), with p50 and p99 marked."""
    if not latencies_ms:
        raise ValueError("expected at least one server's latencies")
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7.0, 3.8))
    for name, values in latencies_ms.items():
        ordered = np.sort(np.asarray(values, dtype=float))
        if ordered.size == 0:
            raise ValueError(f"no latencies for {name!r}")
        fraction = np.arange(1, ordered.size + 1) / ordered.size
        (line,) = axis.step(ordered, fraction, where="post", label=name)
        for q, marker in ((50, "o"), (99, "^")):
            axis.plot(np.percentile(ordered, q), q / 100, marker, color=line.get_color())
    axis.set_xscale("log")
    axis.set_xlabel("latency (ms)  [o p50, ^ p99]")
    axis.set_ylabel("fraction of requests")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    return _finish(figure, axis, title)


def serving_dashboard(series: Mapping[str, np.ndarray], *, title: str | None = None):
    """The four Grafana panels from :func:`handbook.serve.metrics.dashboard_series`: QPS,
    p50/p99 latency, error rate and mean batch size over time."""
    missing = {"time", "qps", "p50_ms", "p99_ms", "error_rate", "batch_size"} - set(series)
    if missing:
        raise ValueError(f"dashboard series lack {sorted(missing)}")
    plt = _pyplot()
    figure, axes = plt.subplots(1, 4, figsize=(14.0, 3.2))
    t = series["time"]
    axes[0].plot(t, series["qps"], marker=".")
    axes[0].set_ylabel("requests/s")
    axes[0].set_title("QPS")
    axes[1].plot(t, series["p50_ms"], marker=".", label="p50")
    axes[1].plot(t, series["p99_ms"], marker=".", label="p99")
    axes[1].set_ylabel("ms")
    axes[1].set_title("latency (from histogram buckets)")
    axes[1].legend(fontsize=8)
    axes[2].plot(t, 100 * series["error_rate"], marker=".", color="crimson")
    axes[2].set_ylabel("% not 2xx")
    axes[2].set_ylim(bottom=0.0)
    axes[2].set_title("error rate")
    axes[3].plot(t, series["batch_size"], marker=".", color="darkgreen")
    axes[3].set_ylabel("texts per model call")
    axes[3].set_title("batch size")
    for axis in axes:
        axis.set_xlabel("seconds")
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def autoscaling(
    traffic_rps: np.ndarray,
    fleets: Mapping[str, np.ndarray],
    capacity_rps: float,
    *,
    title: str | None = None,
):
    """A day of traffic (left axis, requests/s) and the replicas of each fleet (right axis);
    ``capacity_rps`` converts replicas to the capacity they provide (dashed)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9.0, 3.8))
    hours = np.arange(len(traffic_rps)) / 60
    axis.plot(hours, traffic_rps, color="black", lw=1, label="traffic")
    for name, replicas in fleets.items():
        axis.plot(hours, np.asarray(replicas) * capacity_rps, ls="--", label=f"capacity: {name}")
    axis.set_xlabel("hour of the day")
    axis.set_ylabel("requests/s")
    axis.grid(alpha=0.3)
    right = axis.twinx()
    right.set_ylim(np.array(axis.get_ylim()) / capacity_rps)
    right.set_ylabel("replicas")
    axis.legend(fontsize=8, loc="upper left")
    return _finish(figure, axis, title)


# Chapter 7: continual learning -----------------------------------------------------------------


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
    plt = _pyplot()
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
        axis.set_xlabel("after training on period")
        axis.set_ylim(-3, 103)
        axis.grid(alpha=0.3)
    axes.flat[0].set_ylabel("test accuracy on the period (%)")
    axes.flat[-1].legend(fontsize=7, title="period's topics", title_fontsize=7, loc="lower left")
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
    plt = _pyplot()
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
        f"training compute (% of {reference})" if reference is not None else "training FLOPs"
    )
    if reference is None:
        axis.set_xscale("log")
    axis.set_ylabel("final accuracy on all topics (%)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _finish(figure, axis, title)


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
    plt = _pyplot()
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
        axis.axhline(100 * claimed, color="crimson", linestyle=":", label="the article's figure")
    axis.set_xlabel("old data / new data at the update")
    axis.set_ylabel("compute saved vs retraining (%)")
    axis.set_ylim(0, 100)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _finish(figure, axis, title)


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
    plt = _pyplot()
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
    axis.set_xlabel("accuracy on the newest period (%)")
    axis.set_ylabel("mean accuracy on the older periods (%)")
    axis.set_xlim(-3, 103)
    axis.set_ylim(-3, 103)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _finish(figure, axis, title)


# Chapter 6: industry cases ----------------------------------------------------------------------


def event_timelines(
    users: Mapping[str, Sequence[str]],
    event_names: Sequence[str],
    *,
    session_starts: Mapping[str, Sequence[bool]] | None = None,
    title: str | None = None,
):
    """Users' event sequences as rows of coloured squares, one colour per event type.

    ``users``: ``{row label: the user's events in order}``; ``event_names``: every event type
    (the legend, in this order). ``session_starts`` (optional): ``{row label: (events,)
    bools}``, True for an event that starts a new session (after a long pause), drawn after a
    black bar.
    """
    if not users:
        raise ValueError("expected at least one user's events")
    unknown = sorted({event for events in users.values() for event in events} - set(event_names))
    if unknown:
        raise ValueError(f"events {unknown} are not among event_names {list(event_names)}")
    plt = _pyplot()
    longest = max(len(events) for events in users.values())
    figure, axis = plt.subplots(figsize=(min(2.5 + 0.28 * longest, 16.0), 0.9 + 0.5 * len(users)))
    colors = plt.get_cmap("tab20").colors
    color_of = {name: colors[index % len(colors)] for index, name in enumerate(event_names)}
    for row, (label, events) in enumerate(users.items()):
        starts = session_starts.get(label) if session_starts else None
        if starts is not None and len(starts) != len(events):
            raise ValueError(
                f"{label!r}: expected one session-start flag per event ({len(events)}), "
                f"got {len(starts)}"
            )
        for position, event in enumerate(events):
            axis.add_patch(
                plt.Rectangle((position, -row - 0.4), 0.9, 0.8, facecolor=color_of[event])
            )
            if starts is not None and starts[position] and position:
                axis.plot([position - 0.05] * 2, [-row - 0.5, -row + 0.5], color="black", lw=2)
    axis.set_xlim(-0.2, longest + 0.2)
    axis.set_ylim(-len(users) + 0.4, 0.6)
    axis.set_yticks([-row for row in range(len(users))], list(users))
    axis.set_xlabel("event number")
    for spine in ("top", "right", "left"):
        axis.spines[spine].set_visible(False)
    handles = [plt.Rectangle((0, 0), 1, 1, color=color_of[name]) for name in event_names]
    axis.legend(
        handles,
        event_names,
        fontsize=7,
        ncol=min(len(event_names), 6),
        loc="upper left",
        bbox_to_anchor=(0.0, -0.25 if len(users) > 3 else -0.45),
        frameon=False,
    )
    return _finish(figure, axis, title)


def detection_curves(
    labels: np.ndarray,
    scores: Mapping[str, np.ndarray],
    *,
    operating_points: Mapping[str, Sequence[object]] | None = None,
    point_names: Sequence[str] = (),
    title: str | None = None,
):
    """Two panels for fraud detectors: the ROC curve (recall against the false-positive rate,
    log scale) and the precision-recall curve, one line per detector.

    ``labels``: 0/1 ``(n,)``; ``scores``: ``{detector: (n,) scores}``. ``operating_points``:
    ``{detector: [points]}``, objects with ``recall``, ``false_positive_rate`` and
    ``precision`` (fractions), drawn as markers on both panels (the k-th point of every
    detector with the k-th marker, named by ``point_names``).
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    if not scores:
        raise ValueError("expected at least one detector's scores")
    plt = _pyplot()
    figure, (roc, pr) = plt.subplots(1, 2, figsize=(11.0, 4.0))
    markers = ("o", "s", "^", "D")
    truth = np.asarray(labels)
    for name, values in scores.items():
        false_positive_rate, recall, _ = roc_curve(truth, np.asarray(values))
        (line,) = roc.plot(false_positive_rate, recall, label=name)
        precision, recall_pr, _ = precision_recall_curve(truth, np.asarray(values))
        pr.plot(recall_pr, precision, color=line.get_color(), label=name)
        for index, point in enumerate((operating_points or {}).get(name, ())):
            style = {"color": line.get_color(), "marker": markers[index % len(markers)], "ms": 7}
            roc.plot(point.false_positive_rate, point.recall, linestyle="none", **style)
            pr.plot(point.recall, point.precision, linestyle="none", **style)
    for index, point_name in enumerate(point_names):
        pr.plot([], [], linestyle="none", color="grey", marker=markers[index], label=point_name)
    roc.set_xscale("symlog", linthresh=1e-3)
    roc.set_xlim(0, 1)
    roc.set_xlabel("false-positive rate (share of legitimate users alerted)")
    roc.set_ylabel("recall (share of frauds caught)")
    pr.set_xlabel("recall")
    pr.set_ylabel("precision (share of alerts that are fraud)")
    for axis in (roc, pr):
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3, which="both")
    roc.legend(fontsize=8, loc="lower right")
    pr.legend(fontsize=8, loc="lower left")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def gain_by_mix(
    shares: Sequence[float],
    false_positive_change: Mapping[str, Sequence[float]],
    recall_gain: Mapping[str, Sequence[float]],
    *,
    article: tuple[float, float] | None = None,
    xlabel: str = "share of the frauds visible only in the order of events",
    title: str | None = None,
):
    """How a detector's advantage over a baseline depends on the fraud mix: two panels against
    ``shares`` (fractions), the change of false positives at a fixed recall (%) and the recall
    gain at a fixed false-positive rate (percentage points), one line per comparison.
    ``article``: (false-positive change, recall gain) drawn as dashed reference lines.
    """
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11.0, 3.8))
    x = 100 * np.asarray(shares, dtype=np.float64)
    for axis, series in ((left, false_positive_change), (right, recall_gain)):
        for name, values in series.items():
            if len(values) != len(x):
                raise ValueError(
                    f"{name!r}: expected {len(x)} values (one per share), got {len(values)}"
                )
            axis.plot(x, values, marker="o", label=name)
        axis.axhline(0, color="black", lw=0.8)
        axis.set_xlabel(f"{xlabel} (%)")
        axis.grid(alpha=0.3)
    if article is not None:
        left.axhline(article[0], color="crimson", ls="--", label=f"article: {article[0]:+g}%")
        right.axhline(article[1], color="crimson", ls="--", label=f"article: {article[1]:+g}")
    left.set_ylabel("change of false positives at equal recall (%)")
    right.set_ylabel("recall gain at equal false-positive rate (pp)")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def diagnosis_examples(
    images: np.ndarray,
    notes: Sequence[str],
    labels: Sequence[str],
    *,
    columns: int = 5,
    title: str | None = None,
):
    """Records of a note and an image: each image with its diagnosis above and its note below.

    ``images``: ``(n, side, side)`` or ``(n, 1, side, side)``; ``notes``, ``labels``: ``n``
    strings.
    """
    import textwrap

    images = np.asarray(images, dtype=np.float32)
    images = images.reshape(len(images), images.shape[-2], images.shape[-1])
    if not len(images) == len(notes) == len(labels):
        raise ValueError(
            f"expected one note and one label per image, got {len(images)} images, "
            f"{len(notes)} notes, {len(labels)} labels"
        )
    rows = max(1, -(-len(images) // columns))
    plt = _pyplot()
    figure, axes = plt.subplots(rows, columns, figsize=(2.3 * columns, 3.2 * rows), squeeze=False)
    low, high = np.percentile(images, [1, 99])
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= len(images):
            continue
        axis.imshow(images[index], cmap="gray", vmin=low, vmax=high)
        axis.set_title(labels[index], fontsize=9)
        axis.text(
            0.5,
            -0.05,
            textwrap.fill(notes[index], 24),
            transform=axis.transAxes,
            ha="center",
            va="top",
            fontsize=7,
            family="monospace",
        )
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def accuracy_by_class(
    accuracies: Mapping[str, Mapping[str, float]],
    *,
    reference: float | None = None,
    reference_label: str = "",
    title: str | None = None,
):
    """Grouped bars: the accuracy (fraction) of several models on each class and overall.

    ``accuracies``: ``{model: {class name: accuracy}}``, the same classes for every model (put
    an ``"overall"`` entry last to show it); ``reference``: a dashed horizontal line (a
    fraction), e.g. a figure quoted for the overall accuracy.
    """
    if not accuracies:
        raise ValueError("expected at least one model's accuracies")
    models = list(accuracies)
    classes = list(accuracies[models[0]])
    for model in models:
        if list(accuracies[model]) != classes:
            raise ValueError(
                f"{model!r} has classes {list(accuracies[model])}, expected {classes} as for "
                f"{models[0]!r}"
            )
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(2.0 + 1.3 * len(classes), 3.8))
    width = 0.8 / len(models)
    positions = np.arange(len(classes))
    for index, model in enumerate(models):
        values = [100 * accuracies[model][name] for name in classes]
        offset = (index - (len(models) - 1) / 2) * width
        axis.bar(positions + offset, values, width, label=model)
    if reference is not None:
        axis.axhline(100 * reference, color="crimson", ls="--", label=reference_label or None)
    axis.set_xticks(positions, classes, rotation=15)
    axis.set_ylabel("accuracy (%)")
    axis.set_ylim(0, 105)
    axis.grid(alpha=0.3, axis="y")
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _finish(figure, axis, title)


# Chapter 8: multimodal learning -----------------------------------------------------------------


def similarity_matrices(
    matrices: Mapping[str, np.ndarray],
    *,
    xlabel: str = "image",
    ylabel: str = "caption",
    title: str | None = None,
):
    """Side-by-side heatmaps of ``(captions, images)`` similarity matrices, one per name; a
    bright diagonal means each caption is most similar to its own image."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(matrices), figsize=(3.6 * len(matrices), 3.4), squeeze=False)
    for axis, (name, matrix) in zip(axes.flat, matrices.items(), strict=True):
        shown = axis.imshow(np.asarray(matrix), cmap="viridis")
        axis.set_title(name, fontsize=10)
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.04)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def retrieval_results(
    queries: Sequence[str], images: np.ndarray, relevant: np.ndarray, *, title: str | None = None
):
    """One row per text query: its top-ranked images ``(queries, k, side, side)``, left to right,
    framed green where the image matches the query and red where it does not."""
    images = np.asarray(images, dtype=np.float32)
    rows, columns = images.shape[:2]
    plt = _pyplot()
    figure, axes = plt.subplots(
        rows, columns, figsize=(columns * 0.9 + 2.6, rows * 1.0), squeeze=False
    )
    for row in range(rows):
        for column in range(columns):
            axis = axes[row, column]
            axis.imshow(
                images[row, column].reshape(images.shape[-2], images.shape[-1]), cmap="gray_r"
            )
            axis.set_xticks([])
            axis.set_yticks([])
            color = "seagreen" if relevant[row][column] else "crimson"
            for spine in axis.spines.values():
                spine.set_color(color)
                spine.set_linewidth(2.5)
        axes[row, 0].set_ylabel(queries[row], rotation=0, ha="right", va="center", fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure
