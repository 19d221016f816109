r"""Score a GPT run directory with lm-evaluation-harness; prints the harness's table.

  pip install -e '.[lmeval]'
  python -m experiments.lm_eval --workdir=runs/gpt_stdlib --tasks=lambada_openai,hellaswag \
      [--include_path=DIR] [--num_fewshot=N] [--limit=N] [--batch_size=8] [--step=N]

`--include_path` adds a directory of task YAMLs (e.g. a local `dataset_path: json` task).
The results JSON is written to WORKDIR/lm_eval/results_step<STEP>.json.
"""

import json
import pathlib

from absl import app, flags, logging

from experiments import common
from transformer_jax.errors import UserError

_WORKDIR = flags.DEFINE_string("workdir", None, "A GPT (task lm) run directory.",
                               required=True)
_TASKS = flags.DEFINE_list("tasks", None, "Comma-separated harness task names.", required=True)
_INCLUDE = flags.DEFINE_string("include_path", None, "A directory of extra task YAMLs.")
_FEWSHOT = flags.DEFINE_integer("num_fewshot", None, "Few-shot examples (default: task's).")
_LIMIT = flags.DEFINE_integer("limit", None, "At most this many examples per task.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Rows per forward pass.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")


def evaluate(workdir: str, tasks: list[str], include_path: str | None = None,
             num_fewshot: int | None = None, limit: int | None = None, batch_size: int = 8,
             step: int | None = None) -> tuple[dict, pathlib.Path]:
    """Runs the harness on `workdir`; returns its results dict and the JSON file written."""
    # Imported here: without the lm-eval extra, the import is a one-line UserError.
    from transformer_jax.eval.lm_eval_adapter import RunDirLM, TaskManager, lm_eval

    if include_path and not pathlib.Path(include_path).is_dir():
        raise UserError(f"--include_path={include_path}: not a directory of task YAMLs")
    manager = TaskManager(include_path=include_path)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise UserError(f"--tasks: unknown harness task(s) {unknown}; see `lm_eval ls tasks` "
                        "or give --include_path with their YAMLs")
    model = RunDirLM(workdir, batch_size=batch_size, step=step)
    results = lm_eval.simple_evaluate(model=model, tasks=tasks, num_fewshot=num_fewshot,
                                      limit=limit, task_manager=manager, log_samples=False)
    out = pathlib.Path(workdir) / "lm_eval" / f"results_step{model.step}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"step": model.step, "results": results["results"],
                               "versions": results.get("versions"),
                               "n-shot": results.get("n-shot")}, indent=2, default=str) + "\n")
    return results, out


def main(argv):
    del argv

    def run():
        logging.set_verbosity(logging.ERROR)  # Orbax's read-only notices
        from lm_eval.utils import make_table

        results, out = evaluate(_WORKDIR.value, _TASKS.value, _INCLUDE.value, _FEWSHOT.value,
                                _LIMIT.value, _BATCH.value, _STEP.value)
        print(make_table(results))
        print(f"results: {out}")

    common.run_main(run)


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
