"""Gradual magnitude pruning (Zhu & Gupta 2017, arXiv:1710.01878) as an Optax transformation.

`prune(inner, settings)` wraps the optimizer (clip + AdamW, inside `optax.apply_if_finite`:
a skipped non-finite step leaves the masks and the schedule where they were). Its state holds
a 0/1 mask per targeted parameter and the count of steps taken, so Orbax checkpoints both and
a resumed run continues the schedule exactly.

At step t (0-based: the optimizer steps taken before this one), when `begin_step <= t <=
end_step` and `(t - begin_step) % frequency == 0`, the masks are recomputed from the current
weights' magnitudes at the sparsity

    s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n Δt))^3,   t0 = begin_step, n Δt = end_step - t0

and held between updates (before `begin_step` nothing is pruned). Then the gradients of the
pruned weights are zeroed before `inner` (so they neither move Adam's moments nor count in
the clipping norm), and their updates are replaced by `-param`: params + updates is exactly 0
there, so a pruned weight stays exactly 0 whatever Adam's moments or weight decay say.

Structures:
- unstructured: per tensor (per layer of a scanned `[L, ...]` stack), the round(s_t * size)
  smallest |w| are pruned.
- N:M (e.g. "2:4"): of every M consecutive weights along the kernel's last *input* axis the
  N largest |w| are kept, at every mask update (the sparsity is 1 - N/M throughout, so
  `sparsity` must say so). Kernels are `[*inputs, *features]` (`models/layers.py`), so that
  axis is the contraction dimension K of the matmul, flattened input-major: D of
  query/key/value `[D, N, H]` and of `wi` `[D, F]`, H of the attention output `[N, H, D]`, F
  of `wo` `[F, D]`. Groups along K are what sparse tensor cores compress (each output's dot
  product sees N of every M of its inputs), as in PyTorch's `[out, in]` weights' rows.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from transformer_jax import path_patterns
from transformer_jax.errors import UserError

# The projection kernels of attention (self and cross) and of the MLP (plain and gated).
DEFAULT_TARGETS = r"(query|key|value|out|wi|wo|wi_gate|wi_up)/kernel$"
# Kernels with two feature (output) axes, [D, N, H]; every other kernel has one.
_TWO_FEATURE_AXES = re.compile(r"(query|key|value)/kernel$")


@dataclasses.dataclass(frozen=True)
class PruneSettings:
    """What `prune` does (see the module docstring).

    Attributes:
      sparsity: the final sparsity s_f in (0, 1) (N:M: exactly 1 - N/M).
      initial_sparsity: s_i, the sparsity of the first mask update (unstructured only).
      begin_step: t0, the step of the first mask update.
      end_step: the step of the last mask update, where s_t = s_f.
      frequency: Δt, steps between mask updates; divides end_step - begin_step.
      structure: "unstructured" or "N:M" (e.g. "2:4").
      targets: regexes searched in "/"-joined parameter paths.
    """

    sparsity: float
    initial_sparsity: float = 0.0
    begin_step: int = 0
    end_step: int = 0
    frequency: int = 1
    structure: str = "unstructured"
    targets: tuple[str, ...] = (DEFAULT_TARGETS,)

    @property
    def n_m(self) -> tuple[int, int] | None:
        """(N, M) of an N:M structure, None when unstructured."""
        if self.structure == "unstructured":
            return None
        n, m = self.structure.split(":")
        return int(n), int(m)


class PruneState(NamedTuple):
    """`prune`'s optimizer state.

    Attributes:
      count: int32 scalar, the optimizer steps taken (t of the next update).
      masks: like the params: a bool array (True = kept) per target, `optax.MaskedNode`
        for the other params.
      inner_state: the wrapped optimizer's state.
    """

    count: jax.Array
    masks: Any
    inner_state: Any


def sparsity_at(settings: PruneSettings, step: jax.Array) -> jax.Array:
    """s_t of the cubic schedule at `step` (s_i before begin_step, s_f from end_step on)."""
    span = max(settings.end_step - settings.begin_step, 1)
    progress = jnp.clip((step - settings.begin_step) / span, 0.0, 1.0)
    if settings.end_step == settings.begin_step:  # one shot: s_f from begin_step on
        progress = (step >= settings.begin_step).astype(jnp.float32)
    s_i, s_f = settings.initial_sparsity, settings.sparsity
    return s_f + (s_i - s_f) * (1.0 - progress) ** 3


def update_due(settings: PruneSettings, step: jax.Array) -> jax.Array:
    """Whether the masks are recomputed at `step` (bool scalar)."""
    offset = step - settings.begin_step
    return (offset >= 0) & (step <= settings.end_step) & (offset % settings.frequency == 0)


def magnitude_mask(w: jax.Array, sparsity: jax.Array) -> jax.Array:
    """bool like `w`: False for its round(sparsity * w.size) smallest |w| (ties: lower flat
    index pruned first, so already-pruned zeros stay pruned)."""
    flat = jnp.abs(w).ravel()
    order = jnp.argsort(flat, stable=True)
    ranks = jnp.zeros(flat.shape, jnp.int32).at[order].set(jnp.arange(flat.size, dtype=jnp.int32))
    pruned = jnp.round(sparsity * flat.size).astype(jnp.int32)
    return (ranks >= pruned).reshape(w.shape)


def n_m_mask(w: jax.Array, n: int, m: int, axis: int) -> jax.Array:
    """bool like `w`: True for the n largest |w| of every m consecutive ones along `axis`
    (whose size m divides; ties: the lower index is kept)."""
    moved = jnp.moveaxis(jnp.abs(w), axis, -1)                  # [..., K]
    groups = moved.reshape(*moved.shape[:-1], -1, m)             # [..., K/m, m]
    order = jnp.argsort(-groups, axis=-1, stable=True)
    keep = jnp.argsort(order, axis=-1) < n                       # rank within its group
    return jnp.moveaxis(keep.reshape(moved.shape), -1, axis)


def path_name(path) -> str:
    """"a/b/kernel" of a `jax.tree_util` key path."""
    return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def is_target(name: str, targets: tuple[str, ...]) -> bool:
    """Whether the param path `name` matches one of the `targets` regexes."""
    return any(re.search(p, name) for p in targets)


def _scanned(name: str) -> bool:
    """Whether the param belongs to an `nn.scan` stack (`.../layers/block/...`: a leading
    [L] axis; unrolled layers are named layers_0, layers_1, ...)."""
    return "layers" in name.split("/")


def group_axis(name: str, ndim: int) -> int:
    """The N:M grouping axis of a kernel: its last input axis (see the module docstring),
    counted without a scanned stack's leading layer axis."""
    layer_axes = 1 if _scanned(name) else 0
    return ndim - layer_axes - 1 - (2 if _TWO_FEATURE_AXES.search(name) else 1)


