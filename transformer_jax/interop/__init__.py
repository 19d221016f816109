"""Hugging Face interop: import and export checkpoints and tokenizers (see family.py)."""
