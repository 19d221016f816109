"""Fixtures for Hugging Face interop tests: random-init `transformers` models built from
small configs (nothing downloaded), saved with `save_pretrained`, and a small byte-level BPE
tokenizer trained offline on standard-library source."""

import pathlib
import sysconfig

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

STDLIB = pathlib.Path(sysconfig.get_paths()["stdlib"])
EOT = "<|endoftext|>"


def perturb(model, pattern=("ln", "norm", "bias")) -> None:
    """Moves norm scales and biases away from 1/0 (so a wrong mapping shows in the logits)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(k in name for k in pattern):
                p.add_(0.5 * torch.randn(p.shape, generator=gen))


@pytest.fixture(scope="session")
def bpe_dir(tmp_path_factory) -> pathlib.Path:
    """A GPT-2-style byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json)."""
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = [(STDLIB / n).read_text() for n in ("textwrap.py", "string.py", "csv.py")]
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=512, special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    d = tmp_path_factory.mktemp("bpe")
    transformers.GPT2TokenizerFast(tokenizer_object=tok, bos_token=EOT, eos_token=EOT,
                                   unk_token=EOT).save_pretrained(d)
    return d


def _save_with_tokenizer(model, bpe_dir, d: pathlib.Path) -> pathlib.Path:
    model.save_pretrained(d)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (d / name).write_bytes((bpe_dir / name).read_bytes())
    return d


def vocab(bpe_dir) -> int:
    return tokenizers.Tokenizer.from_file(str(bpe_dir / "tokenizer.json")).get_vocab_size()


@pytest.fixture(scope="session")
def gpt2(bpe_dir, tmp_path_factory):
    """(directory, torch model) of a 2-layer GPT-2 with perturbed LayerNorms and biases."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=vocab(bpe_dir), n_positions=64, n_embd=32,
                                     n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config).eval()
    perturb(model)
    return _save_with_tokenizer(model, bpe_dir, tmp_path_factory.mktemp("gpt2")), model


@pytest.fixture(scope="session")
def llama(bpe_dir, tmp_path_factory):
    """(directory, torch model) of a 2-layer Llama with GQA (4 heads, 2 kv), untied head."""
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=vocab(bpe_dir), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        rope_theta=500.0, rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=0,
        eos_token_id=0)
    model = transformers.LlamaForCausalLM(config).eval()
    perturb(model)
    return _save_with_tokenizer(model, bpe_dir, tmp_path_factory.mktemp("llama")), model


@pytest.fixture(scope="session", params=["gpt2", "llama"])
def decoder(request):
    """Each decoder family's (directory, torch model)."""
    return request.getfixturevalue(request.param)


def tokens(v: int, shape=(2, 16), seed=0) -> np.ndarray:
    return np.random.RandomState(seed).randint(1, v, shape).astype(np.int32)


def hf_logits(model, ids: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    with torch.no_grad():
        kwargs = {} if mask is None else {"attention_mask": torch.tensor(mask)}
        return model(torch.tensor(ids, dtype=torch.long), **kwargs).logits.float().numpy()
