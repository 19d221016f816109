r"""Fixed-size vs token-based batches on seq2seq_stdlib: padding fraction and real tokens/s.

  python -m benchmarks.token_batching --steps=48 --tokens_per_batch=4096 \
      --workdir_root=runs/token_batching

Trains the seq2seq_stdlib default model twice for the same number of steps through the
trainer, with `data.batching=examples` (train.batch_size rows of max_source_len x
max_target_len) and `data.batching=tokens`, evaluation and decoding off. Reports, per
batching: the padding fraction (pad positions / all positions, source and target sides) of
the first `steps` training batches, the train shapes (= compiled train programs), the real
tokens trained, and the median of the trainer's logged real tokens/s (one log per call of
`steps_per_call` steps) over the calls that compiled nothing (not the first call, nor one
whose bucket shape is new). `--reuse` reads finished runs' directories instead of training.
"""

from __future__ import annotations

import json
import pathlib
import statistics

from absl import app, flags

from experiments.configs import seq2seq_stdlib
from transformer_jax import run as run_lib
from transformer_jax.data import token_batching

_STEPS = flags.DEFINE_integer("steps", 48, "training steps per batching (a multiple of 4)")
_TOKENS = flags.DEFINE_integer("tokens_per_batch", 4096, "data.tokens_per_batch")
_ROOT = flags.DEFINE_string("workdir_root", "runs/token_batching", "run directories go here")
_REUSE = flags.DEFINE_bool("reuse", False, "report on finished runs in --workdir_root")


def _config(batching: str, steps: int, tokens_per_batch: int):
    c = seq2seq_stdlib.get_config()
    c.data.update(batching=batching, tokens_per_batch=tokens_per_batch)
    c.train.update(steps=steps, eval_every=steps, checkpoint_every=steps, eval_batches=1,
                   log_every=c.train.steps_per_call)
    c.task.update(eval_decode_examples=0, demo_examples=0)
    return c


def measure(batching: str, steps: int, tokens_per_batch: int, root: pathlib.Path) -> dict:
    """One training run's figures (see the module docstring)."""
    config, workdir = _config(batching, steps, tokens_per_batch), root / batching
    if not _REUSE.value:
        if workdir.exists():
            raise SystemExit(f"{workdir} exists: give another --workdir_root (a run there "
                             "would resume, not measure), or --reuse")
        run_lib.train_and_evaluate(config, str(workdir))
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    run = run_lib.setup_run(config, str(workdir))
    placement = run.placement()
    batches = run.task.train_batches(run.tokenizer, batch_size=placement.local_batch,
                                     seed=config.train.seed, process_index=0, process_count=1)
    seen = [next(batches) for _ in range(steps)]
    batches.close()
    shape = [(b["source"].shape[1], b["targets"].shape[1]) for b in seen]
    shapes = sorted(set(shape))
    k = config.train.steps_per_call
    speeds = [r["tokens_per_s"] for r in train if "tokens_per_s" in r and r["step"] > k
              and shape[r["step"] - 1] in shape[:r["step"] - k]]  # compiled nothing
    return {"batching": batching, "steps": steps, "tokens_per_batch": tokens_per_batch,
            "padding_fraction": token_batching.padding_fraction(seen),
            "shapes": len(shapes), "real_tokens": sum(r["tokens"] for r in train),
            "rows_per_step": sum(len(b["source"]) for b in seen) / steps,
            "median_tokens_per_s": statistics.median(speeds)}


def main(argv):
    del argv
    root = pathlib.Path(_ROOT.value)
    results = [measure(b, _STEPS.value, _TOKENS.value, root) for b in ("examples", "tokens")]
    print("| batching | padding fraction | train shapes | rows/step | real tokens | "
          "real tokens/s (median) |\n|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['batching']} | {r['padding_fraction']:.1%} | {r['shapes']} | "
              f"{r['rows_per_step']:.0f} | {r['real_tokens']:,.0f} | "
              f"{r['median_tokens_per_s']:,.0f} |")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    app.run(main)
