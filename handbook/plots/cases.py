"""Chapter 6 figures: fraud timelines and operating curves, gains by fraud mix, diagnosis
examples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from handbook.i18n import _
from handbook.plots.style import finish, pyplot

#: The x axis of :func:`gain_by_mix` unless the caller names it (in percent on the axis).
_MIX_SHARE = "share of the frauds visible only in the order of events"


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
    plt = pyplot()
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
    axis.set_xlabel(_("event number"))
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
    return finish(figure, axis, title)


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
    plt = pyplot()
    figure, (roc, pr) = plt.subplots(1, 2, figsize=(11.0, 4.0))
    markers = ("o", "s", "^", "D")
    truth = np.asarray(labels)
    for name, values in scores.items():
        false_positive_rate, recall, _thresholds = roc_curve(truth, np.asarray(values))
        (line,) = roc.plot(false_positive_rate, recall, label=name)
        precision, recall_pr, _thresholds = precision_recall_curve(truth, np.asarray(values))
        pr.plot(recall_pr, precision, color=line.get_color(), label=name)
        for index, point in enumerate((operating_points or {}).get(name, ())):
            style = {"color": line.get_color(), "marker": markers[index % len(markers)], "ms": 7}
            roc.plot(point.false_positive_rate, point.recall, linestyle="none", **style)
            pr.plot(point.recall, point.precision, linestyle="none", **style)
    for index, point_name in enumerate(point_names):
        pr.plot([], [], linestyle="none", color="grey", marker=markers[index], label=point_name)
    roc.set_xscale("symlog", linthresh=1e-3)
    roc.set_xlim(0, 1)
    roc.set_xlabel(_("false-positive rate (share of legitimate users alerted)"))
    roc.set_ylabel(_("recall (share of frauds caught)"))
    pr.set_xlabel(_("recall"))
    pr.set_ylabel(_("precision (share of alerts that are fraud)"))
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
    xlabel: str = _MIX_SHARE,
    title: str | None = None,
):
    """How a detector's advantage over a baseline depends on the fraud mix: two panels against
    ``shares`` (fractions), the change of false positives at a fixed recall (%) and the recall
    gain at a fixed false-positive rate (percentage points), one line per comparison.
    ``article``: (false-positive change, recall gain) drawn as dashed reference lines.
    """
    plt = pyplot()
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
        # the default as one whole message, so that an English figure translates label by label
        axis.set_xlabel(
            _("share of the frauds visible only in the order of events (%)")
            if xlabel == _MIX_SHARE
            else _("{label} (%)").format(label=_(xlabel))
        )
        axis.grid(alpha=0.3)
    if article is not None:
        change, gain = article
        left.axhline(
            change, color="crimson", ls="--", label=_("article: {change:+g}%").format(change=change)
        )
        right.axhline(
            gain, color="crimson", ls="--", label=_("article: {gain:+g}").format(gain=gain)
        )
    left.set_ylabel(_("change of false positives at equal recall (%)"))
    right.set_ylabel(_("recall gain at equal false-positive rate (pp)"))
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
    plt = pyplot()
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
    plt = pyplot()
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
    axis.set_ylabel(_("accuracy (%)"))
    axis.set_ylim(0, 105)
    axis.grid(alpha=0.3, axis="y")
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return finish(figure, axis, title)
