"""transformer_jax: GPT, BERT and encoder-decoder Transformers in JAX/Flax."""

from setuptools import find_packages, setup

setup(
    name="transformer_jax",
    version="0.1.0",
    description="GPT, BERT and encoder-decoder Transformers in JAX/Flax, CPU to TPU pod.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["transformer_jax", "transformer_jax.*"]),
    install_requires=[
        "jax>=0.10.2",
        "flax>=0.12.8",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12.8",
        "grain>=0.2.18",
        "sentencepiece>=0.2.0",
        "tensorflow-datasets>=4.9.10",
        # tfds 4.9.10 imports it to prepare datasets but no longer gets it via etils.
        "importlib_resources>=6",
        "absl-py>=2.1",
        "ml_collections>=1.1.0",
        "numpy>=2.0",
        "tensorboardX>=2.6",
        "tqdm>=4.66",
        "sacrebleu>=2.6.0",
        "rouge-score>=0.1.2",
        # Hugging Face checkpoints and tokenizers (transformer_jax/interop/).
        "safetensors>=0.8.0",
        "tokenizers>=0.23.0",
        "matplotlib>=3.8",  # the confusion matrix as a TensorBoard image
    ],
    extras_require={
        # pytest-xdist: pytest.ini runs the suite on 2 workers; seqeval: the entity-F1 check.
        "dev": ["pytest>=8", "pytest-xdist>=3.6", "ruff>=0.6", "seqeval>=1.2"],
        "tf": ["tensorflow>=2.17"],
        "gpu": ["jax[cuda12]>=0.10.2"],
        "tpu": ["jax[tpu]>=0.10.2"],
        "bench": ["torch==2.13.0", "transformers>=5", "matplotlib>=3.8"],
        # The Hugging Face interop tests' reference models (tests/interop/).
        "hf-test": ["torch==2.13.0", "transformers>=5", "peft>=0.21"],
        "lmeval": ["lm-eval>=0.4.13"],
        # gs:// workdirs: etils.epath reaches buckets through gcsfs (or TensorFlow's gfile).
        "gcs": ["gcsfs>=2026.10"],
        "gcs-test": ["gcsfs>=2026.10", "gcp-storage-emulator>=2026.7"],
    },
)
