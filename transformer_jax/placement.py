"""Device placement of host data: this process's rows in, global arrays out, and back.

Every process feeds its own rows of each global batch; `Placement` turns them into global
`jax.Array`s sharded over the mesh's batch axes (`sharding.batch_sharding`), and gathers
results back to every host for host-side metrics. The trainer uses it for training and
evaluation batches alike; tasks get one for decoding and prediction.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from transformer_jax import sharding

Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where batches live: the mesh and this process's share of each global batch.

    Attributes:
      mesh: the device mesh (set it with `jax.set_mesh` around jitted calls).
      local_batch: rows of each global batch that this process supplies.
      process_index, process_count: this process and the number of processes.
    """

    mesh: jax.sharding.Mesh
    local_batch: int
    process_index: int = 0
    process_count: int = 1

    @classmethod
    def for_batch(cls, mesh: jax.sharding.Mesh, global_batch: int) -> Placement:
        """This process's placement for global batches of `global_batch` rows."""
        return cls(mesh, global_batch // jax.process_count(), jax.process_index(),
                   jax.process_count())

    @property
    def global_batch(self) -> int:
        """Rows of a global batch (all processes together)."""
        return self.local_batch * self.process_count

    @functools.cached_property
    def batch_sharding(self) -> NamedSharding:
        """NamedSharding of a global batch's leading axis."""
        return sharding.batch_sharding(self.mesh)

    @functools.cached_property
    def replicated(self) -> NamedSharding:
        """NamedSharding of an array every device holds whole."""
        return NamedSharding(self.mesh, PartitionSpec())

    def to_global(self, local: Batch) -> dict[str, jax.Array]:
        """Assembles each process's rows into global [B, ...] arrays sharded over B."""
        return {
            k: jax.make_array_from_process_local_data(self.batch_sharding, np.asarray(v))
            for k, v in local.items()
        }

    def to_global_steps(self, local: list[Batch]) -> dict[str, jax.Array]:
        """K local batches as global [K, B, ...] arrays (`sharding.steps_sharding`)."""
        stacked = sharding.steps_sharding(self.mesh)
        return {
            k: jax.make_array_from_process_local_data(
                stacked, np.stack([np.asarray(b[k]) for b in local]))
            for k in local[0]
        }

    def gather(self, x: jax.Array) -> np.ndarray:
        """A global array as numpy on every process (for host-side metrics)."""
        return np.asarray(_replicate(x, self.replicated))


@functools.partial(jax.jit, static_argnums=1)
def _replicate_jit(x: jax.Array, out_sharding: NamedSharding) -> jax.Array:
    return jax.lax.with_sharding_constraint(x, out_sharding)


def _replicate(x: jax.Array, out_sharding: NamedSharding) -> jax.Array:
    """`x` resharded to be whole on every device (one jitted function, cached by sharding)."""
    if x.is_fully_replicated:
        return x
    return _replicate_jit(x, out_sharding)
