"""`task.name=distill`: a smaller student trained against a frozen teacher of its family.

The student's task (`task.student`: "lm" or "classify") supplies everything but the loss:
data, model, evaluation, demo and predict. So a distilled student reports its own task's
metrics (bits/byte, accuracy) and compares directly with the same student trained from
scratch; `experiments.evaluate/predict/generate` treat its run directory like the student
task's. The loss is `train/distill.py`'s

    α · T² · KL(teacher_T ‖ student_T) + (1 − α) · hard-label cross entropy

(α = `task.kd_alpha`, T = `task.kd_temperature`), with the teacher's logits computed in the
same jitted train step. The teacher (`task.teacher`: a training run directory, or hf:DIR
through the `init_from` loader) is loaded once per run into the shardings the student's
logical-axis rules give its params, and passed to every step as a jit argument
(`Task.frozen_params`): it gets no gradient and no optimizer state, and is not saved in the
student's checkpoints (a resumed run reloads it from `task.teacher`). The student uses the
teacher's tokenizer (copied into its workdir); a teacher of another family, task, vocabulary
or label set is a UserError before anything is written.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from typing import Any

import jax
import ml_collections

from transformer_jax import checkpoint as checkpoint_lib
from transformer_jax import sharding as sharding_lib
from transformer_jax import workpath
from transformer_jax.data import text_tokenizer
from transformer_jax.errors import UserError
from transformer_jax.models.config import ModelConfig
from transformer_jax.tasks.base import Batch, LossFn, Task
from transformer_jax.tasks.classify import SequenceClassification
from transformer_jax.tasks.lm import LanguageModeling
from transformer_jax.train import distill, lora, pretrained

# The student tasks, and each one's hard labels and their weights in a batch.
STUDENTS: dict[str, tuple[type[Task], Callable[[Batch], tuple[Any, Any]]]] = {
    "lm": (LanguageModeling, lambda b: (b["targets"], b["segment_ids"] > 0)),
    "classify": (SequenceClassification, lambda b: (b["label"], b["weight"])),
}
FLAG = "config.task.teacher"


@dataclasses.dataclass(frozen=True)
class Teacher:
    """A located, checked teacher.

    Attributes:
      located: its checkpoint (or Hugging Face directory), for `pretrained.load_into`.
      model_config: its model, deterministic (no dropout), in the student's compute dtype.
    """

    located: pretrained.Pretrained
    model_config: ModelConfig


class Distillation(Task):
    """The student's task (`task.student`) with the distillation loss.

    `Distillation(config, model_config)` returns an instance of `distilled(student class)`,
    a subclass of both this class and the student's task class.
    """

    name = "distill"

    def __new__(cls, config: ml_collections.ConfigDict, model_config: ModelConfig):
        if cls is Distillation:
            student = config.task.get("student", "lm")
            if student not in STUDENTS:
                raise UserError(f"config.task.student={student!r}: distillation trains one of "
                                f"{sorted(STUDENTS)}")
            cls = distilled(student)
        return super().__new__(cls)

    def __init__(self, config: ml_collections.ConfigDict, model_config: ModelConfig):
        super().__init__(config, model_config)  # the student task's checks
        alpha, temperature = config.task.kd_alpha, config.task.kd_temperature
        if not 0.0 <= alpha <= 1.0:
            raise UserError(f"config.task.kd_alpha={alpha!r}: the soft loss's weight is in "
                            "[0, 1] (0 = hard labels only)")
        if not temperature > 0:
            raise UserError(f"config.task.kd_temperature={temperature!r}: use a temperature "
                            "> 0 (e.g. 1)")
        if config.get("init_from"):
            raise UserError(f"config.init_from={config.init_from!r}: a distill student starts "
                            "fresh, with the teacher's tokenizer; drop init_from")
        if lora.lora_config(config) is not None:
            raise UserError("config.lora.rank: a distill student trains all its weights; set "
                            "--config.lora.rank=0")
        self.student = config.task.get("student", "lm")

    @functools.cached_property
    def teacher(self) -> Teacher:
        """The teacher of `task.teacher`, located and checked against the student (cached)."""
        return locate_teacher(self.config.task.get("teacher", ""), self)

    def check_data(self) -> None:
        super().check_data()
        self.teacher  # noqa: B018 -- locating it is the check (before anything is written)

    def tokenizer_from(self) -> pretrained.Pretrained:
        return self.teacher.located

    def frozen_params(self, mesh: jax.sharding.Mesh) -> Any:
        """The teacher's params, read straight into the shardings the logical-axis rules
        give them on `mesh` (call inside the mesh and the rules)."""
        model = self.build_model(self.teacher.model_config)
        boxed = jax.eval_shape(functools.partial(self.init_params, model), jax.random.key(0))
        target = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
            sharding_lib.strip_boxes(boxed), sharding_lib.tree_shardings(boxed, mesh))
        params = pretrained.load_into(self.teacher.located, target)
        missing = sorted(k for k, v in params.items()
                         if any(not isinstance(x, jax.Array) for x in jax.tree.leaves(v)))
        if missing:
            raise UserError(f"{FLAG}={self.config.task.teacher!r} holds no "
                            f"{', '.join(missing)} weights: give a trained {self.student!r} run")
        return params

    def loss_fn(self, model) -> LossFn:
        """(params, batch, rng, *, frozen) -> the distillation loss's sums; `frozen` are the
        teacher's params (no dropout in the teacher, no gradient through it)."""
        teacher_model = self.build_model(self.teacher.model_config)
        hard_labels = STUDENTS[self.student][1]
        alpha, temperature = self.config.task.kd_alpha, self.config.task.kd_temperature

        def loss_fn(params, batch, rng, *, frozen):
            inputs = self.model_inputs(batch)
            student = model.apply({"params": params}, **inputs, rngs={"dropout": rng})
            teacher = jax.lax.stop_gradient(teacher_model.apply({"params": frozen}, **inputs))
            targets, weights = hard_labels(batch)
            return distill.distillation_loss(student, teacher, targets, weights, alpha=alpha,
                                             temperature=temperature)

        return loss_fn

    def flops_per_token(self) -> float:
        """The student's training FLOPs plus the teacher's forward (a third of its
        training FLOPs), per token."""
        teacher_task = STUDENTS[self.student][0](self.config, self.teacher.model_config)
        return super().flops_per_token() + teacher_task.flops_per_token() / 3


