r"""A small GPT trained on the running Python's standard library source (offline default).

Runs on 2 CPU cores in about 5 (AVX-512) to 12 (AVX2) minutes, with no download:

  python -m experiments.train --config=experiments/configs/gpt_stdlib.py --workdir=runs/gpt_stdlib

Arguments after ':' pick a variant:
  :test   a smoke run for tests (tiny model, tiny vocab): about half a minute on 2 cores,
          mostly compilation and, on first use, training its tokenizer.
  (none)  the quickstart default.
Any field can be overridden, e.g. `--config.model.preset=gpt2_small --config.mesh.fsdp=-1`.
"""

import ml_collections

from experiments.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The language-modeling config (task `lm`); `arg` is None or "test"."""
    common.check_argument(arg)
    c = ml_collections.ConfigDict()
    c.task = ml_collections.ConfigDict({"name": "lm"})  # see transformer_jax/tasks/
    # A training workdir whose weights initialize the matching parts of this model.
    c.init_from = ""
    c.model = common.model_section("gpt_tiny")  # 2 layers, d_model 256: 3.7 M parameters

    c.data = ml_collections.ConfigDict(dict(
        source="stdlib",          # stdlib | local | tfds
        path="",                  # local: file, directory, .jsonl, or comma-separated list
        tfds_name="",             # tfds: e.g. "lm1b"
        tfds_data_dir="",
        text_key="text",
        validation_fraction=0.02,  # too few documents to split by: the text's last part
        validation_path="",       # local: a held-out file/directory (then all of path trains)
        # Virtual data shards; each process reads only its own. 0 = the checkpoint's count,
        # else one per process. Resuming on another process count needs one dividing it.
        num_shards=0,
        seq_len=256,
        tokenizer_cache_dir="",   # default: $TRANSFORMER_JAX_CACHE or ~/.cache/transformer_jax
        # {name: {source keys..., weight}}: several weighted sources instead of the one above
        # (transformer_jax/data/mixture.py; experiments/configs/lm_mixture.py is an example).
        mixture={},
    ))

    # 880 steps of 8 x 256 tokens (1.8 M): about the wall time of 600 steps of the previous
    # 4-layer model; peak 3e-3, cosine to zero (README "Results" lists the variants measured).
    c.train = common.train_section(steps=880, batch_size=8, eval_every=220, eval_batches=32)
    c.optim = common.optim_section(
        learning_rate=3e-3, schedule="cosine", warmup_steps=88, end_lr_ratio=0.0, b2=0.95,
        eps=1e-8, weight_decay=0.1, grad_clip_norm=1.0,
    )
    c.mesh = common.mesh_section()
    c.lora = common.lora_section()
    c.prune = common.prune_section()

    c.sample = ml_collections.ConfigDict(dict(
        prompt="def ", max_new_tokens=128, temperature=0.8, top_k=40, top_p=0.95, seed=0,
    ))

    if arg == "test":
        common.apply_test_variant(c, steps_per_call=3, vocab_size=512, num_layers=2,
                                  max_len=32)
        c.data.seq_len = 32
        c.sample.max_new_tokens = 8
    return c
