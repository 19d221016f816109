r"""Knowledge distillation (task `distill`): the quickstart GPT teaches a 1-layer student.

Offline. Train the teacher (the quickstart), then distill it into the same model with 1 of
its 2 layers, on the same data and schedule:

  python -m experiments.train --workdir=runs/gpt_stdlib
  python -m experiments.train --config=experiments/configs/distill_stdlib.py \
      --workdir=runs/distill_stdlib [--config.task.teacher=runs/gpt_stdlib]

The same student from scratch, for comparison: the quickstart with
`--config.model.num_layers=1`. The loss is kd_alpha * T^2 * KL(teacher_T || student_T) +
(1 - kd_alpha) * cross entropy (T = kd_temperature; transformer_jax/tasks/distill.py); the
evaluation is the student's own (held-out bits/byte).

Arguments after ':' pick a variant:
  :classify       DistilBERT-style: a fine-tuned classify_stdlib run (runs/classify_stdlib)
                  teaches a 1-layer BERT on the same docstring classification.
  :test           a smoke run for tests: the gpt_stdlib ':test' model with 1 layer (give
                  --config.task.teacher, a gpt_stdlib ':test' run).
  :classify_test  the same for classification (teacher: a classify_stdlib ':test' run).
  (none)          the LM default above.
"""

import ml_collections

from experiments.configs import classify_stdlib, common, gpt_stdlib

VARIANTS = ("test", "classify", "classify_test")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The distillation config; `arg` is None or one of `VARIANTS`."""
    common.check_argument(arg, VARIANTS)
    classify = bool(arg) and arg.startswith("classify")
    test = "test" if arg in ("test", "classify_test") else None
    c = classify_stdlib.get_config(test) if classify else gpt_stdlib.get_config(test)
    del c.init_from, c.lora  # the student starts fresh and trains every weight
    c.task = ml_collections.ConfigDict(dict(
        name="distill",
        student="classify" if classify else "lm",   # the student's task
        # The teacher: a trained run directory of the student's task and family (or hf:DIR).
        teacher="runs/classify_stdlib" if classify else "runs/gpt_stdlib",
        kd_alpha=0.5,        # weight of the soft (teacher) term; 1 - kd_alpha: hard labels
        kd_temperature=1.0,  # softmax temperature of both distributions in the soft term
    ))
    # Half the teacher's layers (the quickstart, bert_tiny and the ':test' models: 2 -> 1).
    c.model.num_layers = 1
    return c
