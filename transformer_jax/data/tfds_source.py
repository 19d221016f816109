"""TFDS text datasets read by random access from array_record files, without TensorFlow."""

import os

from etils import epy

with epy.lazy_imports():  # ~1 s, only for runs that read TFDS
    import tensorflow_datasets as tfds

from transformer_jax.data.splits import check_split
from transformer_jax.errors import UserError


class TfdsSource:
    """A prepared TFDS text dataset, read by random access from array_record files.

    Our "train" is the dataset's "train" split; our "validation" is its "validation" split,
    else its "test" split (many text datasets ship only train/test). Text is stored as UTF-8
    bytes and decoded here.
    """

    def __init__(self, name: str, split: str, data_dir: str | None = None, text_key: str = "text"):
        """Opens `split` of TFDS dataset `name` without downloading anything.

        Args:
          name: a TFDS name, e.g. "lm1b" or "wiki40b/en:1.3.0".
          split: "train" or "validation".
          data_dir: where it was prepared; None means TFDS's default (`$TFDS_DATA_DIR` or
            ~/tensorflow_datasets).
          text_key: the feature holding the text.
        """
        self._data, info, tfds_split = open_split(name, split, data_dir)
        features = info.features
        if text_key not in features or not isinstance(features[text_key], tfds.features.Text):
            raise UserError(
                f"TFDS dataset {name!r} has no text feature {text_key!r} (features: "
                f"{sorted(features.keys())}); set data.text_key to its text feature"
            )
        self._text_key = text_key
        self.name = f"tfds-{info.full_name}"
        self.fingerprint = f"{info.full_name}-{tfds_split}-{info.splits[tfds_split].num_examples}"
        self.split = split

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, index: int) -> str:
        index = range(len(self))[index]
        return self._data[index][self._text_key].decode("utf-8")


def open_split(name: str, split: str, data_dir: str | None = None):
    """Opens our `split` of a prepared TFDS dataset for random access, downloading nothing.

    Args:
      name: a TFDS name, e.g. "lm1b" or "glue/sst2".
      split: "train", or "validation" (the dataset's "validation" split, else "test").
      data_dir: where it was prepared; None means TFDS's default (`$TFDS_DATA_DIR` or
        ~/tensorflow_datasets).

    Returns:
      (array_record data source of feature dicts, `tfds.core.DatasetInfo`, the TFDS split).

    Raises:
      UserError: "... not prepared in DATA_DIR=..." when the dataset is not there.
    """
    check_split(split, 0.0)
    shown_dir = data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
    not_prepared = UserError(
        f"TFDS dataset {name!r} is not prepared in DATA_DIR={shown_dir}: run "
        f"tfds.builder({name!r}, data_dir={shown_dir!r}).download_and_prepare("
        "file_format='array_record') on a machine with internet"
    )
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError:
        raise not_prepared from None
    # Checked first: for an unprepared dataset `as_data_source` blames the file format.
    if not builder.is_prepared():
        raise not_prepared
    info = builder.info
    available = list(info.splits.keys())
    candidates = ["train"] if split == "train" else ["validation", "test"]
    tfds_split = next((s for s in candidates if s in available), None)
    if tfds_split is None:
        raise UserError(f"TFDS dataset {name!r} has splits {available}, none of {candidates}")
    try:
        data = builder.as_data_source(split=tfds_split)
    except NotImplementedError:
        raise UserError(
            f"TFDS dataset {name!r} in {shown_dir} is not in a random-access format: "
            "re-run download_and_prepare(file_format='array_record')"
        ) from None
    return data, info, tfds_split
