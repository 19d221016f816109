"""The training loop: config -> mesh, tokenizer, data, sharded state -> train/eval/checkpoint.

Resume order (big_vision): a checkpoint in the workdir, then fresh. Everything the user can
get wrong is checked before anything is written, so a run that fails to start never touches
an existing workdir's checkpoints.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from transformer_jax import checkpoint as checkpoint_lib
from transformer_jax import decode, metrics
from transformer_jax import sharding as sharding_lib
from transformer_jax.data import pipeline, sources
from transformer_jax.data import tokenizer as tokenizer_lib
from transformer_jax.errors import UserError
from transformer_jax.models.build import build_model
from transformer_jax.models.config import SHAPE_FIELDS, ModelConfig, model_config_from
from transformer_jax.train import flops, optim, preemption
from transformer_jax.train import state as state_lib
from transformer_jax.train import step as step_lib
from transformer_jax.train.metric_writer import MetricWriter

TOKENIZER_FILE = "tokenizer.model"


@dataclasses.dataclass
class Run:
    """What `setup_run` resolved: the pieces a training or generation needs."""

    config: ml_collections.ConfigDict
    model_config: ModelConfig
    mesh: jax.sharding.Mesh
    workdir: pathlib.Path
    checkpointer: checkpoint_lib.Checkpointer
    tokenizer: Any = None

    @functools.cached_property
    def train_source(self) -> sources.TextSource:
        """The training documents (indexed on first use: generation never needs them)."""
        return sources.make_source(self.config.data, "train")


def setup_run(config: ml_collections.ConfigDict, workdir: str) -> Run:
    """Validates the config against the devices and the workdir; resolves the tokenizer.

    Raises UserError (before writing anything) for: a mesh that doesn't fit the devices, a
    batch not divisible by the data-parallel size, a sequence longer than the model's
    max_len, a workdir whose checkpoint has another model shape or vocabulary.
    """
    model_config = model_config_from(config.model)
    tcfg = config.train
    if config.data.seq_len > model_config.max_len:
        raise UserError(
            f"data.seq_len={config.data.seq_len} exceeds model.max_len={model_config.max_len}"
        )
    mesh = sharding_lib.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
    dp = sharding_lib.data_parallel_size(mesh)
    if tcfg.batch_size % (dp * tcfg.grad_accum_steps) or tcfg.batch_size % jax.process_count():
        raise UserError(
            f"train.batch_size={tcfg.batch_size} must be divisible by the data-parallel size "
            f"{dp} (mesh.data*mesh.fsdp) times train.grad_accum_steps={tcfg.grad_accum_steps}"
        )
    if tcfg.get("on_nonfinite", "stop") not in ("stop", "skip"):
        raise UserError(f"train.on_nonfinite={tcfg.on_nonfinite!r}: use 'stop' or 'skip'")
    workdir_path = pathlib.Path(workdir).absolute()
    checkpointer = checkpoint_lib.Checkpointer(
        workdir_path / "checkpoints", max_to_keep=tcfg.max_to_keep
    )
    existing = checkpointer.read_metadata()
    if existing is not None:
        _check_compatible(existing[1], model_config, checkpointer.directory)
    run = Run(config, model_config, mesh, workdir_path, checkpointer)
    run.tokenizer = _resolve_tokenizer(run)
    return run


def _check_compatible(meta: dict, model_config: ModelConfig, directory: pathlib.Path) -> None:
    saved = meta.get("model", {})
    for field in SHAPE_FIELDS:
        mine = getattr(model_config, field)
        if field in saved and saved[field] != mine:
            raise UserError(
                f"checkpoint in {directory} has model.{field}={saved[field]!r} but the config "
                f"says {mine!r}: use another --workdir, or set --config.model.{field}="
                f"{saved[field]!r} to resume it"
            )


def _resolve_tokenizer(run: Run):
    """The workdir's tokenizer if it has one (resume), else the cached/trained one."""
    path = run.workdir / TOKENIZER_FILE
    vocab_size = run.model_config.vocab_size
    if path.exists():
        tok = tokenizer_lib.Tokenizer.load(str(path))
    else:
        tok = tokenizer_lib.load_or_train(
            run.train_source, vocab_size, cache_dir=run.config.data.tokenizer_cache_dir or None
        )
    if tok.vocab_size != vocab_size:
        raise UserError(
            f"tokenizer {path if path.exists() else '(cache)'} has {tok.vocab_size} tokens but "
            f"model.vocab_size={vocab_size}: use another --workdir or matching vocab_size"
        )
    return tok


