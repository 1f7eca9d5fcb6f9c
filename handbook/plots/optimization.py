"""Chapter 2 figures: learning-rate schedules and run-to-run spread across seeds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from handbook.i18n import N_, _
from handbook.plots.style import finish, pyplot


def learning_rate_schedules(
    schedules: Mapping[str, Sequence[float]],
    *,
    xlabel: str = N_("epoch"),
    title: str | None = None,
):
    """Learning rate against step for several schedules, one line each.

    ``schedules``: name -> learning rate of each step ``(steps,)``, starting at step 0.
    """
    if not schedules:
        raise ValueError("expected at least one schedule to draw")
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7.0, 3.6))
    for name, values in schedules.items():
        axis.plot(np.arange(len(values)), values, marker="o", markersize=2.5, label=name)
    axis.set_xlabel(_(xlabel))
    axis.set_ylabel(_("learning rate"))
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return finish(figure, axis, title)


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
    plt = pyplot()
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
    return finish(figure, axis, title)