def _mask_of(name: str, w: jax.Array, sparsity: jax.Array, settings: PruneSettings) -> jax.Array:
    if settings.n_m is None:
        mask_fn = functools.partial(magnitude_mask, sparsity=sparsity)
    else:
        n, m = settings.n_m
        mask_fn = functools.partial(n_m_mask, n=n, m=m, axis=group_axis(name, w.ndim))
    return jax.vmap(mask_fn)(w) if _scanned(name) else mask_fn(w)


def _check_targets(params: Any, settings: PruneSettings) -> None:
    """UserError for a target regex matching no parameter, or an N:M target without an input
    axis whose size M divides."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    names = {path_name(p): leaf.shape for p, leaf in flat}
    for pattern in settings.targets:
        if not any(re.search(pattern, name) for name in names):
            examples = ", ".join(sorted(n for n in names if n.endswith("kernel"))[:3])
            raise UserError(f"config.prune.targets: {pattern!r} matches no parameter; paths "
                            f"look like {examples}")
    if settings.n_m is None:
        return
    m = settings.n_m[1]
    for name, shape in names.items():
        if not is_target(name, settings.targets):
            continue
        axis = group_axis(name, len(shape))
        layer_axes = 1 if _scanned(name) else 0
        if axis < 0 or shape[layer_axes + axis] % m:
            raise UserError(
                f"config.prune.structure={settings.structure!r}: target {name} of shape "
                f"{tuple(shape)} has no input axis of a size divisible by {m}; narrow "
                "config.prune.targets or use structure='unstructured'")


def prune(inner: optax.GradientTransformation, settings: PruneSettings
          ) -> optax.GradientTransformation:
    """`inner` with gradual magnitude pruning of the `settings.targets` params.

    The init raises UserError (at trace time, before anything runs) for targets that match
    nothing or do not fit the N:M structure.
    """

    def init(params):
        if jax.tree.leaves(params):  # not optax.tree_map_params' placeholder
            _check_targets(params, settings)
        masks = jax.tree_util.tree_map_with_path(
            lambda p, x: (jnp.ones(x.shape, jnp.bool_) if is_target(path_name(p), settings.targets)
                          else optax.MaskedNode()), params)
        return PruneState(jnp.zeros((), jnp.int32), masks, inner.init(params))

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("prune needs the params in update() (magnitudes, and -param)")

        def new_masks():
            sparsity = sparsity_at(settings, state.count)
            return jax.tree_util.tree_map_with_path(
                lambda p, m, w: m if _is_masked(m) else _mask_of(path_name(p), w, sparsity,
                                                                 settings),
                state.masks, params, is_leaf=_is_masked)

        masks = jax.lax.cond(update_due(settings, state.count), new_masks, lambda: state.masks)

        def where(kept, pruned):
            return jax.tree.map(lambda m, a, b: a if _is_masked(m) else jnp.where(m, a, b),
                                masks, kept, pruned, is_leaf=_is_masked)

        grads = where(grads, jax.tree.map(jnp.zeros_like, grads))
        updates, inner_state = inner.update(grads, state.inner_state, params)
        minus_params = jax.tree.map(lambda u, p: -p.astype(u.dtype), updates, params)
        updates = where(updates, minus_params)  # params + updates: exactly 0 where pruned
        return updates, PruneState(state.count + 1, masks, inner_state)

    return optax.GradientTransformation(init, update)


def _is_masked(x: Any) -> bool:
    return isinstance(x, optax.MaskedNode)


def measure_sparsity(params: Any, targets: str | tuple[str, ...] = (DEFAULT_TARGETS,)
                     ) -> dict[str, float]:
    """The fraction of exactly-zero weights: per target regex, over all targeted params
    ("targeted"), and over every param ("all")."""
    patterns = path_patterns.config_patterns(targets, "prune.targets")
    flat = [(path_name(p), x) for p, x in jax.tree_util.tree_flatten_with_path(params)[0]]
    counts: dict[str, list[int]] = {key: [0, 0] for key in (*patterns, "targeted", "all")}
    for name, x in flat:
        zeros, size = int(jnp.sum(x == 0)), int(x.size)
        keys = [p for p in patterns if re.search(p, name)]
        for key in keys + (["targeted"] if keys else []) + ["all"]:
            counts[key][0] += zeros
            counts[key][1] += size
    return {key: zeros / size if size else 0.0 for key, (zeros, size) in counts.items()}


def report(params: Any, targets: tuple[str, ...]) -> str:
    """One line of `measure_sparsity`: "sparsity (zero weights): targeted 75.00% (...), all
    params 52.31%"."""
    got = measure_sparsity(params, targets)
    groups = ", ".join(f"{p} {got[p]:.2%}" for p in targets)
    return (f"sparsity (zero weights): targeted {got['targeted']:.2%} ({groups}), "
            f"all params {got['all']:.2%}")


