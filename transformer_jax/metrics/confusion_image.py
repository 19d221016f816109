"""The confusion matrix as an RGB image (matplotlib, off-screen) for TensorBoard."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_image(matrix: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """uint8 [H, W, 3]: `matrix` (int [C, C], rows true, columns predicted) as a heat map,
    each row shaded by its share of the row's examples, counts written in the cells (up to
    30 classes) and class names on the axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix, np.int64)
    c = len(names)
    size = min(4 + 0.4 * c, 16)
    figure = Figure(figsize=(size, size), dpi=80)
    canvas = FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    shares = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)  # [C, C] recall per row
    ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set(xticks=range(c), yticks=range(c), xlabel="predicted", ylabel="true",
           title=f"confusion matrix ({int(matrix.sum()):,} examples)")
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_yticklabels(names, fontsize=7)
    if c <= 30:
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=6,
                        color="white" if shares[i, j] > 0.5 else "black")
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
