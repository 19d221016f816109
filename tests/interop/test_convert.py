"""experiments.convert: HF directory -> run directory (generate, init_from) -> HF directory."""

import os
import subprocess
import sys

import flax.linen as nn
import jax
import numpy as np
import pytest

from experiments.configs import gpt_stdlib
from tests.interop.conftest import hf_logits, tokens, torch, transformers
from transformer_jax.data.hf_tokenizer import HFTokenizer
from transformer_jax.errors import UserError
from transformer_jax.interop import api, placing, run_dir
from transformer_jax.run.setup import setup_run
from transformer_jax.run.workdir import generate_from_workdir
from transformer_jax.train import pretrained


@pytest.fixture(scope="module")
def converted(gpt2, tmp_path_factory):
    directory, _ = gpt2
    workdir = tmp_path_factory.mktemp("runs") / "gpt2"
    result = subprocess.run(
        [sys.executable, "-m", "experiments.convert", f"--from_hf={directory}",
         f"--workdir={workdir}"],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    return workdir


def test_generate_from_the_run_directory_matches_hf(gpt2, converted):
    _, hf = gpt2
    assert (converted / "tokenizer" / "tokenizer.json").is_file()
    text = generate_from_workdir(str(converted), "def f(", max_new_tokens=12, temperature=0.0)
    tok = HFTokenizer.from_dir(converted / "tokenizer")
    prompt = [tok.bos_id, *tok.encode("def f(")]
    with torch.no_grad():
        ids = hf.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=12,
                          min_new_tokens=12, eos_token_id=None, pad_token_id=0)[0, len(prompt):]
    assert text == tok.decode(ids.tolist())


def test_to_hf_gives_the_same_logits(gpt2, converted, tmp_path):
    _, hf = gpt2
    out = run_dir.to_hf(str(converted), str(tmp_path / "hf"))
    back = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    ids = tokens(hf.config.vocab_size)
    assert np.abs(hf_logits(back, ids) - hf_logits(hf, ids)).max() <= 1e-6
    assert transformers.AutoTokenizer.from_pretrained(out)("x = 1")["input_ids"] == (
        HFTokenizer.from_dir(out).encode("x = 1"))
    with pytest.raises(UserError, match="not empty"):
        run_dir.to_hf(str(converted), str(tmp_path / "hf"))


def test_convert_refuses_a_used_workdir(gpt2, converted):
    directory, _ = gpt2
    before = sorted(p.name for p in converted.iterdir())
    with pytest.raises(UserError, match="not empty"):
        run_dir.from_hf(str(directory), str(converted), gpt_stdlib.get_config())
    assert sorted(p.name for p in converted.iterdir()) == before


def test_init_from_hf_loads_the_checkpoint(gpt2, tmp_path):
    directory, _ = gpt2
    _, _, arch = api.open_hf(directory)
    config = run_dir.run_config(gpt_stdlib.get_config("test"), arch, scan_layers=False)
    config.init_from = f"hf:{directory}"
    run = setup_run(config, str(tmp_path / "w"))
    assert run.pretrained.hf and isinstance(run.tokenizer, HFTokenizer)
    model, reference, _ = api.load_hf(directory)
    fresh = nn.unbox(jax.jit(model.init)(jax.random.key(0), np.zeros((1, 8), np.int32))["params"])
    loaded = pretrained.load_into(run.pretrained, fresh)
    flat = placing.unrolled_host_params(loaded)
    assert all(np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(flat), jax.tree.leaves(placing.unrolled_host_params(reference)),
        strict=True))
    config.model.num_layers = 3
    with pytest.raises(UserError, match="num_layers=2"):
        setup_run(config, str(tmp_path / "w2"))
