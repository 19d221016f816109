"""Sequence-to-sequence (translation, summarization) with the encoder-decoder Transformer.

Training minimizes label-smoothed cross entropy on the target tokens. Evaluation reports
loss / token accuracy on validation batches and decodes a bounded number of validation
examples with beam search to score BLEU (sacrebleu) and ROUGE-1/2/L (rouge-score). Every
process runs the same jitted calls on its rows of each global batch and gets the same
numbers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from transformer_jax import sharding
from transformer_jax.data import batching, pairs, seq2seq, token_batching
from transformer_jax.data.text_tokenizer import TextTokenizer
from transformer_jax.decoding import beam_search
from transformer_jax.decoding import seq2seq as seq2seq_decoding
from transformer_jax.errors import UserError
from transformer_jax.metrics import generation
from transformer_jax.models.config import ModelConfig
from transformer_jax.models.encdec import EncoderDecoder
from transformer_jax.placement import Placement
from transformer_jax.tasks.base import Batch, BatchIterator, LossFn, Task, check_options
from transformer_jax.train import flops, losses

# experiments.predict options, defaults from `config.task` (beam) or greedy sampling.
DECODE_OPTIONS = ("beam_size", "alpha", "repetition_penalty", "no_repeat_ngram", "temperature",
                  "top_k", "top_p", "seed")


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
    """Label-smoothed cross entropy over target tokens (padding, `config.pad_id`, has weight
    0)."""
    pad_id = model.config.pad_id

    def loss_fn(params, batch, rng):
        logits = model.apply({"params": params}, batch["source"], batch["target_inputs"],
                             rngs={"dropout": rng})  # [B, T, V]
        return losses.cross_entropy(logits, batch["targets"], batch["targets"] != pad_id,
                                    label_smoothing=label_smoothing)

    return loss_fn


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
        self._examples: dict[tuple[str, str], seq2seq.Seq2SeqExamples] = {}
        _check_batching(config)

    # Data ---------------------------------------------------------------------------------
    def tokenizer_source(self):
        """The train pairs as "source\\ntarget" documents (one shared vocabulary)."""
        return _PairText(pairs.make_pairs(self.config.data, "train"))

    def examples(self, tokenizer: TextTokenizer, split: str) -> seq2seq.Seq2SeqExamples:
        """The split's examples after length filtering (built once per tokenizer)."""
        key = (split, tokenizer.fingerprint)
        if key not in self._examples:
            data = self.config.data
            self._examples[key] = seq2seq.Seq2SeqExamples(
                pairs.make_pairs(data, split), tokenizer, data.max_source_len,
                data.max_target_len, data.long_examples, pad_id=self.model_config.pad_id,
                start_id=self.model_config.decoder_start_id,
            )
        return self._examples[key]

    def init_batch(self) -> Batch:
        data = self.config.data
        return {"source": np.zeros((1, data.max_source_len), np.int32),
                "target_inputs": np.zeros((1, data.max_target_len), np.int32),
                "targets": np.zeros((1, data.max_target_len), np.int32)}

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"source": batch["source"], "target_inputs": batch["target_inputs"]}

    def train_batches(self, tokenizer: TextTokenizer, *, batch_size: int, seed: int,
                      process_index: int, process_count: int) -> BatchIterator:
        examples = self.examples(tokenizer, "train")
        if self.config.data.get("batching", "examples") == "tokens":
            tcfg, mcfg = self.config.train, self.config.mesh
            data_parallel = sharding.data_parallel_size(
                sharding.make_mesh(mcfg.data, mcfg.fsdp, mcfg.tensor))
            data = self.config.data
            return token_batching.TokenBatches(
                examples.example, examples.lengths, (data.max_source_len, data.max_target_len),
                tokens_per_batch=data.tokens_per_batch,
                multiple=data_parallel * tcfg.grad_accum_steps, group=tcfg.steps_per_call,
                seed=seed, process_index=process_index, process_count=process_count)
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

    def tokens_per_example(self) -> int:
        return self.config.data.max_source_len + self.config.data.max_target_len

    def real_tokens(self, batch: Batch) -> jax.Array:
        # `pad_id` pads both sides; each target position (its EOS included) is one decoder token.
        pad = self.model_config.pad_id
        return jnp.sum(batch["source"] != pad) + jnp.sum(batch["targets"] != pad)

    def flops_per_token(self) -> float:
        data = self.config.data
        return flops.encdec_train_flops_per_example(
            self.model_config, data.max_source_len, data.max_target_len
        ) / self.tokens_per_example()

    # Evaluation and decoding ----------------------------------------------------------------
    def eval_batches(self, tokenizer: TextTokenizer, split: str, *, batch_size: int,
                     process_index: int, process_count: int, max_batches: int | None):
        batches = batching.ExampleBatches(
            self.examples(tokenizer, split).dataset, batch_size=batch_size, shuffle=False,
            repeat=False, process_index=process_index, process_count=process_count,
        )
        yield from itertools.islice(batches, max_batches)
        batches.close()

    def eval_sums(self, model: nn.Module, params: Any, batch: Batch) -> dict[str, jax.Array]:
        logits = model.apply({"params": params}, batch["source"], batch["target_inputs"])
        weights = batch["targets"] != self.model_config.pad_id
        loss_sum, tokens = losses.cross_entropy(logits, batch["targets"], weights)
        correct = jnp.sum((jnp.argmax(logits, -1) == batch["targets"]) & weights)
        return {"loss_sum": loss_sum, "tokens": tokens, "correct": correct.astype(jnp.float32)}

    def eval_metrics(self, sums, complete: bool = False) -> dict[str, float]:
        tokens = float(sums["tokens"])
        return {"loss": float(sums["loss_sum"]) / max(tokens, 1.0),
                "token_accuracy": float(sums["correct"]) / max(tokens, 1.0), "tokens": tokens}

    def decoded_metrics(self, placement: Placement, params: Any, tokenizer: TextTokenizer,
                        split: str, max_batches: int | None) -> dict[str, float]:
        """BLEU / ROUGE of beam-decoded examples: the first `task.eval_decode_examples` of the
        split, or all of them in a full evaluation (`max_batches` None)."""
        examples = self.examples(tokenizer, split)
        n = len(examples) if max_batches is None else min(len(examples),
                                                          self.config.task.eval_decode_examples)
        if not n:
            return {}
        sources = [examples.pair(i)[0] for i in range(n)]
        references = [examples.pair(i)[1] for i in range(n)]
        hypotheses = self.decode_texts(placement, params, tokenizer, sources)
        results = {"bleu": generation.bleu(hypotheses, references)[0]}
        results.update(generation.rouge(hypotheses, references))
        results["decoded"] = float(n)
        return results

    def decode_texts(self, placement: Placement, params: Any, tokenizer: TextTokenizer,
                     texts: Sequence[str], **options: Any) -> list[str]:
        """Beam-search outputs for raw source texts (beam_size 0: sampled; greedy at
        temperature 0).

        Options (default: `config.task`, temperature 0, seed 0): beam_size, alpha,
        repetition_penalty, no_repeat_ngram (beam search only), temperature, top_k, top_p,
        seed. Texts are decoded in global batches of
        `placement.global_batch` rows; each process supplies its rows, so every process
        makes the same calls and gets all outputs.
        """
        check_options(self.name, options, DECODE_OPTIONS)
        opts = {"beam_size": self.config.task.beam_size, "alpha": self.config.task.alpha,
                "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0} | options
        # Configs written before these keys existed have them off.
        repeats = {key: options.get(key, self.config.task.get(key, off)) for key, off in
                   (("repetition_penalty", 1.0), ("no_repeat_ngram", 0))}
        if opts["beam_size"] < 0:
            raise UserError(f"--beam_size={opts['beam_size']} must be >= 0 "
                            "(0 = greedy/sampling)")
        if not opts["beam_size"] and any(key in options for key in repeats):
            raise UserError("--repetition_penalty/--no_repeat_ngram apply to beam search: "
                            "use --beam_size=1 or more")
        task, data, tok = self.config.task, self.config.data, tokenizer
        model = self.build_model(self.model_config.replace(deterministic=True, decode=True))
        global_batch = placement.global_batch
        pad, start = self.model_config.pad_id, self.model_config.decoder_start_id
        sources = seq2seq.encode_source(tok, list(texts), data.max_source_len, pad)
        padded = -(-len(texts) // global_batch) * global_batch
        sources = np.pad(sources, ((0, padded - len(texts)), (0, 0)), constant_values=pad)
        common = dict(max_decode_len=data.max_target_len,
                      bos_id=tok.bos_id if start is None else start, eos_id=tok.eos_id,
                      len_a=task.len_a, len_b=task.len_b or None)
        outputs = []
        for start in range(0, padded, global_batch):
            rows = sources[start + placement.process_index * placement.local_batch:][
                : placement.local_batch]
            source = placement.to_global({"source": rows})["source"]
            if opts["beam_size"]:
                out, _ = beam_search.beam_search(model, params, source,
                                                 beam_size=opts["beam_size"],
                                                 alpha=opts["alpha"], **repeats, **common)
            else:
                out = seq2seq_decoding.sample(
                    model, params, source, temperature=opts["temperature"],
                    top_k=opts["top_k"], top_p=opts["top_p"],
                    rng=jax.random.key(opts["seed"] + start), **common)
            outputs.append(placement.gather(out))
        ids = np.concatenate(outputs)[: len(texts)]
        return [tok.decode(_until_eos(row, tok.eos_id)) for row in ids]

    def demo(self, placement: Placement, params: Any, tokenizer: TextTokenizer) -> str | None:
        """A few decoded validation examples: source head, reference and output."""
        examples = self.examples(tokenizer, "validation")
        n = min(len(examples), self.config.task.demo_examples)
        if not n:
            return None
        chosen = [examples.pair(i) for i in range(n)]
        outputs = self.decode_texts(placement, params, tokenizer, [s for s, _ in chosen])
        blocks = []
        for (source, reference), output in zip(chosen, outputs, strict=True):
            head = source if len(source) <= 200 else source[:200] + " ..."
            blocks.append(f"source:    {head}\nreference: {reference}\noutput:    {output}")
        return "\n\n".join(blocks)

    def predict(self, placement: Placement, params: Any, tokenizer: TextTokenizer,
                lines: Sequence[str], **options: Any) -> list[str]:
        """One decoded output per input line (options: see `decode_texts`).

        A literal "\\n" in an input line stands for a newline (multi-line sources such as
        code); newlines in outputs are written as "\\n", so each output is one line.
        """
        sources = [line.replace("\\n", "\n") for line in lines]
        outputs = self.decode_texts(placement, params, tokenizer, sources, **options)
        return [out.replace("\n", "\\n") for out in outputs]


def _check_batching(config) -> None:
    """UserError for a bad `data.batching` / `tokens_per_batch`, or (token batching) a
    call length that would stack batches of two buckets."""
    data, tcfg = config.data, config.train
    kind = data.get("batching", "examples")
    if kind not in ("examples", "tokens"):
        raise UserError(f"data.batching={kind!r}: use 'examples' (train.batch_size rows) or "
                        "'tokens' (length buckets of data.tokens_per_batch tokens)")
    if kind != "tokens":
        return
    if not isinstance(data.get("tokens_per_batch"), int) or data.tokens_per_batch < 1:
        raise UserError(f"data.tokens_per_batch={data.get('tokens_per_batch')!r}: token "
                        "batching needs the tokens per batch side, e.g. 4096")
    k = tcfg.steps_per_call
    for key in ("steps", "eval_every", "checkpoint_every"):
        if tcfg[key] % k:
            raise UserError(
                f"train.{key}={tcfg[key]} is not a multiple of train.steps_per_call={k}: with "
                "data.batching=tokens each call's steps come from one length bucket, so every "
                f"call must be {k} steps; set train.{key} to a multiple of {k}, or "
                "train.steps_per_call=1")


def _until_eos(row: np.ndarray, eos_id: int) -> list[int]:
    ids = row.tolist()
    return ids[: ids.index(eos_id)] if eos_id in ids else [i for i in ids if i]
