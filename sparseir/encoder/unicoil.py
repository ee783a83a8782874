"""uniCOIL: a BERT encoder plus a linear head giving each input token one weight.

A token's weight is relu(w . h_t + b) for its contextual embedding h_t; a term's weight
is the max over the term's occurrences in the text. The head is stored beside the
encoder in the model directory as `unicoil_head.safetensors`, two tensors: `weight`
(shape [1, hidden]) and `bias` (shape [1]); see docs/encoders.md.
"""

from __future__ import annotations

import os

import numpy as np

from . import TOKENIZER_FILES, InputError, TransformerWeighter

HEAD_FILE = "unicoil_head.safetensors"


class UnicoilWeighter(TransformerWeighter):
    required_files = ("config.json", ("model.safetensors", "pytorch_model.bin"), TOKENIZER_FILES, HEAD_FILE)

    def load_modules(self, dtype):
        import torch
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        from transformers import AutoModel

        encoder = self.load_pretrained(AutoModel, dtype)
        hidden = encoder.config.hidden_size
        try:
            tensors = load_file(self.directory / HEAD_FILE)
        except (SafetensorError, OSError) as e:
            raise InputError(f"cannot read {HEAD_FILE}: {e}", self.directory) from None
        weight, bias = tensors.get("weight"), tensors.get("bias")
        if weight is None or bias is None or tuple(weight.shape) != (1, hidden) or tuple(bias.shape) != (1,):
            raise InputError(f"{HEAD_FILE} must hold `weight` [1, {hidden}] and `bias` [1]", self.directory)
        head = torch.nn.Linear(hidden, 1, dtype=dtype)
        with torch.no_grad():
            head.weight.copy_(weight)
            head.bias.copy_(bias)
        return encoder, head.eval()

    def term_weights(self, token_ids: list[np.ndarray]) -> np.ndarray:
        import torch

        encoder, head = self.modules
        input_ids, mask = self.padded(token_ids)
        n_terms = len(self.vocab)
        with torch.inference_mode():
            tokens = encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state[mask]
            token_weights = torch.relu_(head(tokens).squeeze(1))
            rows = torch.arange(len(token_ids)).repeat_interleave(torch.as_tensor([len(t) for t in token_ids]))
            # Max over repeated occurrences of a term: scatter into the flattened (batch, V) grid.
            weights = torch.zeros(len(token_ids) * n_terms, dtype=token_weights.dtype)
            weights.scatter_reduce_(0, rows * n_terms + input_ids[mask], token_weights, reduce="amax")
            return self.drop_special(weights.view(len(token_ids), n_terms))


def save_head(directory: str | os.PathLike, weight, bias) -> None:
    """Write a uniCOIL head (`weight` [1, hidden], `bias` [1]) into a model directory."""
    import torch
    from safetensors.torch import save

    from ..fileio import atomic_file

    tensors = {"weight": torch.as_tensor(weight, dtype=torch.float32).reshape(1, -1).contiguous(),
               "bias": torch.as_tensor(bias, dtype=torch.float32).reshape(1).contiguous()}
    with atomic_file(os.path.join(directory, HEAD_FILE), mode="wb") as f:
        f.write(save(tensors))
