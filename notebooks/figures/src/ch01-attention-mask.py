"""Chapter 1: scaled dot-product attention with its causal mask, on five tokens.

Top: the computation and the shape of each tensor. Bottom: the numbers of one small example
(seeded), from the scaled scores Q K^T / sqrt(d_k) through the causal mask (-inf above the
diagonal: no query sees a later key) to the softmax of each row, whose weights sum to 1.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

TOKENS = ["<bos>", "drei", "hundert", "zwei", "und"]  # dreihundertzweiundvierzig, shifted right
D_K = 8
BLUE, ORANGE, GREY = "#3b75af", "#b06a10", "#4a5a70"


def example() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scaled scores (L, L), masked scores (-inf above the diagonal) and softmax weights."""
    rng = np.random.default_rng(1)
    q = rng.standard_normal((len(TOKENS), D_K))
    k = rng.standard_normal((len(TOKENS), D_K))
    scores = q @ k.T / np.sqrt(D_K)
    allowed = np.tril(np.ones_like(scores, dtype=bool))
    masked = np.where(allowed, scores, -np.inf)
    weights = np.exp(masked - masked.max(axis=1, keepdims=True))
    return scores, masked, weights / weights.sum(axis=1, keepdims=True)


def _box(axis, x, y, text, color, width=0.16):
    axis.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - 0.2),
            width,
            0.4,
            boxstyle="round,pad=0.01,rounding_size=0.02",
            facecolor="white",
            edgecolor=color,
            linewidth=1.3,
        )
    )
    axis.text(x, y, text, ha="center", va="center", fontsize=11, color="#1d2733")


def _arrow(axis, start, end):
    axis.add_patch(
        FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color=GREY, lw=1.2)
    )


def _matrix(axis, values, title, fmt, cmap, vmin, vmax):
    shown = np.where(np.isfinite(values), values, np.nan)
    axis.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            value = values[i, j]
            if np.isfinite(value):
                dark = cmap == "Oranges" and value > 0.6 or cmap != "Oranges" and abs(value) > 1.8
                shown_value = float(format(value, fmt)) + 0.0  # no "-0.0"
                text, color = format(shown_value, fmt), "white" if dark else "#1d2733"
            else:
                text, color = "−∞", "#9a9a9a"
                axis.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, color="#eeeeee"))
            axis.text(j, i, text, ha="center", va="center", fontsize=10, color=color)
    axis.set_xticks(range(len(TOKENS)), TOKENS, rotation=45, ha="right", fontsize=10)
    axis.set_yticks(range(len(TOKENS)), TOKENS, fontsize=10)
    axis.set_xlabel("key j", fontsize=11)
    axis.set_title(title, fontsize=11)
    axis.tick_params(length=0)


def draw() -> plt.Figure:
    figure = plt.figure(figsize=(8.0, 4.9), dpi=100)
    flow = figure.add_axes([0.02, 0.74, 0.96, 0.26])
    flow.set_xlim(0, 1)
    flow.set_ylim(0, 1)
    flow.axis("off")
    steps = [
        (0.09, "Q (L, d_k)\nK (S, d_k)", GREY),
        (0.29, "Q Kᵀ / √d_k\n(L, S)", BLUE),
        (0.49, "causal mask\n−∞ where j > i", ORANGE),
        (0.69, "softmax\nover keys j", BLUE),
        (0.89, "weights · V\n(L, d_v)", GREY),
    ]
    for index, (x, text, color) in enumerate(steps):
        _box(flow, x, 0.68, text, color)
        if index:
            _arrow(flow, (steps[index - 1][0] + 0.08, 0.68), (x - 0.08, 0.68))
    flow.text(
        0.5,
        0.1,
        "one row per query i, one column per key j; each row of weights sums to 1",
        ha="center",
        va="center",
        fontsize=11,
        color="#1d2733",
    )
    scores, masked, weights = example()
    panels = [
        (scores, "1. scaled scores", ".1f", "RdBu_r", -2.5, 2.5),
        (masked, "2. causal mask applied", ".1f", "RdBu_r", -2.5, 2.5),
        (weights, "3. softmax: weights", ".2f", "Oranges", 0.0, 1.0),
    ]
    for index, (values, title, fmt, cmap, vmin, vmax) in enumerate(panels):
        axis = figure.add_axes([0.115 + index * 0.305, 0.12, 0.26, 0.5])
        _matrix(axis, values, title, fmt, cmap, vmin, vmax)
        if index == 0:
            axis.set_ylabel("query i", fontsize=11)
        else:
            axis.set_yticklabels([])
    return figure
