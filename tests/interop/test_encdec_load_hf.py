"""The encoder-decoder families through the converter core: `tj.load_hf` on a directory
written by `save_pretrained` (config.json as transformers writes it, safetensors, the
tokenizer) gives the HF logits, and `tj.save_hf` writes a directory `from_pretrained` loads
with the same logits."""

import numpy as np
import pytest

import transformer_jax as tj
from tests.interop.conftest import _save_with_tokenizer, perturb, vocab

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

_SIZES = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
              decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
              max_position_embeddings=64)


def _model(kind: str, v: int):
    torch.manual_seed(0)
    if kind == "t5_v1_1":  # gated-gelu; transformers 5 records "untied" as no output scaling
        config = transformers.T5Config(
            vocab_size=v, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            feed_forward_proj="gated-gelu", tie_word_embeddings=False,
            decoder_start_token_id=0, pad_token_id=0, eos_token_id=0)
        return transformers.T5ForConditionalGeneration(config)
    if kind == "marian":
        config = transformers.MarianConfig(vocab_size=v, pad_token_id=v - 1,
                                           decoder_start_token_id=v - 1, eos_token_id=0,
                                           **_SIZES)
        return transformers.MarianMTModel(config)
    config = transformers.BartConfig(vocab_size=v, pad_token_id=1, eos_token_id=0, **_SIZES)
    return transformers.BartForConditionalGeneration(config)


@pytest.mark.parametrize("kind", ["t5_v1_1", "marian", "bart"])
def test_load_hf_and_save_hf_give_the_hf_logits(kind, bpe_dir, tmp_path):
    v = vocab(bpe_dir)
    hf = _model(kind, v).eval()
    perturb(hf)
    directory = _save_with_tokenizer(hf, bpe_dir, tmp_path / "hf")
    rng = np.random.RandomState(0)
    source, target = rng.randint(2, v - 2, (2, 9)), rng.randint(2, v - 2, (2, 7))
    with torch.no_grad():
        expected = hf(input_ids=torch.tensor(source),
                      decoder_input_ids=torch.tensor(target)).logits.numpy()

    model, params, tokenizer = tj.load_hf(str(directory))
    got = np.asarray(model.apply({"params": params}, source, target))
    assert np.abs(got - expected).max() < 1e-4

    tj.save_hf(model, params, tokenizer, str(tmp_path / "out"))
    back = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        again = back(input_ids=torch.tensor(source),
                     decoder_input_ids=torch.tensor(target)).logits.numpy()
    assert np.abs(again - expected).max() < 1e-4
