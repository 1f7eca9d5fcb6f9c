"""Chapter 8 figures: image-text similarity matrices and retrieval results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from handbook.i18n import N_, _
from handbook.plots.style import pyplot


def similarity_matrices(
    matrices: Mapping[str, np.ndarray],
    *,
    xlabel: str = N_("image"),
    ylabel: str = N_("caption"),
    title: str | None = None,
):
    """Side-by-side heatmaps of ``(captions, images)`` similarity matrices, one per name; a
    bright diagonal means each caption is most similar to its own image."""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(matrices), figsize=(3.6 * len(matrices), 3.4), squeeze=False)
    for axis, (name, matrix) in zip(axes.flat, matrices.items(), strict=True):
        shown = axis.imshow(np.asarray(matrix), cmap="viridis")
        axis.set_title(name, fontsize=10)
        axis.set_xlabel(_(xlabel))
        axis.set_ylabel(_(ylabel))
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
    plt = pyplot()
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
