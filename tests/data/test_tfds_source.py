"""TfdsSource on a tiny TFDS dataset built and prepared here (array_record, no TensorFlow)."""

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from transformer_jax.data import sources
from transformer_jax.errors import UserError


def _doc(i: int) -> str:
    return f"def f{i}():\n    return '{i}é'\n"


class TinyCodeForTest(tfds.core.GeneratorBasedBuilder):
    """25 small documents: 20 train, 5 test, no validation split."""

    VERSION = tfds.core.Version("1.0.0")
    # TFDS looks for checksum files next to a builder's code; this one has none. (Finding the
    # code of a builder inside a package imports `importlib_resources`, which tfds 4.9.10
    # needs but no longer gets installed with etils.)
    code_path = None

    def _info(self) -> tfds.core.DatasetInfo:
        # Outside a package TFDS cannot find metadata files, so build DatasetInfo directly.
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {"content": tfds.features.Text(), "id": np.int32}
            ),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(0, 20), "test": self._generate_examples(20, 25)}

    def _generate_examples(self, start, stop):
        for i in range(start, stop):
            yield i, {"content": _doc(i), "id": i}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tfds")
    TinyCodeForTest(data_dir=str(path)).download_and_prepare(file_format="array_record")
    return str(path)


def test_reads_prepared_dataset_as_text(data_dir):
    train = sources.TfdsSource("tiny_code_for_test", "train", data_dir=data_dir, text_key="content")
    assert sorted(train[i] for i in range(len(train))) == sorted(_doc(i) for i in range(20))
    assert isinstance(train[0], str)
    assert train.name == "tfds-tiny_code_for_test/1.0.0"
    assert "train-20" in train.fingerprint


def test_validation_falls_back_to_test_split_via_make_source(data_dir):
    cfg = ml_collections.ConfigDict({
        "source": "tfds", "path": "", "tfds_name": "tiny_code_for_test",
        "tfds_data_dir": data_dir, "text_key": "content", "validation_fraction": 0.02,
    })
    validation = sources.make_source(cfg, "validation")
    assert sorted(validation[i] for i in range(len(validation))) == sorted(
        _doc(i) for i in range(20, 25)
    )


def test_not_prepared_or_unknown_names_the_fix(tmp_path):
    for name in ("tiny_code_for_test", "no_such_dataset_xyz"):
        with pytest.raises(UserError) as error:
            sources.TfdsSource(name, "train", data_dir=str(tmp_path))
        message = str(error.value)
        assert message.startswith(
            f"TFDS dataset '{name}' is not prepared in DATA_DIR={tmp_path}: run "
            f"tfds.builder('{name}', data_dir='{tmp_path}').download_and_prepare("
            "file_format='array_record')"
        )
        assert "\n" not in message


def test_wrong_text_key_lists_features(data_dir):
    with pytest.raises(UserError, match=r"no text feature 'text' \(features: \['content', 'id'\]"):
        sources.TfdsSource("tiny_code_for_test", "train", data_dir=data_dir)
    with pytest.raises(UserError, match="no text feature 'id'"):
        sources.TfdsSource("tiny_code_for_test", "train", data_dir=data_dir, text_key="id")
