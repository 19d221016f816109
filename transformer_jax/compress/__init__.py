"""Model compression: int8 post-training weight quantization (`int8.py`) and gradual magnitude
pruning during training (`pruning.py`)."""
