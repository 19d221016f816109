"""The experiment configs: every variant loads, keeps its model, and has its task's keys."""

import dataclasses
import importlib
import pathlib
import typing

import pytest

from experiments import config_help
from experiments.configs import common
from transformer_jax.models.config import (
    PRESETS,
    SHAPE_FIELDS,
    ModelConfig,
    from_preset,
    model_config_from,
)

# The arguments after ':' each config accepts (None: the default).
VARIANTS = {
    "gpt_stdlib": (None, "test"),
    "bert_stdlib": (None, "test"),
    "classify_stdlib": (None, "test"),
    "tag_stdlib": (None, "test"),
    "seq2seq_stdlib": (None, "test"),
    "lm_mixture": (None, "test"),
    "ag_news": (None, "test"),
    "imdb": (None, "test"),
    "glue_mrpc": (None, "test"),
    "glue_sst2": (None, "test"),
    "conll2003": (None, "test"),
    "qa_squad": (None, "test"),
    "wmt14_ende": (None, "big", "t2t"),
    "distill_stdlib": (None, "test", "classify", "classify_test"),
    "cnn_dailymail": (None,),
    "xsum": (None,),
}
CASES = [(name, arg) for name, args in VARIANTS.items() for arg in args]

_SOURCE = {"source", "path", "tfds_name", "tfds_data_dir", "seq_len", "tokenizer_cache_dir"}
# The keys each task reads besides `task.name` (grep config.data / config.task in
# transformer_jax/tasks/ and data/): a config must have them all, and no others.
READS = {
    "lm": dict(  # tasks/lm.py, data/sources.make_source
        data=_SOURCE | {"text_key", "validation_fraction", "validation_path", "num_shards",
                        "mixture"},
        task=set()),
    "bert_pretrain": dict(  # tasks/bert_pretrain.py, data/sources.make_source
        data=_SOURCE | {"text_key", "validation_fraction", "segment_lines"}, task=set()),
    "classify": dict(  # data/classify.make_records
        data=_SOURCE | {"validation_path", "validation_fraction", "text_key", "text_b_key",
                        "label_key"}, task=set()),
    "tagging": dict(  # data/tagging.make_sentences
        data=_SOURCE | {"validation_path", "validation_fraction", "segment_lines"}, task=set()),
    "qa": dict(  # data/qa.make_questions, tasks/qa.py
        data=_SOURCE | {"validation_path", "doc_stride"}, task={"max_answer_tokens"}),
    "seq2seq": dict(  # data/pairs.make_pairs, tasks/seq2seq.py
        data=_SOURCE | {"source_path", "target_path", "source_key", "target_key",
                        "validation_fraction", "max_source_len", "max_target_len",
                        "long_examples", "batching", "tokens_per_batch"},
        task={"label_smoothing", "eval_decode_examples", "demo_examples", "beam_size", "alpha",
              "len_a", "len_b", "repetition_penalty", "no_repeat_ngram"}),
}

# The resolved default models, recorded before the configs moved onto common.py and the
# CPU sizes into the tiny presets: (vocab_size, max_len, num_layers, d_model); the quickstart
# went from 4 layers to 2 on 2026-12-01 (README "Results").
DEFAULT_MODELS = {
    "gpt_stdlib": (8192, 256, 2, 256),
    "bert_stdlib": (4096, 128, 2, 128),
    "classify_stdlib": (4096, 128, 2, 128),
    "tag_stdlib": (4096, 128, 2, 128),
    "seq2seq_stdlib": (4096, 256, 2, 128),
}


def get_config(name: str, arg: str | None = None):
    return importlib.import_module(f"experiments.configs.{name}").get_config(arg)


def test_variants_cover_every_config_file():
    files = {p.stem for p in pathlib.Path(common.__file__).parent.glob("*.py")}
    assert files - {"__init__", "common"} == set(VARIANTS)


