"""torch `nn.Linear` weights <-> the project's multi-dim kernels (used by the enc-dec families).

A torch Linear weight is [out, in]; the project's kernels put the contracted (input) dims
first: query/key/value [D, N, H], attention output [N, H, D], MLP [D, F] and [F, D].
"""

from __future__ import annotations

import numpy as np


def to_kernel(weight: np.ndarray, in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
    """torch [out, in] -> [*in_shape, *out_shape] float32."""
    return np.ascontiguousarray(weight.T, np.float32).reshape(*in_shape, *out_shape)


def to_weight(kernel: np.ndarray, num_in: int) -> np.ndarray:
    """[*in dims, *out dims] (the first `num_in` dims contracted) -> torch [out, in] float32."""
    fan_in = int(np.prod(kernel.shape[:num_in]))
    return np.ascontiguousarray(np.asarray(kernel, np.float32).reshape(fan_in, -1).T)
