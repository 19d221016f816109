"""Sequence classification: local CSV/TSV/JSONL/folder sources, training, metrics, errors."""

import collections
import json
import pathlib
import sysconfig

import numpy as np
import pytest

from tests.tasks.conftest import make_tokenizer, model_config, tiny_config, train
from tests.tensorboard_events import summaries
from transformer_jax.data import classify, splits
from transformer_jax.errors import UserError
from transformer_jax.run.evaluation import Evaluator
from transformer_jax.tasks.classify import SequenceClassification
from transformer_jax.train.metric_writer import MetricWriter

STDLIB = pathlib.Path(sysconfig.get_paths()["stdlib"])
FRUIT = ["apple", "pear", "plum", "fig", "kiwi", "lime"]
TOOLS = ["hammer", "saw", "drill", "wrench", "chisel", "file"]


def rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = ["fruit", "tool"][i % 2]
        words = rng.choice(FRUIT if label == "fruit" else TOOLS, 4)
        out.append({"text": "i like the " + " and the ".join(words), "label": label})
    return out


def write_csv(path, table, sep=","):
    path.write_text("\n".join([sep.join(table[0])] + [sep.join(r.values()) for r in table]))


@pytest.fixture
def data_dir(tmp_path):
    write_csv(tmp_path / "train.csv", rows(200))
    write_csv(tmp_path / "dev.tsv", rows(40, seed=1), sep="\t")
    return tmp_path


def test_trains_and_evaluates(data_dir, evaluate, placement):
    c = tiny_config("classify", source="local", path=str(data_dir / "train.csv"),
                    validation_path=str(data_dir / "dev.tsv"))
    c.train.eval_batches = None
    task = SequenceClassification(c, model_config(c))
    assert task.labels == ["fruit", "tool"]
    assert len(task.train_records) == 200  # all of path: validation_path is separate
    tok = make_tokenizer(task)
    params, losses = train(task, tok, 120, learning_rate=1e-3)
    assert np.mean(losses[-5:]) < 0.5 * losses[0]
    metrics = evaluate(task, tok, params)
    assert metrics["examples"] == 40
    assert (metrics["eval_batches"], metrics["eval_complete"]) == (5, 1)  # all 40 rows
    assert metrics["accuracy"] > 0.9
    assert set(metrics) >= {"macro_f1", "f1/fruit", "recall/tool", "confusion/fruit/fruit"}
    # What the trainer records: the confusion matrix as one TensorBoard image, no cells.
    recorded, images = Evaluator(task, placement, tok).run(params, "validation", None,
                                                           images=True)
    assert not [k for k in recorded if k.startswith("confusion/")]
    assert images["confusion_matrix"].ndim == 3 and images["confusion_matrix"].shape[2] == 3
    writer = MetricWriter(data_dir / "run")
    writer.write(120, "eval", recorded)
    writer.write_images(120, "eval", images)
    writer.close()
    shown = summaries(data_dir / "run" / "tensorboard")
    assert ("eval/confusion_matrix", "image", 120) in shown
    assert not [tag for tag, _, _ in shown if "confusion/" in tag] and len(shown) < 20
    (line,) = task.predict(placement, params, tok, ["i like the saw and the drill"])
    label, probability = line.split("\t")
    assert label == "tool" and 0.5 < float(probability) <= 1.0
    (both,) = task.predict(placement, params, tok, ["i like the pear"], top_k=5)  # capped: 2
    first, p1, second, p2 = both.split("\t")
    assert (first, second) == ("fruit", "tool") and float(p1) >= float(p2)
    assert float(p1) + float(p2) == pytest.approx(1.0, abs=2e-3)  # printed with 3 decimals


def test_local_formats_and_pairs(tmp_path):
    (tmp_path / "d.jsonl").write_text(
        "\n".join(json.dumps({"q": f"x{i}", "q2": f"y{i}", "y": str(i % 3)}) for i in range(60)))
    c = tiny_config("classify", source="local", path=str(tmp_path / "d.jsonl"), text_key="q",
                    text_b_key="q2", label_key="y", validation_fraction=0.3)
    train_records = classify.make_records(c.data, "train")
    validation = classify.make_records(c.data, "validation")
    assert train_records.labels == ["0", "1", "2"]
    assert len(train_records) + len(validation) == 60 and len(validation) > 5
    assert train_records.records[0].text_b.startswith("y")
    for label in ("neg", "pos"):
        (tmp_path / "folders" / label).mkdir(parents=True)
        for i in range(10):
            (tmp_path / "folders" / label / f"{i}.txt").write_text(f"{label} text {i}")
    c.data.update(path=str(tmp_path / "folders"), text_b_key="")
    assert classify.make_records(c.data, "train").labels == ["neg", "pos"]


