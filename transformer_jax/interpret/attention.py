"""Attention probabilities of every layer, captured without changing the training path.

`models/attention.py:MultiHeadAttention` sows its probabilities into the "intermediates"
collection only when that collection is mutable, i.e. only in the calls made here; training,
evaluation and decoding never ask for it and run exactly as before.

Shapes: L layers, B batch, N heads, T query length, S key length.
"""

from __future__ import annotations

import re
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from flax import traverse_util

_LAYER = re.compile(r"layers_(\d+)$")


def attention_maps(model: nn.Module, params: Any, **inputs: Any) -> dict[str, np.ndarray]:
    """The attention probabilities of each stack and kind, layers stacked.

    Args:
      model: a GPT, BERT or EncoderDecoder module (scanned or unrolled layers; decode=False).
      params: its params.
      **inputs: the model's call arguments, e.g. `tokens=[B, T]` or `source=[B, S],
        target_inputs=[B, T]`.

    Returns:
      {"<stack>/<kind>": [L, B, N, T, S] float32}, e.g. "decoder/self_attention" for GPT,
      "encoder/self_attention" for BERT, and for the encoder-decoder also
      "decoder/cross_attention" (T target x S source). Masked positions (future tokens,
      padding keys) have probability 0; each unmasked row sums to 1.
    """
    _, state = jax.jit(lambda p, i: model.apply({"params": p}, **i,
                                                mutable=["intermediates"]))(params, inputs)
    flat = traverse_util.flatten_dict(state["intermediates"])
    per_layer: dict[str, dict[int, np.ndarray]] = {}
    for path, value in flat.items():
        if path[-1] != "attention_probs":
            continue
        (array,) = value  # sow keeps a tuple of the values sown
        array = np.asarray(array)
        kind = path[-2]  # self_attention | cross_attention
        names = list(path[:-2])
        if "layers" in names:  # scanned: [L, B, N, T, S] under .../layers/block/...
            stack = names[names.index("layers") - 1]
            per_layer[f"{stack}/{kind}"] = dict(enumerate(array))
            continue
        index = next(i for i, n in enumerate(names) if _LAYER.match(n))
        key = f"{names[index - 1]}/{kind}"
        per_layer.setdefault(key, {})[int(_LAYER.match(names[index]).group(1))] = array
    return {key: np.stack([layers[i] for i in sorted(layers)])
            for key, layers in sorted(per_layer.items())}
