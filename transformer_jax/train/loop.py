"""The one trainer: config -> task, mesh, tokenizer, data, sharded state -> train/eval/save.

The task (tasks/, chosen by `config.task.name`) supplies the model, batches, loss and
evaluation; this file owns the rest. Resume order (big_vision): a checkpoint in the workdir,
then `config.init_from` (pretrained weights for matching parts of the model), then fresh.
Everything the user can get wrong is checked before anything is written, so a run that fails
to start never touches an existing workdir's checkpoints.
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
import ml_collections
from tqdm import tqdm

from transformer_jax import checkpoint as checkpoint_lib
from transformer_jax import sharding as sharding_lib
from transformer_jax import tasks as tasks_lib
from transformer_jax.data import tokenizer as tokenizer_lib
from transformer_jax.errors import UserError
from transformer_jax.models.config import SHAPE_FIELDS, ModelConfig, model_config_from
from transformer_jax.train import flops, optim, preemption, pretrained
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
    task: tasks_lib.Task
    tokenizer: Any = None
    pretrained: pretrained.Pretrained | None = None

    def eval_context(self, batch_size: int | None = None) -> tasks_lib.EvalContext:
        """What the task's evaluate/demo/predict need (call inside `jax.set_mesh`)."""
        batch_size = batch_size or self.config.train.batch_size
        return tasks_lib.EvalContext(
            config=self.config, model_config=self.model_config, tokenizer=self.tokenizer,
            mesh=self.mesh,
            batch_sharding=sharding_lib.batch_sharding(self.mesh,
                                                       sharding_lib.LOGICAL_AXIS_RULES),
            local_batch=batch_size // jax.process_count(),
            process_index=jax.process_index(), process_count=jax.process_count(),
        )


def setup_run(config: ml_collections.ConfigDict, workdir: str) -> Run:
    """Validates the config against the devices and the workdir; resolves the tokenizer.

    Raises UserError (before writing anything) for: an unknown task or a config the task
    rejects, a mesh that doesn't fit the devices, a batch not divisible by the data-parallel
    size, a workdir whose checkpoint has another model shape or vocabulary, an `init_from`
    that doesn't fit.
    """
    model_config = model_config_from(config.model)
    task = tasks_lib.make_task(config, model_config)
    tcfg = config.train
    mesh = sharding_lib.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
    dp = sharding_lib.data_parallel_size(mesh)
    if tcfg.batch_size % (dp * tcfg.grad_accum_steps) or tcfg.batch_size % jax.process_count():
        raise UserError(
            f"train.batch_size={tcfg.batch_size} must be divisible by the data-parallel size "
            f"{dp} (mesh.data*mesh.fsdp) times train.grad_accum_steps={tcfg.grad_accum_steps}"
        )
    if not isinstance(tcfg.get("steps_per_call"), int) or tcfg.steps_per_call < 1:
        raise UserError(
            f"train.steps_per_call={tcfg.get('steps_per_call')!r}: set it to the number of "
            "optimizer steps per jitted call, an integer >= 1 (1 = one step per call)"
        )
    if tcfg.get("on_nonfinite", "stop") not in ("stop", "skip"):
        raise UserError(f"train.on_nonfinite={tcfg.on_nonfinite!r}: use 'stop' or 'skip'")
    if "://" in workdir:
        raise UserError(
            f"--workdir={workdir}: URLs are not supported; on Cloud TPU mount the bucket with "
            "gcsfuse (or use Filestore/NFS) and pass the mounted path"
        )
    workdir_path = pathlib.Path(workdir).absolute()
    checkpointer = checkpoint_lib.Checkpointer(
        workdir_path / "checkpoints", max_to_keep=tcfg.max_to_keep
    )
    existing = checkpointer.read_metadata()
    if existing is not None:
        _check_compatible(existing[1], model_config, checkpointer.directory)
    if "num_shards" in config.data:
        _resolve_num_shards(config, existing[1] if existing else None)
    run = Run(config, model_config, mesh, workdir_path, checkpointer, task)
    if existing is None and config.get("init_from"):
        run.pretrained = pretrained.locate(config.init_from, model_config)
    run.tokenizer = _resolve_tokenizer(run)
    return run


