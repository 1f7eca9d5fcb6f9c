"""Chapter 9 figures: accuracy under attack, selection rates by group, attributions, saliency."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from handbook.i18n import N_, _
from handbook.plots.style import finish, pyplot


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
    plt = pyplot()
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
    axis.set_xlabel(_("ε (largest change of any pixel, pixels scaled to [0, 1])"))
    axis.set_ylabel(_("accuracy under attack (%)"))
    axis.set_ylim(0, 102)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return finish(figure, axis, title)


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
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(1.2 + 1.45 * len(rules), 3.8))
    width = 0.8 / max(len(groups), 1)
    positions = np.arange(len(rules))
    for index, group in enumerate(groups):
        values = [100 * rates[rule].get(group, np.nan) for rule in rules]
        offset = (index - (len(groups) - 1) / 2) * width
        axis.bar(positions + offset, values, width, label=_("group {group}").format(group=group))
    for position, rule in zip(positions, rules, strict=True):
        values = 100 * np.array(list(rates[rule].values()))
        axis.text(
            position,
            values.max() + 2,
            _("gap {gap:.1f} pp").format(gap=values.max() - values.min()),
            ha="center",
            fontsize=8,
        )
        if four_fifths:
            axis.plot(
                [position - 0.4, position + 0.4],
                [0.8 * values.max()] * 2,
                color="crimson",
                linestyle=":",
                label=_("4/5 of the highest rate") if position == 0 else None,
            )
    axis.set_xticks(positions, rules, rotation=20, ha="right", fontsize=8)
    axis.set_ylabel(_("pass rate (%)"))
    axis.set_ylim(0, 100)
    axis.legend(fontsize=8, loc="upper right")
    return finish(figure, axis, title)


def feature_attributions(
    importances: Mapping[str, Mapping[str, float]],
    *,
    xlabel: str = N_("mean |attribution| (log-odds)"),
    highlight: Sequence[str] = (),
    title: str | None = None,
):
    """How much each feature moves each model's output: horizontal bars grouped by feature.

    ``importances``: ``{model: {feature: value}}`` (same features for every model);
    features named in ``highlight`` (a protected attribute and its proxy) get red labels.
    """
    models = list(importances)
    features = list(next(iter(importances.values()))) if models else []
    plt = pyplot()
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
    axis.set_xlabel(_(xlabel))
    axis.grid(axis="x", alpha=0.3)
    axis.legend(fontsize=8)
    return finish(figure, axis, title)


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
    plt = pyplot()
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
            axes[row, 0].set_title(_("input"), fontsize=9)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure
