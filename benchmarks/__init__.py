"""Benchmarks vs the PyTorch reference (run with `python -m benchmarks.<name>`; see README.md)."""