def _resolve_num_shards(config: ml_collections.ConfigDict, meta: dict | None) -> None:
    """Sets data.num_shards (0 = the checkpoint's count, else one per process) and checks it.

    The data stream is split into that many virtual shards (data/pipeline.py); a process reads
    only its own, and a checkpoint resumes on any process count dividing it.
    """
    processes = jax.process_count()
    if not config.data.num_shards:
        saved = (meta or {}).get("config", {}).get("data", {}).get("num_shards")
        config.data.num_shards = saved or processes
    shards, batch = config.data.num_shards, config.train.batch_size
    if shards % processes or batch % shards:
        raise UserError(
            f"data.num_shards={shards} must be a multiple of the process count {processes} "
            f"and divide train.batch_size={batch}; resuming on another process count needs "
            "one that divides the shard count"
        )


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
    """The workdir's tokenizer (resume), else init_from's, else the cached/trained one."""
    path = run.workdir / TOKENIZER_FILE
    if not path.exists() and run.pretrained is not None:
        path = run.pretrained.workdir / TOKENIZER_FILE
    vocab_size = run.model_config.vocab_size
    if path.exists():
        tok = tokenizer_lib.Tokenizer.load(str(path))
    else:
        tok = tokenizer_lib.load_or_train(
            run.task.tokenizer_source(), vocab_size,
            cache_dir=run.config.data.tokenizer_cache_dir or None,
            user_defined_symbols=run.task.special_tokens,
        )
    for piece in run.task.special_tokens:
        tok.piece_id(piece)  # UserError if missing
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
        "task": {"name": run.task.name, **run.task.metadata()},
        "config": json.loads(run.config.to_json()),
    }


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    """Trains (resuming if the workdir has a checkpoint), evaluates, checkpoints, demos.

    Returns:
      The final eval metrics (the task's, e.g. loss, perplexity, bits_per_byte for LM).
    """
    run = setup_run(config, workdir)
    task, tcfg = run.task, config.train
    run.workdir.mkdir(parents=True, exist_ok=True)
    if not (run.workdir / TOKENIZER_FILE).exists() and jax.process_index() == 0:
        run.tokenizer.save(str(run.workdir / TOKENIZER_FILE))

    model = task.build_model(run.model_config)
    optimizer, schedule = optim.make_optimizer(config.optim, tcfg.steps)
    rules = sharding_lib.LOGICAL_AXIS_RULES
    local_batch = tcfg.batch_size // jax.process_count()
    train_iter = task.train_batches(
        run.tokenizer, batch_size=local_batch, seed=tcfg.seed,
        process_index=jax.process_index(), process_count=jax.process_count(),
    )

    with jax.set_mesh(run.mesh), nn.logical_axis_rules(rules):
        init_params, target, shardings = state_layout(run, model, optimizer)
        restored = run.checkpointer.restore(target, train_iter)
        if restored is None:
            state = state_lib.init_state(init_params, optimizer, jax.random.key(tcfg.seed),
                                         shardings)
            start_step = 0
            if run.pretrained is not None:
                state = state.replace(params=pretrained.load_into(run.pretrained, state.params))
        else:
            start_step, state = restored
            if jax.process_index() == 0:
                print(f"resumed from step {start_step} of {run.checkpointer.directory}")

        ctx = run.eval_context()
        # Retraced per number of steps in a call: steps_per_call, and 1 (see call_length).
        train_steps = jax.jit(
            functools.partial(
                step_lib.train_steps, loss_fn=task.loss_fn(model), optimizer=optimizer,
                schedule=schedule, grad_accum_steps=tcfg.grad_accum_steps,
            ),
            in_shardings=(shardings, sharding_lib.steps_sharding(run.mesh, rules), None),
            out_shardings=(shardings, None),
            donate_argnums=0,
        )

        writer = MetricWriter(run.workdir)
        writer.truncate_after(start_step)
        throughput = _Throughput(run.model_config, tcfg.batch_size * config.data.seq_len,
                                 config.data.seq_len)
        meta = metadata(run)
        rng = jax.random.key(tcfg.seed)
        bar = tqdm(total=tcfg.steps, initial=start_step, desc="train", unit="step",
                   disable=jax.process_index() != 0, dynamic_ncols=True)
        pending: list[dict] = []
        eval_metrics: dict[str, float] = {}
        saved_step = start_step if restored is not None else None
        skipped = 0

        def flush(step: int) -> None:
            """Fetches queued metrics (the train loop's only host sync); logs each step's."""
            nonlocal pending, skipped
            fetched = [{k: v[i] for k, v in call.items()}
                       for call in jax.device_get(pending) for i in range(len(call["loss"]))]
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

        def evaluate(step: int) -> dict[str, float]:
            result = task.evaluate(ctx, state.params)
            writer.write(step, "eval", result)
            _say(bar, f"step {step}: eval " + headline(task, result))
            return result

        try:
            with preemption.PreemptionWatcher() as watcher:
                step = start_step
                while step < tcfg.steps:
                    n = call_length(step, tcfg)
                    batches = ctx.to_global_steps([next(train_iter) for _ in range(n)])
                    state, call_metrics = train_steps(state, batches, rng)
                    pending.append(call_metrics)
                    step += n
                    bar.update(n)
                    if step == start_step + n:
                        jax.block_until_ready(state)
                        throughput.restart(step)  # keep compilation out of tokens/s
                    # In order and without skipping: multi-host sync points are step numbers.
                    preempted = any(watcher.reached(s) for s in range(step - n + 1, step + 1))
                    checkpoint_now = (step % tcfg.checkpoint_every == 0 or step == tcfg.steps
                                      or preempted)
                    logged = step // tcfg.log_every > (step - n) // tcfg.log_every
                    if logged or step == tcfg.steps or (checkpoint_now and pending):
                        flush(step)
                    if step % tcfg.eval_every == 0 or step == tcfg.steps:
                        eval_metrics = evaluate(step)
                        throughput.restart(step)
                    if checkpoint_now:
                        run.checkpointer.save(step, state, train_iter, meta, force=preempted)
                        saved_step = step
                    if preempted:
                        _say(bar, f"{watcher.signal_name}: saved a checkpoint at step {step}; "
                                  "run the same command again to resume")
                        break
            if not eval_metrics and start_step >= tcfg.steps:
                _say(bar, f"already at step {start_step}; evaluating only")
                eval_metrics = evaluate(start_step)
        finally:
            bar.close()
            train_iter.close()  # stop Grain's prefetch threads before interpreter exit
            run.checkpointer.wait()
            run.checkpointer.close()
            writer.close()
        if eval_metrics:
            # Every process runs the demo (the params are sharded over all of them); one prints.
            text = task.demo(ctx, state.params)
            if text and jax.process_index() == 0:
                print(f"\n{text}")
    return eval_metrics