@pytest.mark.parametrize("name, arg", CASES)
def test_every_variant_loads_and_resolves(name, arg):
    c = get_config(name, arg)
    model = model_config_from(c.model)
    assert model.preset == c.model.preset
    assert c.data.seq_len <= model.max_len or model.position != "learned"


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_unknown_arguments_are_errors(name):
    with pytest.raises(ValueError, match="unknown config argument 'tset'"):
        get_config(name, "tset")


@pytest.mark.parametrize("name, expected", sorted(DEFAULT_MODELS.items()))
def test_default_models_are_unchanged(name, expected):
    m = model_config_from(get_config(name).model)
    assert (m.vocab_size, m.max_len, m.num_layers, m.d_model) == expected


@pytest.mark.parametrize("name, arg", CASES)
def test_configs_have_exactly_the_keys_their_task_reads(name, arg):
    c = get_config(name, arg)
    distill = c.task.name == "distill"  # the student's task's keys, and the distill ones
    reads = READS[c.task.student if distill else c.task.name]
    assert set(c.data) == reads["data"]
    assert set(c.task) - {"name"} == reads["task"] | (
        {"student", "teacher", "kd_alpha", "kd_temperature"} if distill else set())


def test_qa_keys_live_only_in_qa_configs():
    qa, pretrain = get_config("qa_squad"), get_config("bert_stdlib")
    assert qa.task.max_answer_tokens == 30 and qa.data.doc_stride == 64
    assert "max_answer_tokens" not in pretrain.task and "doc_stride" not in pretrain.data


@pytest.mark.parametrize("name, preset", [("gpt_stdlib", "gpt2_small"),
                                          ("bert_stdlib", "bert_base"),
                                          ("classify_stdlib", "bert_large"),
                                          ("seq2seq_stdlib", "transformer_base")])
def test_a_preset_change_gets_the_published_shapes(name, preset):
    """No size is pinned in these configs: e.g. bert_stdlib + bert_base is BERT-base."""
    c = get_config(name)
    c.model.preset = preset
    resolved, published = model_config_from(c.model), from_preset(preset)
    for field in set(SHAPE_FIELDS) - {"scan_layers"}:  # scan_layers: a backend default
        assert getattr(resolved, field) == getattr(published, field), field


def test_model_section_placeholders_are_typed_from_the_dataclass():
    section = common.model_section("gpt_tiny")
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    assert set(section) == fields - {"deterministic", "decode", "lora"}  # lora: config.lora
    assert section.preset == "gpt_tiny"
    hints = typing.get_type_hints(ModelConfig)
    types = {k: section.get_ref(k).get_type() for k in section if k != "preset"}
    assert all(section[k] is None for k in types)
    # X | None fields take X; the Literal `family` takes str.
    assert hints["num_kv_heads"] == int | None and types["num_kv_heads"] is int
    assert types["family"] is str
    for k, t in types.items():
        if typing.get_origin(hints[k]) is None:  # plain annotations are used as they are
            assert t is hints[k], k
    # Every preset's values fit their placeholders (None: "same as another field").
    for name in PRESETS:
        preset = from_preset(name)
        for k, t in types.items():
            value = getattr(preset, k)
            assert value is None or isinstance(value, t), (name, k, value)
    with pytest.raises(TypeError):
        section.num_layers = "four"


def test_test_variant_is_two_calls_with_an_eval_and_a_checkpoint_each():
    c = get_config("gpt_stdlib", "test")
    k = c.train.steps_per_call
    assert c.train.steps == 2 * k and c.train.eval_every == c.train.checkpoint_every == k
    assert (c.model.d_model, c.model.num_heads, c.model.mlp_dim) == (32, 2, 64)


@pytest.mark.parametrize("name, arg", CASES)
def test_every_config_key_has_a_one_line_meaning(name, arg):
    described = config_help.describe(get_config(name, arg)).splitlines()
    assert described and not [line for line in described if line.endswith("# ?")], described
    assert all("\n" not in config_help.meaning(line.split(" = ")[0]) for line in described)
