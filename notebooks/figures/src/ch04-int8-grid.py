"""Chapter 4: the INT8 grid over a weight histogram, one scale per tensor against one per channel.

A weight matrix with two output channels of very different ranges (seeded, synthetic): with one
scale for the whole tensor, the narrow channel falls on a handful of the 255 levels; with one
scale per channel, each channel spreads over all of them.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

INT8_MAX = 127
WIDE, NARROW = "#4a6fa5", "#d9822b"


def _levels(scale: float) -> np.ndarray:
    return scale * np.arange(-INT8_MAX, INT8_MAX + 1)


def _panel(axis, channels, grids, window, title):
    bins = np.linspace(-window, window, 61)
    for values, color, name in channels:
        axis.hist(values, bins=bins, color=color, alpha=0.55, label=name, density=True)
    top = axis.get_ylim()[1]
    for row, (levels, color) in enumerate(grids):
        shown = levels[np.abs(levels) <= window]
        low, high = -0.06 * top * (row + 1), -0.06 * top * row - 0.01 * top
        axis.vlines(shown, low, high, color=color, linewidth=0.6)
    axis.set_ylim(-0.06 * top * len(grids) - 0.02 * top, top)
    axis.set_xlim(-window, window)
    axis.set_yticks([])
    axis.set_title(title, fontsize=11)
    axis.tick_params(labelsize=9)


def draw():
    rng = np.random.default_rng(0)
    wide = rng.normal(0.0, 0.4, 4000).clip(-1.5, 1.5)
    narrow = rng.normal(0.0, 0.025, 4000).clip(-0.09, 0.09)
    tensor_scale = max(np.abs(wide).max(), np.abs(narrow).max()) / INT8_MAX
    wide_scale, narrow_scale = np.abs(wide).max() / INT8_MAX, np.abs(narrow).max() / INT8_MAX
    narrow_levels_used = len(np.unique(np.round(narrow / tensor_scale)))

    figure, axes = plt.subplots(2, 2, figsize=(8, 5.2), gridspec_kw={"width_ratios": [1.4, 1]})
    per_tensor = [(_levels(tensor_scale), "#222222")]
    per_channel = [(_levels(wide_scale), WIDE), (_levels(narrow_scale), NARROW)]
    both = [(wide, WIDE, "wide channel"), (narrow, NARROW, "narrow channel")]
    zoomed = both[1:]
    _panel(axes[0, 0], both, per_tensor, 1.6, "per tensor: one grid (255 levels)")
    _panel(axes[0, 1], zoomed, per_tensor, 0.1, "zoom on the narrow channel")
    _panel(axes[1, 0], both, per_channel, 1.6, "per channel: one grid each")
    _panel(axes[1, 1], zoomed, per_channel[1:], 0.1, "zoom on the narrow channel")
    axes[0, 0].legend(fontsize=9, loc="upper left", frameon=False)
    axes[0, 1].text(
        0.02,
        0.95,
        f"step s = {tensor_scale:.4f}\nthe narrow channel\nuses {narrow_levels_used} levels",
        transform=axes[0, 1].transAxes,
        fontsize=9,
        va="top",
    )
    axes[1, 1].text(
        0.02,
        0.95,
        f"its own step\ns = {narrow_scale:.5f}:\nall 255 levels",
        transform=axes[1, 1].transAxes,
        fontsize=9,
        va="top",
    )
    for axis in axes[1]:
        axis.set_xlabel("weight value (ticks below: the INT8 grid, q × s)", fontsize=9)
    figure.tight_layout()
    return figure