def metadata(run: Run) -> dict:
    """What every checkpoint records about its layout (DESIGN.md convention 11)."""
    return {
        "preset": run.model_config.preset,
        "model": run.model_config.to_dict(),
        "vocab_size": run.tokenizer.vocab_size,
        "scan_layers": run.model_config.scan_layers,
        "mesh": dict(run.mesh.shape),
        "seq_len": run.config.data.seq_len,
        "config": json.loads(run.config.to_json()),
    }


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    """Trains (resuming if the workdir has a checkpoint), evaluates, checkpoints, samples.

    Returns:
      The final eval metrics (loss, perplexity, bits_per_byte).
    """
    run = setup_run(config, workdir)
    tcfg = config.train
    run.workdir.mkdir(parents=True, exist_ok=True)
    if not (run.workdir / TOKENIZER_FILE).exists() and jax.process_index() == 0:
        run.tokenizer.save(str(run.workdir / TOKENIZER_FILE))

    model = build_model(run.model_config)
    eval_model = build_model(run.model_config.replace(deterministic=True))
    optimizer, schedule = optim.make_optimizer(config.optim, tcfg.steps)
    rules = sharding_lib.LOGICAL_AXIS_RULES
    seq_len = config.data.seq_len
    local_batch = tcfg.batch_size // jax.process_count()
    train_ds = pipeline.lm_dataset(
        run.train_source, run.tokenizer, seq_len=seq_len,
        batch_size=local_batch, seed=tcfg.seed, process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    train_iter = iter(train_ds)
    eval_source = sources.make_source(config.data, "validation")

    with jax.set_mesh(run.mesh), nn.logical_axis_rules(rules):
        init_params, target, shardings = state_layout(run, model, optimizer)
        restored = run.checkpointer.restore(target, train_iter)
        if restored is None:
            state = state_lib.init_state(init_params, optimizer, jax.random.key(tcfg.seed),
                                         shardings)
            start_step = 0
        else:
            start_step, state = restored
            if jax.process_index() == 0:
                print(f"resumed from step {start_step} of {run.checkpointer.directory}")

        batch_sharding = sharding_lib.batch_sharding(run.mesh, rules)
        train_step = jax.jit(
            functools.partial(
                step_lib.train_step, loss_fn=step_lib.lm_loss_fn(model), optimizer=optimizer,
                schedule=schedule, grad_accum_steps=tcfg.grad_accum_steps,
            ),
            in_shardings=(shardings, batch_sharding, None),
            out_shardings=(shardings, None),
            donate_argnums=0,
        )
        eval_step = jax.jit(
            functools.partial(step_lib.eval_step, model=eval_model),
            in_shardings=(shardings.params, batch_sharding, None),
        )
        token_bytes = jnp.asarray(run.tokenizer.token_bytes, jnp.int32)

        def evaluate() -> dict[str, float]:
            return _evaluate(run, eval_step, state.params, eval_source, batch_sharding,
                             token_bytes, local_batch)

        writer = MetricWriter(run.workdir)
        writer.truncate_after(start_step)
        throughput = _Throughput(run.model_config, tcfg.batch_size * seq_len, seq_len)
        meta = metadata(run)
        rng = jax.random.key(tcfg.seed)
        bar = tqdm(total=tcfg.steps, initial=start_step, desc="train", unit="step",
                   disable=jax.process_index() != 0, dynamic_ncols=True)
        pending: list[dict] = []
        eval_metrics: dict[str, float] = {}
        saved_step = start_step if restored is not None else None
        skipped = 0

        def flush(step: int) -> None:
            """Fetches queued step metrics (the train loop's only host sync) and logs them."""
            nonlocal pending, skipped
            fetched = jax.device_get(pending)
            tokens_per_s, mfu = throughput.measure(step)
            for offset, m in enumerate(fetched):
                s = step - len(fetched) + 1 + offset
                writer.write(s, "train", {**m, "tokens_per_s": tokens_per_s, "mfu": mfu})
                if m["nonfinite"]:
                    skipped += 1
                    if tcfg.on_nonfinite == "stop":
                        raise UserError(
                            f"non-finite loss or gradients at step {s} (update not applied); "
                            f"stopped as train.on_nonfinite='stop'. The newest checkpoint is "
                            f"step {saved_step}. Lower optim.learning_rate, or set "
                            "--config.train.on_nonfinite=skip to skip such steps"
                        )
            pending = []
            bar.set_postfix(loss=f"{fetched[-1]['loss']:.3f}", tok_s=f"{tokens_per_s:,.0f}",
                            mfu=f"{mfu:.1%}", **({"skipped": skipped} if skipped else {}))

        try:
            with preemption.PreemptionWatcher() as watcher:
                for step in range(start_step + 1, tcfg.steps + 1):
                    batch = _global_batch(next(train_iter), batch_sharding)
                    state, step_metrics = train_step(state, batch, rng)
                    pending.append(step_metrics)
                    bar.update(1)
                    if step == start_step + 1:
                        jax.block_until_ready(state)
                        throughput.restart(step)  # keep compilation out of tokens/s
                    preempted = watcher.reached(step)
                    checkpoint_now = (step % tcfg.checkpoint_every == 0 or step == tcfg.steps
                                      or preempted)
                    if (step % tcfg.log_every == 0 or step == tcfg.steps
                            or (checkpoint_now and pending)):
                        flush(step)
                    if step % tcfg.eval_every == 0 or step == tcfg.steps:
                        eval_metrics = evaluate()
                        writer.write(step, "eval", eval_metrics)
                        _say(bar, f"step {step}: eval loss {eval_metrics['loss']:.4f}, "
                                  f"perplexity {eval_metrics['perplexity']:.2f}, bits/byte "
                                  f"{eval_metrics['bits_per_byte']:.4f}")
                        throughput.restart(step)
                    if checkpoint_now:
                        run.checkpointer.save(step, state, train_iter, meta, force=preempted)
                        saved_step = step
                    if preempted:
                        _say(bar, f"{watcher.signal_name}: saved a checkpoint at step {step}; "
                                  "run the same command again to resume")
                        break
            if not eval_metrics and start_step >= tcfg.steps:
                eval_metrics = evaluate()  # the run had already finished: report only
                _say(bar, f"already at step {start_step}: eval loss {eval_metrics['loss']:.4f}, "
                      f"bits/byte {eval_metrics['bits_per_byte']:.4f}")
        finally:
            bar.close()
            train_iter.close()  # stop Grain's prefetch threads before interpreter exit
            run.checkpointer.wait()
            run.checkpointer.close()
            writer.close()
        if eval_metrics and config.sample.max_new_tokens:
            # Every process decodes (the params are sharded over all of them); one prints.
            text = sample_text(run, state.params, config.sample.prompt, config.sample)
        if eval_metrics and config.sample.max_new_tokens and jax.process_index() == 0:
            print(f"\n--- sample (prompt {config.sample.prompt!r}) ---\n"
                  f"{config.sample.prompt}{text}\n---")
    return eval_metrics


def _say(bar: tqdm, message: str) -> None:
    """Prints once (process 0), without breaking the progress bar."""
    if jax.process_index() == 0:
        bar.write(message)


class _Throughput:
    """Tokens/s and MFU over the steps since the last `restart`."""

    def __init__(self, model_config: ModelConfig, tokens_per_step: int, seq_len: int):
        self.flops_per_token = flops.train_flops_per_token(model_config, seq_len)
        self.peak, _ = flops.peak_flops_per_second()
        self.tokens_per_step = tokens_per_step
        self.restart(0)

    def restart(self, step: int) -> None:
        self.time, self.step = time.perf_counter(), step

    def measure(self, step: int) -> tuple[float, float]:
        """(tokens/s, MFU) since the last restart (NaN when no step has passed); restarts."""
        if step <= self.step:
            return float("nan"), float("nan")
        tokens_per_s = self.tokens_per_step * (step - self.step) / (time.perf_counter()
                                                                   - self.time)
        self.restart(step)
        return tokens_per_s, tokens_per_s * self.flops_per_token / self.peak


def _evaluate(run: Run, eval_step, params, source, batch_sharding, token_bytes,
              local_batch: int) -> dict[str, float]:
    """Held-out loss, perplexity and bits per byte over `train.eval_batches` batches."""
    totals = {"loss_sum": 0.0, "tokens": 0.0, "bytes": 0.0}
    for batch in pipeline.lm_eval_batches(
        source, run.tokenizer, seq_len=run.config.data.seq_len, batch_size=local_batch,
        max_batches=run.config.train.eval_batches, process_index=jax.process_index(),
        process_count=jax.process_count(),
    ):
        sums = eval_step(params, _global_batch(batch, batch_sharding), token_bytes)
        for k in totals:
            totals[k] += float(sums[k])
    loss = totals["loss_sum"] / max(totals["tokens"], 1.0)
    return {
        "loss": loss,
        "perplexity": metrics.perplexity(loss),
        "bits_per_byte": metrics.bits_per_byte(totals["loss_sum"], totals["bytes"]),
        "tokens": totals["tokens"],
    }


def _init_params(model: nn.Module, dummy: jax.Array, rng: jax.Array):
    return model.init(rng, dummy)["params"]


def state_layout(run: Run, model: nn.Module, optimizer):
    """(init_params, restore target, shardings) of the train state on the run's mesh.

    Call inside `jax.set_mesh(run.mesh)` and `nn.logical_axis_rules(...)`. The target is a
    pytree of `ShapeDtypeStruct(..., sharding=...)`: what Orbax restores into.
    """
    dummy = jnp.zeros((1, run.config.data.seq_len), jnp.int32)
    init_params = functools.partial(_init_params, model, dummy)
    abstract, shardings = state_lib.state_shardings(
        init_params, optimizer, run.mesh, sharding_lib.LOGICAL_AXIS_RULES
    )
    target = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )
    return init_params, target, shardings