@functools.cache
def distilled(student: str) -> type[Distillation]:
    """The distillation task class of `student` ("lm" or "classify")."""
    base = STUDENTS[student][0]
    return type(f"Distilled{base.__name__}", (Distillation, base), {"__doc__": (
        f"{base.__name__} trained with the distillation loss (tasks/distill.py).")})


def locate_teacher(path: str, task: Distillation) -> Teacher:
    """The teacher at `path` (a run directory or hf:DIR), checked against `task`'s student.

    Raises:
      UserError: no path, no checkpoint or tokenizer there, a LoRA teacher (merge it
        first), or another family, task, vocabulary, label set, or too few positions.
    """
    if not path:
        raise UserError(f"{FLAG} is empty: give the teacher's training run directory (or "
                        "hf:DIR)")
    if path.startswith("hf:"):
        from transformer_jax.interop import api

        _, _, arch = api.open_hf(os.path.expanduser(path.removeprefix("hf:")))
        saved, kind, labels = arch.model.to_dict(), arch.task, None
        located = pretrained.locate(path, arch.model)
        num_labels = arch.num_labels
    else:
        root = workpath.resolve(path if workpath.is_url(path) else os.path.expanduser(path),
                                flag=FLAG)
        workpath.check_reachable(root, write=False, flag=FLAG)
        found = checkpoint_lib.Checkpointer(root / "checkpoints").read_metadata()
        if found is None:
            raise UserError(f"{FLAG}={path!r}: no checkpoint in {root / 'checkpoints'}; give "
                            "a trained run directory (e.g. the quickstart's runs/gpt_stdlib)")
        if not text_tokenizer.in_dir(root):
            raise UserError(f"{FLAG}={path!r}: {root} holds no tokenizer to share with the "
                            "student; give a run directory experiments.train wrote")
        step, meta = found
        saved, kind = meta.get("model", {}), meta.get("task", {}).get("name", "lm")
        labels = meta.get("task", {}).get("labels")
        num_labels = None if labels is None else len(labels)
        located = pretrained.Pretrained(root, checkpoint_lib.Checkpointer(root / "checkpoints"),
                                        step, meta)
    _check_teacher(path, saved, kind, labels, num_labels, task)
    fields = {f.name for f in dataclasses.fields(ModelConfig)} - {"lora", "deterministic",
                                                                  "decode"}
    model_config = ModelConfig(**{k: v for k, v in saved.items() if k in fields}).replace(
        deterministic=True, dtype=task.model_config.dtype)
    if located.hf:  # converted into any layout: the student's
        model_config = model_config.replace(scan_layers=task.model_config.scan_layers)
    return Teacher(located, model_config)


def _check_teacher(path: str, saved: dict, kind: str, labels: list[str] | None,
                   num_labels: int | None, task: Distillation) -> None:
    """UserError when the teacher (its model dict, task name, labels) can't teach `task`."""
    student = task.model_config
    if saved.get("lora"):
        raise UserError(f"{FLAG}={path!r} was trained with LoRA adapters: merge them first "
                        "(experiments.lora_merge) and give the merged run")
    if saved.get("family") != student.family:
        raise UserError(f"{FLAG}={path!r} is a {saved.get('family')!r} model but the student "
                        f"(model.preset={student.preset!r}) is {student.family!r}: distill "
                        "within one family")
    if kind != task.student:
        raise UserError(f"{FLAG}={path!r} holds a {kind!r} run but task.student="
                        f"{task.student!r}: give a trained {task.student!r} run")
    if saved.get("vocab_size") != student.vocab_size:
        raise UserError(f"{FLAG}={path!r} has vocab_size={saved.get('vocab_size')} but "
                        f"model.vocab_size={student.vocab_size}: the student uses the "
                        f"teacher's tokenizer; set --config.model.vocab_size="
                        f"{saved.get('vocab_size')}")
    seq_len = task.config.data.seq_len
    if saved.get("position") == "learned" and saved.get("max_len", seq_len) < seq_len:
        raise UserError(f"{FLAG}={path!r} has max_len={saved['max_len']} < data.seq_len="
                        f"{seq_len}: use --config.data.seq_len={saved['max_len']} or less")
    if task.student == "classify":
        mine = list(task.labels)
        if (labels is not None and list(labels) != mine) or num_labels != len(mine):
            theirs = labels if labels is not None else f"{num_labels} labels"
            raise UserError(f"{FLAG}={path!r} classifies into {theirs} but the student's "
                            f"data has {mine}: distill on the teacher's data")
