"""What every figure shares: matplotlib imported on first use, titles and layout."""

from __future__ import annotations


def pyplot():
    import matplotlib.pyplot as plt

    return plt


def finish(figure, axis, title: str | None):
    """Title the axis (if a title is given), tighten the layout, return the figure."""
    if title:
        axis.set_title(title)
    figure.tight_layout()
    return figure
