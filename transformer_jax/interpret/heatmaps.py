"""PNG heatmaps of attention probabilities: one grid of heads per layer, tokens on the axes.

Rows are the attending (query) tokens, columns the attended (key) tokens; for cross-attention
rows are target tokens and columns source tokens.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import numpy as np

from transformer_jax.errors import UserError

CELL_INCHES = 3.2  # one head's panel
DPI = 100
_MAX_COLUMNS = 4


def figure_size(num_heads: int) -> tuple[int, int]:
    """(width, height) in pixels of a layer's PNG with `num_heads` panels."""
    cols = min(num_heads, _MAX_COLUMNS)
    rows = math.ceil(num_heads / cols)
    return round(cols * CELL_INCHES * DPI), round(rows * CELL_INCHES * DPI)


def pick(requested: Sequence[int] | None, count: int, what: str) -> list[int]:
    """The requested layer/head indices (all when None), checked against `count`."""
    if not requested:
        return list(range(count))
    bad = [i for i in requested if not 0 <= i < count]
    if bad:
        raise UserError(f"--{what}={','.join(map(str, requested))}: the model has {count} "
                        f"{what} (0..{count - 1})")
    return list(requested)


def write_layer(probs: np.ndarray, rows: Sequence[str], cols: Sequence[str],
                path: pathlib.Path, title: str, heads: Sequence[int]) -> pathlib.Path:
    """Writes one layer's heads as a grid of heatmaps.

    Args:
      probs: [N, T, S] one example's probabilities of one layer.
      rows: T query token strings; cols: S key token strings.
      path: the PNG to write.
      title: the figure title (e.g. "decoder/self_attention layer 0").
      heads: which of the N heads to draw.
    """
    cols_n = min(len(heads), _MAX_COLUMNS)
    rows_n = math.ceil(len(heads) / cols_n)
    width, height = figure_size(len(heads))
    fig, axes = plt.subplots(rows_n, cols_n, figsize=(width / DPI, height / DPI), dpi=DPI,
                             squeeze=False)
    font = max(3.0, min(8.0, 200.0 / max(len(rows), len(cols))))
    for ax in axes.flat[len(heads):]:
        ax.axis("off")
    for ax, head in zip(axes.flat, heads, strict=False):
        ax.imshow(probs[head], cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto",
                  interpolation="nearest")
        ax.set_title(f"head {head}", fontsize=8)
        ax.set_xticks(range(len(cols)), list(cols), rotation=90, fontsize=font)
        ax.set_yticks(range(len(rows)), list(rows), fontsize=font)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def write_heatmaps(maps: dict[str, np.ndarray], tokens: dict[str, Sequence[str]],
                   out_dir: str | pathlib.Path, layers: Sequence[int] | None = None,
                   heads: Sequence[int] | None = None, example: int = 0
                   ) -> list[pathlib.Path]:
    """One PNG per stack, kind and layer: `<out_dir>/<stack>_<kind>_layer<i>.png`.

    Args:
      maps: `attention.attention_maps` output ({"<stack>/<kind>": [L, B, N, T, S]}).
      tokens: the token strings of each stack's input, e.g. {"decoder": [...]} for GPT or
        {"encoder": source, "decoder": target} for the encoder-decoder (cross-attention
        rows are the decoder's tokens, columns the encoder's).
      out_dir: where the PNGs go (created).
      layers, heads: which to draw (default all); checked before anything is written.
      example: which row of the batch.

    Returns:
      The written paths.
    """
    plan = []
    for key, probs in maps.items():
        stack, kind = key.split("/")
        row_tokens = tokens[stack]
        col_tokens = tokens["encoder"] if kind == "cross_attention" else row_tokens
        num_layers, _, num_heads, t, s = probs.shape
        if (t, s) != (len(row_tokens), len(col_tokens)):
            raise ValueError(f"{key}: maps are {t}x{s}, tokens {len(row_tokens)}x"
                             f"{len(col_tokens)}")
        chosen_heads = pick(heads, num_heads, "heads")
        for layer in pick(layers, num_layers, "layers"):
            plan.append((probs[layer, example], row_tokens, col_tokens,
                         pathlib.Path(out_dir) / f"{stack}_{kind}_layer{layer}.png",
                         f"{key} layer {layer}", chosen_heads))
    return [write_layer(*item) for item in plan]
