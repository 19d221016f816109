"""Decoding options reach the tasks that take them; the others reject them in one line."""

import numpy as np
import pytest

from experiments.configs import gpt_stdlib, seq2seq_stdlib
from tests.tasks.conftest import model_config, tiny_config
from transformer_jax.decoding.sampling import check_sampling
from transformer_jax.errors import UserError
from transformer_jax.tasks.lm import LanguageModeling
from transformer_jax.tasks.scores import check_top_k, top_k_probabilities
from transformer_jax.tasks.seq2seq import Seq2Seq
from transformer_jax.tasks.tagging import TokenClassification


def test_a_task_that_does_not_decode_rejects_decoding_options():
    c = tiny_config("tagging")
    task = TokenClassification(c, model_config(c))
    with pytest.raises(UserError, match="--temperature: a 'tagging' run takes no decoding"):
        task.predict(None, None, None, ["x = 1"], temperature=0.5)


def test_the_lm_rejects_beam_options_and_names_the_ones_it_takes():
    c = gpt_stdlib.get_config("test")
    task = LanguageModeling(c, model_config(c))
    with pytest.raises(UserError, match="--beam_size: a 'lm' run takes only --max_new_tokens"):
        task.predict(None, None, None, ["def "], beam_size=4)


@pytest.mark.parametrize("settings, message", [
    (dict(temperature=-1.0, top_k=0, top_p=1.0), "--temperature=-1.0"),
    (dict(temperature=1.0, top_k=-2, top_p=1.0), "--top_k=-2"),
    (dict(temperature=1.0, top_k=0, top_p=0.0), "--top_p=0.0"),
    (dict(temperature=1.0, top_k=0, top_p=1.5), "--top_p=1.5"),
])
def test_sampling_settings_out_of_range_are_one_line_errors(settings, message):
    with pytest.raises(UserError, match=message):
        check_sampling(**settings)
    check_sampling(temperature=0.0, top_k=40, top_p=0.95)  # in range: no error


def test_top_k_choices_are_checked_and_capped():
    with pytest.raises(UserError, match="--top_k=0: predict shows the k most likely"):
        check_top_k(0, 20)
    assert check_top_k(5, 2) == 2  # two labels: both shown
    ids, probs = top_k_probabilities(np.log([[0.2, 0.5, 0.3]]), 2)
    assert ids.tolist() == [[1, 2]] and np.allclose(probs, [[0.5, 0.3]])


def test_seq2seq_repetition_options_need_beam_search():
    c = seq2seq_stdlib.get_config("test")
    task = Seq2Seq(c, model_config(c))
    with pytest.raises(UserError, match="--repetition_penalty/--no_repeat_ngram apply to beam"):
        task.predict(None, None, None, ["x = 1"], beam_size=0, no_repeat_ngram=3)