def restore_state(run: Run, data_iterator=None) -> state_lib.TrainState | None:
    """The newest good checkpoint's train state on the run's mesh (None: no checkpoint)."""
    model = build_model(run.model_config)
    optimizer, _ = optim.make_optimizer(run.config.optim, run.config.train.steps)
    with jax.set_mesh(run.mesh), nn.logical_axis_rules(sharding_lib.LOGICAL_AXIS_RULES):
        _, target, _ = state_layout(run, model, optimizer)
        restored = run.checkpointer.restore(target, data_iterator)
    return None if restored is None else restored[1]


def _global_batch(local: dict[str, np.ndarray], sharding) -> dict[str, jax.Array]:
    """Assembles each process's rows into global arrays sharded over the batch axes."""
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
        for k, v in local.items()
    }


def sample_text(run: Run, params, prompt: str, sample_cfg) -> str:
    """Decodes a continuation of `prompt` with the KV cache (greedy when temperature is 0)."""
    tok = run.tokenizer
    ids = [tok.bos_id, *tok.encode(prompt)]
    max_new = min(sample_cfg.max_new_tokens, run.model_config.max_len - len(ids))
    if max_new <= 0:
        raise UserError(
            f"the prompt is {len(ids)} tokens, no room left in max_len="
            f"{run.model_config.max_len}: use a shorter prompt"
        )
    decoder = build_model(run.model_config.replace(decode=True, deterministic=True))
    new = decode.generate(
        decoder, params, jnp.asarray([ids], jnp.int32), max_new_tokens=max_new,
        rng=jax.random.key(sample_cfg.seed), temperature=sample_cfg.temperature,
        top_k=sample_cfg.top_k, top_p=sample_cfg.top_p, eos_id=tok.eos_id,
    )
    new = [int(t) for t in np.asarray(new)[0]]
    if tok.eos_id in new:
        new = new[: new.index(tok.eos_id)]
    return tok.decode(new)
