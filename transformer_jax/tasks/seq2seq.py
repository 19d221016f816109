"""Sequence-to-sequence (translation, summarization) with the encoder-decoder Transformer.

Training minimizes label-smoothed cross entropy on the target tokens. Evaluation reports
loss / token accuracy on validation batches and decodes a bounded number of validation
examples with beam search to score BLEU (sacrebleu) and ROUGE-1/2/L (rouge-score). Every
process runs the same jitted calls on its rows of each global batch and gets the same
numbers.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from transformer_jax import beam_search, seq2seq_decode
from transformer_jax.data import batching, pairs, seq2seq
from transformer_jax.data.tokenizer import Tokenizer
from transformer_jax.errors import UserError
from transformer_jax.metrics import generation
from transformer_jax.models.config import ModelConfig
from transformer_jax.models.encdec import EncoderDecoder
from transformer_jax.tasks.base import Batch, BatchIterator, EvalContext, LossFn, Task
from transformer_jax.train import losses


class _PairText:
    """A pair source seen as documents "source\\ntarget", to train the shared tokenizer on."""

    def __init__(self, pair_source):
        self._pairs = pair_source
        self.name, self.fingerprint = pair_source.name, pair_source.fingerprint
        self.split = pair_source.split

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, index: int) -> str:
        return "\n".join(self._pairs[index])


def seq2seq_loss_fn(model: nn.Module, label_smoothing: float = 0.0) -> LossFn:
    """Label-smoothed cross entropy over target tokens (padding, targets == 0, has weight 0)."""

    def loss_fn(params, batch, rng):
        logits = model.apply({"params": params}, batch["source"], batch["target_inputs"],
                             rngs={"dropout": rng})  # [B, T, V]
        return losses.cross_entropy(logits, batch["targets"], batch["targets"] > 0,
                                    label_smoothing=label_smoothing)

    return loss_fn


@functools.partial(jax.jit, static_argnames=("model",))
def _eval_sums(params, batch, *, model):
    logits = model.apply({"params": params}, batch["source"], batch["target_inputs"])
    weights = batch["targets"] > 0
    loss_sum, tokens = losses.cross_entropy(logits, batch["targets"], weights)
    correct = jnp.sum((jnp.argmax(logits, -1) == batch["targets"]) & weights)
    return loss_sum, tokens, correct.astype(jnp.float32)


class Seq2Seq(Task):
    """Encoder-decoder training on (source, target) pairs; see experiments/configs/seq2seq_*."""

    name = "seq2seq"
    headline_metrics = ("loss", "token_accuracy", "bleu", "rougeL")

    def __init__(self, config, model_config: ModelConfig):
        super().__init__(config, model_config)
        if model_config.family != "encdec":
            raise UserError(f"task seq2seq needs an encoder-decoder preset (transformer_*), "
                            f"got model.preset={model_config.preset!r}")
        data = config.data
        longest = max(data.max_source_len, data.max_target_len + 1)
        if model_config.position == "learned" and longest > model_config.max_len:
            raise UserError(f"data.max_source_len/max_target_len ({longest}) exceed "
                            f"model.max_len={model_config.max_len}")
        self._examples: dict[tuple[str, int], seq2seq.Seq2SeqExamples] = {}

    # Data ---------------------------------------------------------------------------------
    def tokenizer_source(self):
        """The train pairs as "source\\ntarget" documents (one shared vocabulary)."""
        return _PairText(pairs.make_pairs(self.config.data, "train"))

    def examples(self, tokenizer: Tokenizer, split: str) -> seq2seq.Seq2SeqExamples:
        """The split's examples after length filtering (built once per tokenizer)."""
        key = (split, id(tokenizer))
        if key not in self._examples:
            data = self.config.data
            self._examples[key] = seq2seq.Seq2SeqExamples(
                pairs.make_pairs(data, split), tokenizer, data.max_source_len,
                data.max_target_len, data.long_examples,
            )
        return self._examples[key]

    def init_batch(self) -> Batch:
        data = self.config.data
        return {"source": np.zeros((1, data.max_source_len), np.int32),
                "target_inputs": np.zeros((1, data.max_target_len), np.int32),
                "targets": np.zeros((1, data.max_target_len), np.int32)}

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"source": batch["source"], "target_inputs": batch["target_inputs"]}

    def train_batches(self, tokenizer: Tokenizer, *, batch_size: int, seed: int,
                      process_index: int, process_count: int) -> BatchIterator:
        examples = self.examples(tokenizer, "train")
        return batching.ExampleBatches(
            examples.dataset, batch_size=batch_size, seed=seed, shuffle=True, repeat=True,
            process_index=process_index, process_count=process_count,
        )

    # Model and loss -----------------------------------------------------------------------
    def build_model(self, model_config: ModelConfig) -> nn.Module:
        return EncoderDecoder(model_config)

    def loss_fn(self, model: nn.Module) -> LossFn:
        return seq2seq_loss_fn(model, self.config.task.label_smoothing)

    def metadata(self) -> dict[str, Any]:
        data = self.config.data
        return {"max_source_len": data.max_source_len, "max_target_len": data.max_target_len,
                "bleu_signature": generation.bleu_signature()}

    # Evaluation and decoding ----------------------------------------------------------------
    def evaluate(self, ctx: EvalContext, params: Any, split: str = "validation"
                 ) -> dict[str, float]:
        """Loss, token accuracy, and BLEU / ROUGE of beam-decoded examples.

        Decodes the first `task.eval_decode_examples` examples of the split (all of them
        when `train.eval_batches` is None, i.e. in experiments.evaluate).
        """
        examples = self.examples(ctx.tokenizer, split)
        model = self.build_model(ctx.model_config.replace(deterministic=True))
        batches = batching.ExampleBatches(
            examples.dataset, batch_size=ctx.local_batch, shuffle=False, repeat=False,
            process_index=ctx.process_index, process_count=ctx.process_count,
        )
        limit = self.config.train.get("eval_batches")
        totals = np.zeros(3)
        for batch in itertools.islice(batches, limit):
            sums = _eval_sums(params, ctx.to_global(batch), model=model)
            totals += [float(ctx.gather(s)) for s in sums]
        batches.close()
        loss_sum, tokens, correct = (float(x) for x in totals)
        results = {"loss": loss_sum / max(tokens, 1.0),
                   "token_accuracy": correct / max(tokens, 1.0), "tokens": tokens}
        n = len(examples) if limit is None else min(len(examples),
                                                    self.config.task.eval_decode_examples)
        if n:
            indices = range(n)
            sources = [examples.pair(i)[0] for i in indices]
            references = [examples.pair(i)[1] for i in indices]
            hypotheses = self.decode_texts(ctx, params, sources)
            results["bleu"], _ = generation.bleu(hypotheses, references)
            results.update(generation.rouge(hypotheses, references))
            results["decoded"] = float(n)
        return results

    def decode_texts(self, ctx: EvalContext, params: Any, texts: Sequence[str], *,
                     temperature: float = 0.0, seed: int = 0) -> list[str]:
        """Beam-search outputs for raw source texts (task.beam_size=0: sampled; greedy at
        temperature 0).

        Texts are decoded in global batches of `ctx.local_batch * process_count` rows; each
        process supplies its rows, so every process makes the same calls and gets all outputs.
        """
        task, data, tok = self.config.task, self.config.data, ctx.tokenizer
        model = self.build_model(ctx.model_config.replace(deterministic=True, decode=True))
        global_batch = ctx.local_batch * ctx.process_count
        sources = seq2seq.encode_source(tok, list(texts), data.max_source_len)
        padded = -(-len(texts) // global_batch) * global_batch
        sources = np.pad(sources, ((0, padded - len(texts)), (0, 0)))
        common = dict(max_decode_len=data.max_target_len, bos_id=tok.bos_id, eos_id=tok.eos_id,
                      len_a=task.len_a, len_b=task.len_b or None)
        outputs = []
        for start in range(0, padded, global_batch):
            rows = sources[start + ctx.process_index * ctx.local_batch:][: ctx.local_batch]
            source = ctx.to_global({"source": rows})["source"]
            if task.beam_size:
                out, _ = beam_search.beam_search(model, params, source, beam_size=task.beam_size,
                                                 alpha=task.alpha, **common)
            else:
                out = seq2seq_decode.sample(model, params, source, temperature=temperature,
                                            rng=jax.random.key(seed + start), **common)
            outputs.append(ctx.gather(out))
        ids = np.concatenate(outputs)[: len(texts)]
        return [tok.decode(_until_eos(row, tok.eos_id)) for row in ids]

    def demo(self, ctx: EvalContext, params: Any) -> str | None:
        """A few decoded validation examples: source head, reference and output."""
        examples = self.examples(ctx.tokenizer, "validation")
        n = min(len(examples), self.config.task.demo_examples)
        if not n:
            return None
        chosen = [examples.pair(i) for i in range(n)]
        outputs = self.decode_texts(ctx, params, [s for s, _ in chosen])
        blocks = []
        for (source, reference), output in zip(chosen, outputs, strict=True):
            head = source if len(source) <= 200 else source[:200] + " ..."
            blocks.append(f"source:    {head}\nreference: {reference}\noutput:    {output}")
        return "\n\n".join(blocks)

    def predict(self, ctx: EvalContext, params: Any, lines: Sequence[str], *,
                temperature: float = 0.0, seed: int = 0) -> list[str]:
        """One decoded output per input line.

        A literal "\\n" in an input line stands for a newline (multi-line sources such as
        code); newlines in outputs are written as "\\n", so each output is one line.
        """
        sources = [line.replace("\\n", "\n") for line in lines]
        outputs = self.decode_texts(ctx, params, sources, temperature=temperature, seed=seed)
        return [out.replace("\n", "\\n") for out in outputs]


def _until_eos(row: np.ndarray, eos_id: int) -> list[int]:
    ids = row.tolist()
    return ids[: ids.index(eos_id)] if eos_id in ids else [i for i in ids if i]