def settings_from_config(config: ml_collections.ConfigDict) -> PruneSettings | None:
    """The run's pruning settings (None: off: `prune.sparsity` 0, or no `prune` section).

    Raises:
      UserError: naming the key, for a sparsity outside [0, 1), an unknown structure, an
        N:M sparsity other than 1 - N/M, bad steps, no targets, or pruning with LoRA.
    """
    section = config.get("prune")
    if section is None or not section.get("sparsity"):
        return None
    s_f, s_i = section.sparsity, section.get("initial_sparsity", 0.0)
    for key, value in (("sparsity", s_f), ("initial_sparsity", s_i)):
        if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise UserError(f"config.prune.{key}={value!r}: use a fraction in [0, 1)")
    if s_i > s_f:
        raise UserError(f"config.prune.initial_sparsity={s_i!r} exceeds config.prune.sparsity="
                        f"{s_f!r}: the schedule only prunes more")
    structure = section.get("structure", "unstructured")
    match = re.fullmatch(r"(\d+):(\d+)", str(structure))
    if structure != "unstructured" and not (match and 0 < int(match[1]) < int(match[2])):
        raise UserError(f"config.prune.structure={structure!r} is unknown; use 'unstructured' "
                        "or 'N:M' with 0 < N < M, e.g. '2:4'")
    if match and abs(s_f - (want := 1 - int(match[1]) / int(match[2]))) > 1e-9:
        raise UserError(f"config.prune.sparsity={s_f!r} with structure={structure!r}: N:M keeps "
                        f"N of every M weights, so set sparsity={want}")
    begin, end, frequency = (section.get(k) for k in ("begin_step", "end_step", "frequency"))
    for key, value in (("begin_step", begin), ("end_step", end), ("frequency", frequency)):
        if not isinstance(value, int) or value < (1 if key == "frequency" else 0):
            raise UserError(f"config.prune.{key}={value!r}: use an integer >= "
                            f"{1 if key == 'frequency' else 0}")
    if end < begin or (end - begin) % frequency:
        raise UserError(f"config.prune.end_step={end} must be begin_step={begin} plus a "
                        f"multiple of frequency={frequency}")
    steps = config.get("train", {}).get("steps")
    if steps is not None and end >= steps:
        raise UserError(f"config.prune.end_step={end} must be below train.steps={steps} (the "
                        "mask update at end_step is the one reaching the final sparsity)")
    targets = path_patterns.config_patterns(section.get("targets", DEFAULT_TARGETS),
                                            "prune.targets")
    if not targets:
        raise UserError("config.prune.targets is empty: give regexes of the kernels to prune, "
                        f"e.g. {DEFAULT_TARGETS!r}")
    if config.get("lora", {}).get("rank"):
        raise UserError("config.prune.sparsity > 0 with config.lora.rank > 0: pruning LoRA's "
                        "frozen base weights is not supported; turn one of them off")
    return PruneSettings(float(s_f), float(s_i), begin, end, frequency, str(structure), targets)


def wrapper(config: ml_collections.ConfigDict):
    """`lambda inner: prune(inner, settings)` for the run's settings, None when off (the
    `wrap` of `train/optim.py:make_optimizer`)."""
    settings = settings_from_config(config)
    return None if settings is None else lambda inner: prune(inner, settings)
