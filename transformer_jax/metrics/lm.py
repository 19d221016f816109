"""Language-modelling metrics from summed losses.

Perplexity is exp(mean nats per token). Bits per byte normalizes by the UTF-8 bytes of the
predicted text, so models with different tokenizers compare fairly:
bits/byte = (sum of nats) / ln 2 / (sum of bytes).
"""

from __future__ import annotations

import math


def perplexity(mean_loss: float) -> float:
    """exp(mean cross entropy in nats); inf on overflow."""
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return float("inf")


def bits_per_byte(loss_sum: float, num_bytes: float) -> float:
    """Total nats / ln 2 / total UTF-8 bytes of the target tokens."""
    return loss_sum / math.log(2) / max(num_bytes, 1.0)