def call_length(step: int, tcfg: ml_collections.ConfigDict) -> int:
    """How many steps the next train call runs, from `step` (the steps done so far).

    `train.steps_per_call`, unless an evaluation, a checkpoint or the end falls before that
    many steps: then 1, so those happen exactly on their steps. Aligned intervals (the
    configs' defaults) compile one train executable; otherwise a second, one-step one.
    """
    end = step + tcfg.steps_per_call
    if end > tcfg.steps:
        return 1
    stops = (tcfg.eval_every, tcfg.checkpoint_every)
    if any(s % every == 0 for s in range(step + 1, end) for every in stops):
        return 1
    return tcfg.steps_per_call


def headline(task: tasks_lib.Task, result: dict[str, float]) -> str:
    """"loss 1.2345, perplexity 3.44, ..." for the task's headline metrics."""
    return ", ".join(f"{k} {result[k]:.4f}" for k in task.headline_metrics if k in result)


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


def state_layout(run: Run, model: nn.Module, optimizer):
    """(init_params, restore target, shardings) of the train state on the run's mesh.

    Call inside `jax.set_mesh(run.mesh)` and `nn.logical_axis_rules(...)`. The target is a
    pytree of `ShapeDtypeStruct(..., sharding=...)`: what Orbax restores into.
    """
    init_params = functools.partial(run.task.init_params, model)
    abstract, shardings = state_lib.state_shardings(
        init_params, optimizer, run.mesh, sharding_lib.LOGICAL_AXIS_RULES
    )
    target = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )
    return init_params, target, shardings


def restore_state(run: Run, data_iterator=None) -> state_lib.TrainState | None:
    """The newest good checkpoint's train state on the run's mesh (None: no checkpoint)."""
    model = run.task.build_model(run.model_config)
    optimizer, _ = optim.make_optimizer(run.config.optim, run.config.train.steps)
    with jax.set_mesh(run.mesh), nn.logical_axis_rules(sharding_lib.LOGICAL_AXIS_RULES):
        _, target, _ = state_layout(run, model, optimizer)
        restored = run.checkpointer.restore(target, data_iterator)
    return None if restored is None else restored[1]
