"""Chapter 10 figures: a sweep compared through MLflow, Trainer vs handbook.train, DDP
throughput, and the iteration loop with and without the toolchain (C23)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from handbook.i18n import _
from handbook.plots.style import finish, pyplot


def sweep_comparison(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    *,
    metric: str = "validation accuracy",
    title: str | None = None,
):
    """Left: each run's ``metric`` per epoch; right: its last value, best first.

    ``curves``: ``{run name: (steps, values)}`` as read back from MLflow (values are fractions).
    """
    if not curves:
        raise ValueError("expected at least one run to compare, got none")
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, (steps, values) in curves.items():
        left.plot(steps, [100 * value for value in values], marker="o", markersize=3, label=name)
    # the default's labels as whole messages, so that an English figure translates label by label
    if metric == "validation accuracy":
        per_epoch, final = _("validation accuracy (%)"), _("final validation accuracy (%)")
    else:
        per_epoch = _("{label} (%)").format(label=_(metric))
        final = _("final {metric} (%)").format(metric=_(metric))
    left.set_xlabel(_("epoch"))
    left.set_ylabel(per_epoch)
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    ranked = sorted(curves.items(), key=lambda item: item[1][1][-1], reverse=True)
    names = [name for name, _curve in ranked]
    finals = [100 * values[-1] for _name, (_steps, values) in ranked]
    bars = right.barh(names[::-1], finals[::-1], color="tab:blue")
    right.bar_label(bars, fmt="%.1f", fontsize=8)
    right.set_xlabel(final)
    right.set_xlim(0, 105)
    return finish(figure, right, title)


def side_by_side(
    rows: Mapping[str, Mapping[str, float]],
    *,
    title: str | None = None,
):
    """One bar panel per measurement (``"test accuracy (%)"``, ``"wall time (s)"``, ...), one
    bar per way of doing it. ``rows``: ``{way: {measurement: value}}``, the same measurements
    for every way."""
    ways = list(rows)
    if not ways:
        raise ValueError("expected at least one row, got none")
    measurements = list(rows[ways[0]])
    for way in ways:
        if list(rows[way]) != measurements:
            raise ValueError(f"{way!r} has measurements {list(rows[way])}, expected {measurements}")
    plt = pyplot()
    figure, axes = plt.subplots(1, len(measurements), figsize=(3.2 * len(measurements), 3.0))
    axes = [axes] if len(measurements) == 1 else list(axes)
    colors = ["tab:orange", "tab:blue", "tab:green", "tab:red"]
    for axis, measurement in zip(axes, measurements, strict=True):
        values = [rows[way][measurement] for way in ways]
        bars = axis.bar(ways, values, color=colors[: len(ways)])
        axis.bar_label(bars, fmt="%.3g", fontsize=8)
        axis.set_title(measurement, fontsize=10)
        axis.margins(y=0.15)
        axis.tick_params(axis="x", labelsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def iteration_loops(
    loops: Mapping[str, Sequence[tuple[str, float]]],
    *,
    claimed_ratio: float | None = None,
    title: str | None = None,
):
    """Each loop as one horizontal bar of its steps (seconds, on a linear scale), titled with the
    ratio of the longest loop to the shortest and the article's ratio.

    ``loops``: ``{loop name: [(step name, seconds), ...]}``.
    """
    if not loops:
        raise ValueError("expected at least one loop, got none")
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(9, 0.9 + 0.8 * len(loops)))
    palette = plt.get_cmap("tab20").colors
    colors: dict[str, tuple] = {}
    for row, steps in enumerate(loops.values()):
        left = 0.0
        for step, seconds in steps:
            new = step not in colors
            color = colors.setdefault(step, palette[len(colors) % len(palette)])
            axis.barh(
                row, seconds, left=left, color=color, edgecolor="white", label=step if new else None
            )
            left += seconds
        axis.text(left, row, f"  {left:.0f} s", va="center", fontsize=9)
    axis.set_yticks(range(len(loops)), list(loops))
    axis.invert_yaxis()
    axis.set_xlabel(_("seconds from a one-line change to a verified result"))
    axis.legend(fontsize=7, loc="lower right")
    totals = [sum(seconds for _step, seconds in steps) for steps in loops.values()]
    measured = max(totals) / max(min(totals), 1e-9)
    note = _("measured ratio {measured:.1f}x").format(measured=measured)
    if claimed_ratio is not None:
        note = _(
            "measured ratio {measured:.1f}x; the article: {claimed:.1f}x (two weeks to three days)"
        ).format(measured=measured, claimed=claimed_ratio)
    axis.set_title(note, fontsize=9)
    axis.margins(x=0.12)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure
