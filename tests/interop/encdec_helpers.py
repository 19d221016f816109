"""Shared helpers of the encoder-decoder parity tests: HF tensors -> the project's params."""

from __future__ import annotations

import numpy as np


def hf_tensors(model) -> dict[str, np.ndarray]:
    """A torch model's state_dict as float32 numpy arrays."""
    return {k: v.detach().float().numpy() for k, v in model.state_dict().items()}


def import_tree(family, hf_config: dict, tensors: dict[str, np.ndarray]):
    """(Architecture, unrolled params tree) built from `family.import_params`'s paths."""
    arch = family.architecture(hf_config)
    tree: dict = {}
    for path, thunk in family.import_params(hf_config, arch, tensors.__getitem__):
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        assert path[-1] not in node, f"{path} yielded twice"
        node[path[-1]] = thunk()
    return arch, tree


def perturb(model, seed: int = 0, scale: float = 0.05) -> None:
    """Moves every parameter and buffer of a torch model away from its init (norms off 1,
    biases off 0) so that a wrong mapping shows."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if tensor.is_floating_point() and "embed_positions" not in name:
                tensor.add_(torch.randn(tensor.shape, generator=gen) * scale)
