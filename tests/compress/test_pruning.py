"""Gradual magnitude pruning as an Optax transformation: the cubic schedule, unstructured and
2:4 masks, pruned weights staying 0, the non-finite guard, and the config's error lines."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from experiments.configs import gpt_stdlib
from transformer_jax.compress import pruning
from transformer_jax.compress.pruning import PruneSettings
from transformer_jax.errors import UserError
from transformer_jax.train import optim

TARGETS = (pruning.DEFAULT_TARGETS,)


def _params() -> dict:
    """A tiny GPT-shaped tree: an unrolled layer, a scanned [L=2] stack, and non-targets."""
    rng = np.random.default_rng(0)

    def normal(*shape):
        return jnp.asarray(rng.normal(size=shape), jnp.float32)

    return {"decoder": {
        "layers_0": {"self_attention": {"query": {"kernel": normal(32, 2, 16),
                                                  "bias": normal(2, 16)},
                                        "out": {"kernel": normal(2, 16, 32)}},
                     "mlp": {"wi": {"kernel": normal(32, 64)}, "wo": {"kernel": normal(64, 32)}},
                     "mlp_norm": {"scale": normal(32)}},
        "layers": {"block": {"self_attention": {"query": {"kernel": normal(2, 32, 2, 16)}},
                             "mlp": {"wi": {"kernel": normal(2, 32, 64)}}}}},
        "embedder": {"token_embed": {"embedding": normal(40, 32)}}}


def _leaves(params) -> dict[str, jax.Array]:
    return {pruning.path_name(p): x for p, x in jax.tree_util.tree_flatten_with_path(params)[0]}


UNSTRUCTURED = PruneSettings(sparsity=0.75, initial_sparsity=0.25, begin_step=1, end_step=5,
                             frequency=2)
STEPS = 9


@functools.cache
def _compiled(settings: PruneSettings):
    """A jitted scan of STEPS AdamW steps on fixed random gradients (all NaN at step `nan_at`)
    under apply_if_finite(prune(adamw)), giving the (params, state) after each step."""
    optimizer = optax.apply_if_finite(pruning.prune(optax.adamw(1e-2, weight_decay=0.1),
                                                    settings), 100)
    params = _params()
    rng = np.random.default_rng(1)
    grads = jax.tree.map(lambda x: rng.normal(size=(STEPS, *x.shape)).astype(np.float32),
                         params)  # [STEPS, ...] per param

    def body(carry, xs, nan_at):
        params, state = carry
        i, grads = xs
        grads = jax.tree.map(lambda g: jnp.where(i == nan_at, jnp.nan, g), grads)
        updates, state = optimizer.update(grads, state, params)
        carry = optax.apply_updates(params, updates), state
        return carry, carry

    return jax.jit(lambda nan_at: jax.lax.scan(
        functools.partial(body, nan_at=nan_at), (params, optimizer.init(params)),
        (jnp.arange(STEPS), grads))[1])


def _run(settings: PruneSettings, nan_at: int = -1) -> list:
    """The (params, state) after each of STEPS steps, as numpy."""
    stacked = jax.tree.map(np.asarray, _compiled(settings)(nan_at))
    return [jax.tree.map(lambda x, i=i: x[i], stacked) for i in range(STEPS)]


def test_cubic_schedule_and_update_steps():
    s = PruneSettings(sparsity=0.9, initial_sparsity=0.1, begin_step=10, end_step=50,
                      frequency=10)
    steps = np.arange(0, 70)
    due = [int(t) for t in steps if pruning.update_due(s, jnp.int32(t))]
    assert due == [10, 20, 30, 40, 50]
    for t in [*due, 60]:
        want = 0.9 + (0.1 - 0.9) * (1 - min((t - 10) / 40, 1.0)) ** 3
        assert float(pruning.sparsity_at(s, jnp.int32(t))) == pytest.approx(want, abs=1e-6)
    assert float(pruning.sparsity_at(s, jnp.int32(30))) == pytest.approx(0.9 - 0.8 / 8)
    one_shot = PruneSettings(sparsity=0.5, begin_step=3, end_step=3)
    assert [int(t) for t in steps if pruning.update_due(one_shot, jnp.int32(t))] == [3]
    assert float(pruning.sparsity_at(one_shot, jnp.int32(3))) == pytest.approx(0.5)


def test_unstructured_reaches_each_targets_sparsity_and_pruned_weights_stay_zero():
    history = _run(UNSTRUCTURED)
    initial = _leaves(_params())
    sparsities = []
    for params, _ in history:
        leaves = _leaves(params)
        sparsities.append(np.mean([float(np.mean(x == 0)) for k, x in leaves.items()
                                   if k.endswith("wi/kernel")]))
    # Nothing before begin_step; then s at steps 1, 3, 5: 0.25, 0.6875, 0.75, held after.
    assert sparsities[0] == 0.0
    np.testing.assert_allclose(sparsities[1:], [0.25, 0.25, 0.6875, 0.6875] + [0.75] * 4,
                               atol=1 / 2048)
    final = history[5][0]
    for name, x in _leaves(final).items():
        zeros = np.asarray(x == 0)
        if pruning.is_target(name, TARGETS):
            per_layer = zeros.reshape(2, -1) if "/layers/" in name else zeros.reshape(1, -1)
            for layer in per_layer:  # each layer of the scanned stack on its own
                assert abs(layer.sum() - round(0.75 * layer.size)) <= 1, name
            # The smallest initial weights are (mostly) the ones gone; ties aside.
            assert np.abs(initial[name])[zeros].mean() < np.abs(initial[name])[~zeros].mean()
        else:
            assert not zeros.any(), name  # biases, norms, embeddings: untouched
    # After end_step the masks stay put and the pruned weights stay exactly 0 (no Adam drift,
    # no weight decay), while the kept ones keep training.
    for later, _ in history[6:]:
        for name, x in _leaves(later).items():
            if pruning.is_target(name, TARGETS):
                np.testing.assert_array_equal(x == 0, _leaves(final)[name] == 0)
    last = _leaves(history[-1][0])["decoder/layers_0/mlp/wi/kernel"]
    assert float(jnp.max(jnp.abs(last - _leaves(final)["decoder/layers_0/mlp/wi/kernel"]))) > 0
    got = pruning.measure_sparsity(history[-1][0], TARGETS)
    assert got[pruning.DEFAULT_TARGETS] == pytest.approx(0.75, abs=1e-3)
    assert 0 < got["all"] < got["targeted"] == got[pruning.DEFAULT_TARGETS]


def test_two_four_keeps_two_of_every_four_along_the_input_axis():
    s = PruneSettings(sparsity=0.5, begin_step=0, end_step=2, frequency=1, structure="2:4")
    params, state = _run(s)[-1]
    masks = _leaves(state.inner_state.masks)
    # (group axis, layer axes) of each kernel: the last input axis (D, H, D, F).
    axes = {"query/kernel": 0, "out/kernel": 1, "wi/kernel": 0, "wo/kernel": 0}
    checked = 0
    for name, x in _leaves(params).items():
        if not pruning.is_target(name, TARGETS):
            continue
        axis = next(a for k, a in axes.items() if name.endswith(k)) + ("/layers/" in name)
        for tree in (masks[name], x != 0):
            moved = np.moveaxis(np.asarray(tree), axis, -1)
            groups = moved.reshape(*moved.shape[:-1], -1, 4)
            assert (groups.sum(-1) == 2).all(), name
        checked += 1
    assert checked == 6


def test_a_skipped_nonfinite_step_does_not_advance_the_schedule():
    straight, skipped = _run(UNSTRUCTURED), _run(UNSTRUCTURED, nan_at=1)
    assert int(skipped[1][1].notfinite_count) == 1
    assert int(skipped[1][1].inner_state.count) == 1  # not 2
    jax.tree.map(np.testing.assert_array_equal, skipped[1][0], skipped[0][0])
    # Every mask update comes one step later than in the straight run.
    for step in range(1, STEPS - 1):
        assert (pruning.measure_sparsity(skipped[step + 1][0], TARGETS)["targeted"]
                == pruning.measure_sparsity(straight[step][0], TARGETS)["targeted"]), step


def _config(**prune) -> ml_collections.ConfigDict:
    c = gpt_stdlib.get_config("test")
    c.prune.update(prune)
    return c


@pytest.mark.parametrize("prune, key", [
    (dict(sparsity=1.0), "config.prune.sparsity=1.0"),
    (dict(sparsity=-0.1), "config.prune.sparsity=-0.1"),
    (dict(sparsity=0.5, initial_sparsity=0.7), "config.prune.initial_sparsity=0.7"),
    (dict(sparsity=0.5, structure="blocks"), "config.prune.structure='blocks'"),
    (dict(sparsity=0.75, structure="2:4"), "config.prune.sparsity=0.75"),
    (dict(sparsity=0.5, frequency=0), "config.prune.frequency=0"),
    (dict(sparsity=0.5, begin_step=1, end_step=4, frequency=2), "config.prune.end_step=4"),
    (dict(sparsity=0.5, end_step=6, frequency=2), "config.prune.end_step=6 must be below"),
    (dict(sparsity=0.5, targets="(wi"), "config.prune.targets: '(wi'"),
    (dict(sparsity=0.5, targets=" , "), "config.prune.targets is empty"),
])
def test_bad_settings_are_one_line_errors_naming_the_key(prune, key):
    with pytest.raises(UserError) as e:
        pruning.settings_from_config(_config(**prune))
    assert key in str(e.value) and "\n" not in str(e.value)


def test_targets_that_do_not_fit_are_errors_at_init():
    nothing = PruneSettings(sparsity=0.5, targets=(r"wq/kernel$",))
    with pytest.raises(UserError, match=r"'wq/kernel\$' matches no parameter; paths look like"):
        jax.eval_shape(pruning.prune(optax.sgd(1.0), nothing).init, _params())
    params = _params()
    params["decoder"]["layers_0"]["mlp"]["wo"]["kernel"] = jnp.ones((66, 32))
    two_four = PruneSettings(sparsity=0.5, structure="2:4")
    with pytest.raises(UserError, match=r"target decoder/layers_0/mlp/wo/kernel of shape "
                                        r"\(66, 32\) has no input axis of a size divisible by 4"):
        jax.eval_shape(pruning.prune(optax.sgd(1.0), two_four).init, params)
    with pytest.raises(UserError, match="config.prune.sparsity > 0 with config.lora.rank > 0"):
        c = _config(sparsity=0.5)
        c.lora.rank = 4
        pruning.settings_from_config(c)


def test_off_by_default_leaves_the_optimizer_unchanged():
    c = gpt_stdlib.get_config()
    assert pruning.settings_from_config(c) is None and pruning.wrapper(c) is None
    plain, _ = optim.make_optimizer(c.optim, c.train.steps)
    state = jax.eval_shape(plain.init, _params())
    assert "PruneState" not in repr(jax.tree.structure(state))
