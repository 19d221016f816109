"""An lm-evaluation-harness model for GPT run directories (`pip install '.[lmeval]'`).

    from transformer_jax.eval.lm_eval_adapter import RunDirLM
    lm_eval.simple_evaluate(model=RunDirLM("runs/gpt_stdlib"), tasks=["lambada_openai"])

Scoring is one batched forward per `batch_size` requests: rows are `[bos] + context +
continuation` (the documents' framing in training), right-padded to a power of two (at most
`model.max_len`), so a handful of shapes are compiled; padding has segment id 0, exactly as in
the project's packed eval batches, so a row's scores equal `tasks/lm.py:eval_step`'s.
Sequences longer than `max_len` keep their last `max_len` tokens (loglikelihood) or are
scored in disjoint rolling windows (`loglikelihood_rolling`, as the harness's own models do).
`generate_until` decodes with the KV cache (`decoding/lm.py:generate`), greedy unless the
request asks to sample.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from transformer_jax.errors import UserError
from transformer_jax.tasks.lm import LanguageModeling

try:
    import lm_eval
    from lm_eval import utils as lm_eval_utils
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager
except ImportError as e:  # the harness is an optional extra
    raise UserError("lm-eval is not installed: pip install 'transformer_jax[lmeval]' "
                    "(or pip install 'lm-eval>=0.4.13')") from e


__all__ = ["RunDirLM", "TaskManager", "lm_eval", "token_logprobs"]


def token_logprobs(params: Any, batch: dict[str, jax.Array], *, model) -> tuple[jax.Array,
                                                                                   jax.Array]:
    """Per-row sums of the target log-probabilities where `weights` is 1, and whether every
    weighted target is the argmax.

    Args:
      params: the GPT's parameters.
      batch: int32 [B, T] `inputs`, `targets`, `positions`, `segment_ids` (0 = padding) and
        float32 [B, T] `weights`.
      model: the GPT with `deterministic=True`.

    Returns:
      (logprob [B] float32, greedy [B] bool).
    """
    logits = model.apply({"params": params}, batch["inputs"], positions=batch["positions"],
                         segment_ids=batch["segment_ids"])  # [B, T, V]
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    target_logp = jnp.take_along_axis(logp, batch["targets"][..., None], axis=-1)[..., 0]
    scored = batch["weights"] > 0
    greedy = jnp.all((jnp.argmax(logits, axis=-1) == batch["targets"]) | ~scored, axis=-1)
    return jnp.sum(jnp.where(scored, target_logp, 0.0), axis=-1), greedy


class RunDirLM(LM):
    """The newest checkpoint (or `step`) of a GPT run directory as an lm-eval `LM`.

    Args:
      workdir: an `lm` run directory.
      batch_size: rows per forward pass.
      max_gen_toks: `generate_until`'s default length limit.
      step: the checkpoint step (None: the newest good one).
    """

    def __init__(self, workdir: str, batch_size: int = 8, max_gen_toks: int = 256,
                 step: int | None = None):
        super().__init__()
        from transformer_jax.run.workdir import load_run

        self.run, self.params, self.step = load_run(workdir, step)
        if not isinstance(self.run.task, LanguageModeling):
            raise UserError(f"{workdir} holds a {self.run.task.name!r} run: lm-eval scores "
                            "language models (task 'lm')")
        self.tokenizer = self.run.tokenizer
        self.model_config = self.run.model_config
        self.batch_size = batch_size
        self.max_gen_toks = max_gen_toks
        self.max_len = self.model_config.max_len
        model = self.run.task.build_model(self.model_config.replace(deterministic=True))
        self._score = jax.jit(functools.partial(token_logprobs, model=model))

    # Scoring ------------------------------------------------------------------------------
    def score(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(log p(continuation | context), greedy) of each (context ids, continuation ids).

        The context must start with the prefix token (bos); context + continuation is cut to
        its last `max_len + 1` tokens (the model's inputs are all but the last).
        """
        order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]) - len(pairs[i][1]))
        out: list[tuple[float, bool]] = [(0.0, True)] * len(pairs)
        with jax.set_mesh(self.run.mesh):
            for start in range(0, len(order), self.batch_size):
                chunk = order[start:start + self.batch_size]
                logprob, greedy = self._score(self.params, self._rows([pairs[i] for i in chunk]))
                for row, i in enumerate(chunk):
                    out[i] = (float(logprob[row]), bool(greedy[row]))
        return out

    def _rows(self, pairs: list[tuple[list[int], list[int]]]) -> dict[str, np.ndarray]:
        """A [batch_size, L] batch, L the next power of two of the longest row (<= max_len)."""
        seqs = [(ctx + cont)[-(self.max_len + 1):] for ctx, cont in pairs]
        longest = max(len(s) - 1 for s in seqs)
        length = min(self.max_len, 1 << max(longest - 1, 0).bit_length())
        shape = (self.batch_size, length)
        batch = {k: np.zeros(shape, np.int32) for k in
                 ("inputs", "targets", "positions", "segment_ids")}
        batch["weights"] = np.zeros(shape, np.float32)
        for row, (seq, (_, cont)) in enumerate(zip(seqs, pairs, strict=True)):
            n = len(seq) - 1
            batch["inputs"][row, :n] = seq[:-1]
            batch["targets"][row, :n] = seq[1:]
            batch["positions"][row, :n] = np.arange(n)
            batch["segment_ids"][row, :n] = 1
            batch["weights"][row, max(n - len(cont), 0):n] = 1.0
        return batch

    def _pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids of a request, split as the harness's HF model does: the whole string is
        encoded once; trailing context spaces go to the continuation."""
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self.tokenizer.encode(context + continuation)
        context_ids = self.tokenizer.encode(context) if context else []
        return [self.tokenizer.bos_id, *whole[:len(context_ids)]], whole[len(context_ids):]

    # The harness's API ---------------------------------------------------------------------
    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        return self.score([self._pair(*r.args) for r in requests])

    def loglikelihood_rolling(self, requests) -> list[float]:
        results = []
        for request in requests:
            ids = self.tokenizer.encode(request.args[0])
            windows = [lm_eval_utils.make_disjoint_window(w) for w in
                       lm_eval_utils.get_rolling_token_windows(
                           ids, prefix_token=self.tokenizer.bos_id, max_seq_len=self.max_len,
                           context_len=1)]
            results.append(sum(lp for lp, _ in self.score(windows)))
        return results

    def generate_until(self, requests) -> list[str]:
        from transformer_jax.decoding import lm as lm_decoding

        decoder = self.run.task.build_model(
            self.model_config.replace(decode=True, deterministic=True))
        outputs = []
        for request in requests:
            context, kwargs = request.args
            kwargs = dict(kwargs or {})
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = min(int(kwargs.get("max_gen_toks", self.max_gen_toks)), self.max_len - 1)
            ids = [self.tokenizer.bos_id, *self.tokenizer.encode(context)]
            ids = ids[-(self.max_len - max_new):]
            temperature = float(kwargs.get("temperature", 0.0)) if kwargs.get(
                "do_sample") else 0.0
            with jax.set_mesh(self.run.mesh):
                new = lm_decoding.generate(
                    decoder, self.params, jnp.asarray([ids], jnp.int32), max_new_tokens=max_new,
                    rng=jax.random.key(0), temperature=temperature,
                    eos_id=self.tokenizer.eos_id)
            new = [int(t) for t in np.asarray(new)[0]]
            if self.tokenizer.eos_id in new:
                new = new[:new.index(self.tokenizer.eos_id)]
            text = self.tokenizer.decode(new)
            for stop in until:
                if stop and stop in text:
                    text = text[:text.index(stop)]
            outputs.append(text)
        return outputs
