"""The one trainer: a resolved run -> sharded state -> train / evaluate / checkpoint -> demo.

The task (tasks/, chosen by `config.task.name`) supplies the model, batches, loss and eval
sums; this file owns the loop. The loop is a few named pieces: `run/setup.py` resolves and
checks everything before anything is written, `run/calls.py` groups steps into jitted calls
and says when a log/eval/checkpoint is due, `run/train_metrics.py` queues, writes and polices
the metrics, `run/evaluation.py` evaluates.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import ml_collections
from tqdm import tqdm

from transformer_jax import sharding as sharding_lib
from transformer_jax.compress import pruning
from transformer_jax.data import text_tokenizer
from transformer_jax.run import calls, profiling
from transformer_jax.run.evaluation import Evaluator, coverage, headline
from transformer_jax.run.setup import (
    CONFIG_FILE,
    Run,
    metadata,
    setup_run,
    state_layout,
)
from transformer_jax.run.train_metrics import Throughput, TrainMetrics
from transformer_jax.train import lora, preemption, pretrained
from transformer_jax.train import state as state_lib
from transformer_jax.train import step as step_lib
from transformer_jax.train.metric_writer import MetricWriter


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    """Trains (resuming if the workdir has a checkpoint), evaluates, checkpoints, demos.

    Returns:
      The final eval metrics (the task's, e.g. loss, perplexity, bits_per_byte for LM).
    """
    run = setup_run(config, workdir)
    task, tcfg = run.task, run.config.train
    model = task.build_model(run.model_config)
    optimizer, schedule = lora.make_optimizer(run.config, tcfg.steps)
    placement = run.placement()
    train_iter = task.train_batches(
        run.tokenizer, batch_size=placement.local_batch, seed=tcfg.seed,
        process_index=placement.process_index, process_count=placement.process_count,
    )
    with jax.set_mesh(run.mesh), nn.logical_axis_rules(sharding_lib.LOGICAL_AXIS_RULES):
        state, start_step, shardings, start = _initial_state(run, model, optimizer, train_iter)
        lora.check_targets(state.params, run.model_config.lora)
        frozen = task.frozen_params(run.mesh)  # a distillation teacher's (tasks/distill.py)
        _prepare_workdir(run)  # everything is checked: from here on the run writes
        if jax.process_index() == 0:
            print(header(run, state.params, start))
        train_steps = jax.jit(
            functools.partial(
                step_lib.train_steps, loss_fn=lora.freeze_loss(task.loss_fn(model), run.config),
                optimizer=optimizer,
                schedule=schedule, grad_accum_steps=tcfg.grad_accum_steps,
                real_tokens=task.real_tokens,
            ),
            in_shardings=(shardings, sharding_lib.steps_sharding(run.mesh), None, None),
            out_shardings=(shardings, None),
            donate_argnums=0,
        )  # compiled once per call length: steps_per_call, and 1 (see calls.call_length)
        evaluator = Evaluator(task, placement, run.tokenizer)
        writer = MetricWriter(run.workdir, resume_from=start_step)
        throughput = Throughput(task.flops_per_token())
        metrics = TrainMetrics(writer, throughput, tcfg.get("on_nonfinite", "stop"))
        bar = tqdm(total=tcfg.steps, initial=start_step, desc="train", unit="step",
                   disable=jax.process_index() != 0, dynamic_ncols=True)
        checkpoint_step = start_step if start_step else None
        eval_metrics: dict[str, float] = {}

        def evaluate(step: int, record: bool = True) -> dict[str, float]:
            result, images = evaluator.run(state.params, "validation", tcfg.eval_batches,
                                           images=record)
            if record:
                writer.write(step, "eval", result)
                writer.write_images(step, "eval", images)
            _say(bar, f"step {step}: eval on {coverage(result, placement.global_batch)}: "
                 + headline(task, result))
            return result

        rng, meta = jax.random.key(tcfg.seed), metadata(run)
        profiler = profiling.StepProfiler(tcfg.get("profile_steps", ""), run.workdir)
        try:
            with preemption.PreemptionWatcher() as watcher:
                step = start_step
                while step < tcfg.steps:
                    # A signal during the previous call stops before the next one (one process).
                    n = 0 if watcher.signalled(state) else calls.call_length(step, tcfg)
                    if n:
                        with profiler.call(step, n):
                            state, call_metrics = train_steps(
                                state, calls.stack(train_iter, n, placement), rng, frozen)
                        metrics.add(call_metrics)
                        step += n
                        profiler.after_call(step, state)
                        bar.update(n)
                    if n and step == start_step + n:
                        jax.block_until_ready(state)
                        throughput.restart(step)  # keep compilation out of tokens/s
                    # In order and without skipping: multi-host sync points are step numbers.
                    preempted = not n or any(watcher.reached(s)
                                             for s in range(step - n + 1, step + 1))
                    checkpoint = preempted or calls.due(step, tcfg.checkpoint_every, span=n,
                                                        total=tcfg.steps)
                    if metrics.pending and (checkpoint or calls.due(
                            step, tcfg.log_every, span=n, total=tcfg.steps)):
                        metrics.flush(step, checkpoint_step)
                        bar.set_postfix(**metrics.postfix())
                    if calls.due(step, tcfg.eval_every, span=n, total=tcfg.steps):
                        eval_metrics = evaluate(step)
                        throughput.restart(step)
                    if checkpoint and step != checkpoint_step:
                        writer.sync()  # a bucket's metrics.jsonl: up to this step first
                        run.checkpointer.save(step, state, train_iter, meta, force=preempted)
                        checkpoint_step = step
                    if preempted:
                        _say(bar, f"{watcher.signal_name}: saved a checkpoint at step {step}; "
                                  "run the same command again to resume")
                        break
            if not eval_metrics and start_step >= tcfg.steps:
                _say(bar, f"already at step {start_step}; evaluating only")
                eval_metrics = evaluate(start_step, record=False)  # recorded when it ran
            if eval_metrics and (prune := pruning.settings_from_config(run.config)):
                _say(bar, pruning.report(state.params, prune.targets))
            if eval_metrics:
                # Every process runs the demo (the params are sharded over all of them).
                text = task.demo(placement, state.params, run.tokenizer)
                if text:
                    _say(bar, f"\n{text}")
                    if step > start_step:  # a re-run of a finished run recorded it already
                        writer.write_text(step, "demo", text)
        finally:
            profiler.close()
            bar.close()
            train_iter.close()  # stop Grain's prefetch threads before interpreter exit
            writer.close()  # first: a failed save's error (raised by wait) must not skip it
            run.checkpointer.wait()
            run.checkpointer.close()
    return eval_metrics


def _prepare_workdir(run: Run) -> None:
    """Creates the workdir; stores the tokenizer and this invocation's resolved config
    (`config.json`) there (process 0)."""
    run.workdir.mkdir(parents=True, exist_ok=True)
    if jax.process_index() != 0:
        return
    if not text_tokenizer.in_dir(run.workdir):
        run.tokenizer.save_to_dir(run.workdir)
    (run.workdir / CONFIG_FILE).write_text(run.config.to_json_best_effort(indent=2) + "\n")


def _initial_state(run: Run, model: nn.Module, optimizer, train_iter):
    """(state, start step, shardings, how it started): the workdir's checkpoint, else
    init_from, else fresh.

    Restoring also restores `train_iter`'s position. Call inside the mesh and axis rules.
    """
    init_params, target, shardings = state_layout(run, model, optimizer)
    restored = run.checkpointer.restore(target, train_iter)
    if restored is not None:
        step, state = restored
        return state, step, shardings, f"resumed from step {step} of {run.checkpointer.directory}"
    state = state_lib.init_state(init_params, optimizer, jax.random.key(run.config.train.seed),
                                 shardings)
    if run.pretrained is None:
        return state, 0, shardings, "fresh start"
    merged = pretrained.load_into(run.pretrained, state.params)
    # load_into returns the fresh arrays untouched for the subtrees it does not load.
    loaded = sorted(k for k in merged if merged[k] is not state.params[k])
    fresh = sorted(k for k in merged if merged[k] is state.params[k])
    start = (f"init_from {run.pretrained.workdir} step {run.pretrained.step}: loaded "
             f"{', '.join(loaded)}; fresh {', '.join(fresh) or 'nothing'}")
    return state.replace(params=merged), 0, shardings, start


def header(run: Run, params, start: str) -> str:
    """Two lines saying what this run is: task, model size, devices, mesh, workdir, start."""
    count = sum(x.size for x in jax.tree.leaves(params))
    settings = run.model_config.lora
    trainable = ("" if settings is None else f" ({lora.count_trainable(params, settings):,} "
                 f"trainable: LoRA rank {settings.rank})")
    devices = jax.devices()
    mesh = " ".join(f"{axis}={size}" for axis, size in run.mesh.shape.items())
    return (f"{run.task.name}: {run.model_config.preset} ({run.model_config.family}), "
            f"{count:,} parameters{trainable}; {len(devices)} {devices[0].platform} device(s) in "
            f"{jax.process_count()} process(es), mesh {mesh}\n"
            f"workdir {run.workdir}: {start}")


def _say(bar: tqdm, message: str) -> None:
    """Prints once (process 0), without breaking the progress bar."""
    if jax.process_index() == 0:
        bar.write(message)
