"""Dense layers multiply N-D kernels as one 2-D GEMM: the same result as the N-D dot_general."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from transformer_jax.models import layers


@pytest.mark.parametrize("x_shape,kernel_shape,axis", [
    ((2, 5, 16), (16, 4, 8), (2,)),        # query/key/value: [B, T, D] x [D, N, H]
    ((2, 5, 4, 8), (4, 8, 16), (2, 3)),    # attention output: [B, T, N, H] x [N, H, D]
    ((2, 5, 4, 8), (5, 4, 3), (1, 2)),     # not the trailing dims: the N-D dot_general
])
def test_flat_kernel_dot_matches_dot_general(monkeypatch, x_shape, kernel_shape, axis):
    x = jax.random.normal(jax.random.key(0), x_shape)
    kernel = jax.random.normal(jax.random.key(1), kernel_shape)

    def value_and_grads(flat: bool):
        monkeypatch.setattr(layers, "FLAT_KERNEL_DOTS", flat)
        loss = lambda x, k: jnp.sum(jnp.sin(layers._dense_dot(x, k, axis)))
        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(x, kernel)  # traced here

    (flat_loss, flat_grads), (nd_loss, nd_grads) = value_and_grads(True), value_and_grads(False)
    np.testing.assert_allclose(flat_loss, nd_loss, rtol=1e-5)
    for flat_grad, nd_grad in zip(flat_grads, nd_grads):
        np.testing.assert_allclose(flat_grad, nd_grad, rtol=1e-5, atol=1e-5)
