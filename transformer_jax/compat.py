"""The two JAX internals this project reads, in one place (checked against jax 0.10.2).

JAX has no public API for either; if an upgrade moves them, this file is the one to fix
(tests/test_distributed.py and tests/train/test_faults.py exercise both paths).
"""

from __future__ import annotations

from jax._src import cloud_tpu_init as _cloud_tpu_init
from jax._src import distributed as _distributed


def running_in_cloud_tpu_vm() -> bool:
    """True on a Cloud TPU VM: the flag `import jax` sets when it finds libtpu and TPU chips,
    exactly what JAX's own GCE/GKE TPU cluster detection checks."""
    return bool(_cloud_tpu_init.running_in_cloud_tpu_vm)


def has_preemption_service() -> bool:
    """True when `jax.distributed.initialize` started JAX's preemption sync manager."""
    return _distributed.global_state.preemption_sync_manager is not None
