"""Chapter 5: when the micro-batcher runs a batch (full, or its oldest request waited long enough).

A timeline of three batches with max_batch_size = 4 and max_wait_ms = 5: a burst that fills a
batch at once, two requests that run together when the first has waited 5 ms, and a request
alone that waits 5 ms for company that never comes. The batches are computed by the flush rule
below from the arrival times, not placed by hand.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

MAX_BATCH_SIZE = 4
MAX_WAIT_MS = 5.0
MODEL_MS = 2.0  # one batch's model call, drawn after its flush
ARRIVALS_MS = [0.0, 0.5, 0.9, 1.3, 6.0, 8.5, 17.0]


def batches() -> list[tuple[list[float], float, str]]:
    """(arrival times, flush time, reason) of each batch, by the batcher's rule."""
    result, pending = [], []
    for arrival in ARRIVALS_MS + [float("inf")]:
        while pending and (len(pending) >= MAX_BATCH_SIZE or arrival - pending[0] >= MAX_WAIT_MS):
            if len(pending) >= MAX_BATCH_SIZE:
                result.append((pending, pending[-1], f"full: {MAX_BATCH_SIZE} requests"))
            else:
                waited = pending[0] + MAX_WAIT_MS
                result.append((pending, waited, f"oldest waited {MAX_WAIT_MS:g} ms"))
            pending = []
        if arrival != float("inf"):
            pending = pending + [arrival]
    return result


def draw() -> plt.Figure:
    figure, axis = plt.subplots(figsize=(8.0, 3.0), dpi=100)
    colors = ["#3b75af", "#c0672b", "#4f9a5a"]
    for index, (arrivals, flush, reason) in enumerate(batches()):
        color = colors[index % len(colors)]
        axis.add_patch(
            FancyBboxPatch(
                (arrivals[0], 0.55),
                flush - arrivals[0] + 0.05,
                0.9,
                boxstyle="round,pad=0.1",
                facecolor=color,
                alpha=0.12,
                edgecolor=color,
            )
        )
        for arrival in arrivals:
            axis.annotate(
                "",
                xy=(arrival, 0.65),
                xytext=(arrival, 1.35),
                arrowprops={"arrowstyle": "->", "color": color, "lw": 1.6},
            )
        axis.add_patch(
            FancyBboxPatch(
                (flush, -0.35),
                MODEL_MS,
                0.5,
                boxstyle="round,pad=0.05",
                facecolor=color,
                alpha=0.85,
                edgecolor=color,
            )
        )
        axis.text(
            flush + MODEL_MS + 0.3,
            -0.1,
            f"batch of {len(arrivals)}",
            ha="left",
            va="center",
            fontsize=11,
            color=color,
        )
        axis.text(
            (arrivals[0] + flush) / 2 + 0.02,
            1.72,
            reason,
            ha="center",
            va="bottom",
            fontsize=11,
            color=color,
        )
    axis.text(-0.6, 1.0, "requests\narrive", ha="right", va="center", fontsize=11)
    axis.text(-0.6, -0.1, "model\ncalls", ha="right", va="center", fontsize=11)
    axis.set_xlim(-4.5, 29)
    axis.set_ylim(-0.7, 2.3)
    axis.set_yticks([])
    axis.set_xlabel("time (ms)", fontsize=11)
    axis.tick_params(labelsize=10)
    for side in ("left", "right", "top"):
        axis.spines[side].set_visible(False)
    axis.set_title(
        f"Micro-batching with max_batch_size = {MAX_BATCH_SIZE}, max_wait_ms = {MAX_WAIT_MS:g}",
        fontsize=12,
    )
    figure.tight_layout()
    return figure
