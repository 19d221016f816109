"""Attention maps of a trained run on a text: tokenize it the way the run's task does.

GPT: `[bos] text`. BERT tasks: `[CLS] text [SEP]`. Encoder-decoder: the source as the task
encodes it, and the target as `[bos] target` (the given `target`, else the model's greedy
decoding of the source), so cross-attention is target x source.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from transformer_jax.data import seq2seq as seq2seq_data
from transformer_jax.data.tokenizer import Tokenizer
from transformer_jax.errors import UserError
from transformer_jax.interpret.attention import attention_maps
from transformer_jax.run.workdir import load_run


def token_strings(tokenizer: Tokenizer, ids: list[int]) -> list[str]:
    """A label per id: its decoded text (newlines as \\n), or <s>, </s>, <pad>."""
    names = {tokenizer.bos_id: "<s>", tokenizer.eos_id: "</s>", tokenizer.pad_id: "<pad>"}
    return [names.get(i) or tokenizer.decode([i]).replace("\n", "\\n") or "·" for i in ids]


def attention_from_workdir(workdir: str, text: str, target: str | None = None
                           ) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """The attention maps of the newest checkpoint in `workdir` on `text`.

    Args:
      workdir: a training run's directory (any task).
      text: the input text (the source for an encoder-decoder).
      target: the encoder-decoder's target text (default: its greedy decoding of `text`);
        must be None for the other families.

    Returns:
      (maps, tokens): `attention.attention_maps` output for one example ([L, 1, N, T, S]
      each) and each stack's token strings ({"decoder": ...}, {"encoder": ...} or both).
    """
    if not text:
        raise UserError("--text is empty: give the text whose attention to draw")
    run, params, _ = load_run(workdir)
    cfg = run.model_config.replace(deterministic=True, decode=False)
    family, tok = cfg.family, run.tokenizer
    if target is not None and family != "encdec":
        raise UserError(f"--target is for encoder-decoder runs; {workdir} holds a {family!r} "
                        "model")
    model = run.task.build_model(cfg)
    with jax.set_mesh(run.mesh):
        if family == "encdec":
            inputs, tokens = _seq2seq_inputs(run, params, text, target)
        elif family == "bert":
            ids = [tok.piece_id("[CLS]"), *tok.encode(text), tok.piece_id("[SEP]")]
            ids = _fit(ids, cfg.max_len)
            inputs = {"tokens": np.asarray([ids], np.int32)}
            tokens = {"encoder": token_strings(tok, ids)}
        else:
            ids = _fit([tok.bos_id, *tok.encode(text)], cfg.max_len)
            inputs = {"tokens": np.asarray([ids], np.int32)}
            tokens = {"decoder": token_strings(tok, ids)}
        return attention_maps(model, params, **inputs), tokens


def _fit(ids: list[int], max_len: int) -> list[int]:
    if len(ids) > max_len:
        raise UserError(f"--text is {len(ids)} tokens, more than the model's max_len="
                        f"{max_len}: use a shorter text")
    return ids


def _seq2seq_inputs(run: Any, params: Any, text: str, target: str | None
                    ) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    tok, data = run.tokenizer, run.config.data
    source = seq2seq_data.encode_source(tok, [text], data.max_source_len)[0]
    source = source[: int(np.count_nonzero(source))]
    if target is None:
        target = run.task.decode_texts(run.placement(), params, tok, [text],
                                       beam_size=0, temperature=0.0)[0]
    target_ids = [tok.bos_id, *tok.encode(target)][: data.max_target_len]
    inputs = {"source": source[None].astype(np.int32),
              "target_inputs": np.asarray([target_ids], np.int32)}
    return inputs, {"encoder": token_strings(tok, source.tolist()),
                    "decoder": token_strings(tok, target_ids)}