def test_pair_features(data_dir):
    c = tiny_config("classify", source="local", path=str(data_dir / "train.csv"))
    task = SequenceClassification(c, model_config(c))
    tok = make_tokenizer(task)
    features = classify.ClassificationFeatures(task.train_records, tok, 32)
    ex = features.featurize("one two", "three four five")
    n = int((ex["tokens"] != 0).sum())
    cls, sep = tok.piece_id("[CLS]"), tok.piece_id("[SEP]")
    assert ex["tokens"][0] == cls and list(ex["tokens"]).count(sep) == 2
    first_sep = list(ex["tokens"]).index(sep)
    assert (ex["token_types"][:first_sep + 1] == 0).all()
    assert (ex["token_types"][first_sep + 1:n] == 1).all()
    assert tok.decode(ex["tokens"][first_sep + 1:n - 1]) == "three four five"


def test_bad_inputs(tmp_path, data_dir):
    c = tiny_config("classify", source="local", path=str(data_dir / "train.csv"),
                    label_key="category")
    with pytest.raises(UserError, match="no column 'category'.*columns: \\['label', 'text'\\]"):
        classify.make_records(c.data, "train")
    (tmp_path / "empty.csv").write_text("")
    c.data.update(path=str(tmp_path / "empty.csv"), label_key="label")
    with pytest.raises(UserError, match="empty.csv is empty"):
        classify.make_records(c.data, "train")
    write_csv(tmp_path / "dev.csv", [{"text": "a saw", "label": "vehicle"}])
    c.data.update(path=str(data_dir / "train.csv"), validation_path=str(tmp_path / "dev.csv"))
    with pytest.raises(UserError, match="label 'vehicle' is not in the label set"):
        classify.make_records(c.data, "validation", ["fruit", "tool"])
    c.data.update(source="tfds", tfds_name="glue/sst2", tfds_data_dir=str(tmp_path / "tfds"))
    with pytest.raises(UserError, match="not prepared in DATA_DIR"):
        classify.make_records(c.data, "train")


def test_stratified_split_holds_out_whole_groups_of_every_label():
    items = [(label, f"{label}/file{f}") for label, files in (("a", 8), ("b", 3), ("c", 1))
             for f in range(files) for _ in range(f + 1)]  # file f holds f + 1 examples
    split = splits.stratified_split(items, 0.25)
    assert split == splits.stratified_split(items[::-1], 0.25)  # order-free, deterministic
    assert set(split) == {group for _, group in items}  # one split per group: no straddling
    for label in ("a", "b"):
        held = [g for lab, g in items if lab == label and split[g] == "validation"]
        total = sum(lab == label for lab, _ in items)
        assert 0 < len(held) <= 0.25 * total or len(set(held)) == 1
        assert any(split[g] == "train" for lab, g in items if lab == label)
    assert split["c/file0"] == "train"  # a one-group label cannot be held out
    assert set(splits.stratified_split(items, 0.0).values()) == {"train"}


def test_stdlib_validation_covers_every_topic_in_whole_files():
    rows, labels, split = classify._stdlib_docstrings(0.2)
    assert len(labels) == classify.STDLIB_TOPICS
    held = collections.Counter(r.label for r in rows["validation"])
    total = held + collections.Counter(r.label for r in rows["train"])
    assert set(held) == set(labels)
    assert all(0.05 < held[label] / total[label] <= 0.2 for label in labels)
    # A unit is a whole file, or `file::definition` only in a topic of one file.
    def topic(unit):
        return unit.split("::")[0].split("/")[0].removesuffix(".py")

    files = collections.defaultdict(set)
    for unit in split:
        files[topic(unit)].add(unit.split("::")[0])
    for unit in split:
        assert (STDLIB / unit.split("::")[0]).is_file()
        assert ("::" in unit) == (len(files[topic(unit)]) == 1)
