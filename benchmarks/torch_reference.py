"""The PyTorch reference: Hugging Face `GPT2LMHeadModel` with the same sizes, random weights.

What a user would otherwise pick: transformers on PyTorch, eager, `torch.optim.AdamW`, and
`model.generate` for decoding; and the same under `torch.compile` (inductor, which compiles
to C++/OpenMP on CPU with the host's gcc): the whole forward + loss + backward and the
AdamW step compiled for training, a static KV cache with the compiled decoding forward for
`generate`. Needs `pip install -e .[bench]` (never a runtime dependency).
"""

from __future__ import annotations

from collections.abc import Callable

from transformer_jax.models.config import ModelConfig


def is_gpt2_like(config: ModelConfig) -> bool:
    """True when `GPT2LMHeadModel` expresses `config` exactly (learned positions, LN, GELU)."""
    return (
        config.family == "gpt" and config.position == "learned" and config.norm == "layernorm"
        and config.activation == "gelu_tanh" and config.pre_ln and config.use_bias
        and config.tie_embeddings and config.kv_heads == config.num_heads
    )


def gpt2_model(config: ModelConfig):
    """A random-init `GPT2LMHeadModel` (float32, dropout as in `config`) built offline."""
    import os

    import torch
    import transformers

    # All cores this process may use (all of them unless the harness pinned it).
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(
        vocab_size=config.vocab_size, n_positions=config.max_len, n_embd=config.d_model,
        n_layer=config.num_layers, n_head=config.num_heads, n_inner=config.mlp_dim,
        activation_function="gelu_new", layer_norm_epsilon=config.norm_eps,
        resid_pdrop=config.dropout_rate, embd_pdrop=config.dropout_rate,
        attn_pdrop=config.attention_dropout_rate, tie_word_embeddings=True,
        bos_token_id=0, eos_token_id=None, pad_token_id=0,
    )
    return transformers.GPT2LMHeadModel(hf_config)


def train_runner(config: ModelConfig, batch: int, seq_len: int, steps: int,
                 *, lr: float = 1e-3, compile: bool = False) -> tuple[Callable[[], None], float]:
    """A callable doing `steps` training steps (forward, backward, AdamW) on one batch.

    The loss is the same next-token cross entropy over all B*T positions as the JAX side.
    `compile`: `torch.compile` (inductor) of the model's forward + loss (its backward is
    compiled with it, AOTAutograd) and of `optimizer.step` (one fused C++ loop over all
    parameters). Returns (run, compile_seconds): the first call, which compiles, is made
    here and timed (0.0 in eager mode, where nothing is run ahead).
    """
    import time

    import torch

    model = gpt2_model(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95),
                                  weight_decay=0.1)
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(4, config.vocab_size, (batch, seq_len + 1), generator=generator)
    inputs, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

    def loss_fn(inputs, targets):
        logits = model(input_ids=inputs).logits  # [B, T, V]
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    step = optimizer.step
    if compile:
        loss_fn = torch.compile(loss_fn)
        step = torch.compile(optimizer.step)

    def run() -> None:
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(inputs, targets)
            loss.backward()
            step()
        loss.item()

    if not compile:
        return run, 0.0
    start = time.perf_counter()
    run()
    return run, time.perf_counter() - start


def generate_runner(config: ModelConfig, batch: int, prompt_len: int, new_tokens: int,
                    *, compile: bool = False) -> tuple[Callable[[], None], float]:
    """A callable running greedy `model.generate` (KV cache) for exactly `new_tokens` tokens.

    `compile`: a static KV cache (`cache_implementation="static"`) and transformers' own
    `torch.compile` of the decoding forward (`CompileConfig`, forced on CPU). Returns
    (run, compile_seconds) as `train_runner`.
    """
    import time

    import torch
    import transformers

    model = gpt2_model(config).eval()
    generator = torch.Generator().manual_seed(2)
    prompt = torch.randint(4, config.vocab_size, (batch, prompt_len), generator=generator)
    extra = {}
    if compile:
        compile_config = transformers.CompileConfig(fullgraph=True, mode="default")
        compile_config._compile_all_devices = True  # transformers compiles on CUDA only else
        extra = dict(cache_implementation="static", compile_config=compile_config)

    def run() -> None:
        with torch.inference_mode():
            out = model.generate(
                prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                min_new_tokens=new_tokens, do_sample=False, use_cache=True, **extra,
            )
        assert out.shape == (batch, prompt_len + new_tokens), out.shape

    if not compile:
        return run, 0.0
    start = time.perf_counter()
    run()
    return run, time.perf_counter() - start
