"""The BERT experiment configs build their tasks; TFDS ones fail clearly when not prepared."""

import importlib

import pytest

from experiments.configs import bert_stdlib
from tests.tasks.conftest import model_config
from transformer_jax.errors import UserError
from transformer_jax.tasks.bert_pretrain import BertPretraining
from transformer_jax.tasks.classify import SequenceClassification
from transformer_jax.tasks.qa import QuestionAnswering
from transformer_jax.tasks.tagging import TokenClassification

TASKS = {cls.name: cls for cls in (BertPretraining, SequenceClassification, TokenClassification,
                                   QuestionAnswering)}


def load(name: str, arg=None):
    c = importlib.import_module(f"experiments.configs.{name}").get_config(arg)
    return c, TASKS[c.task.name](c, model_config(c))


@pytest.mark.parametrize("name, task", [("bert_stdlib", "bert_pretrain"),
                                        ("classify_stdlib", "classify"),
                                        ("tag_stdlib", "tagging")])
def test_stdlib_configs(name, task):
    for arg in (None, "test"):
        c, built = load(name, arg)
        assert c.task.name == task and c.init_from == "" and c.model.preset == "bert_tiny"
        assert built.special_tokens == ("[CLS]", "[SEP]", "[MASK]")


@pytest.mark.parametrize("name", ["glue_sst2", "glue_mrpc", "imdb", "ag_news", "conll2003",
                                  "qa_squad"])
def test_tfds_configs_need_prepared_data(name, tmp_path):
    c, task = load(name)
    c.data.tfds_data_dir = str(tmp_path)
    with pytest.raises(UserError, match=f"{c.data.tfds_name!r} is not prepared in DATA_DIR"):
        task.tokenizer_source()


def test_bert_config_takes_only_keys_its_task_reads():
    assert bert_stdlib.bert_config("qa", None, doc_stride=32).data.doc_stride == 32
    with pytest.raises(ValueError, match=r"'bert_pretrain' reads no data keys \['doc_stride"):
        bert_stdlib.bert_config("bert_pretrain", None, doc_stride=32)
    with pytest.raises(ValueError, match="unknown BERT task 'lm'"):
        bert_stdlib.bert_config("lm", None)
