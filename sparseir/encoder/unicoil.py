"""uniCOIL: a BERT encoder plus a linear head giving each input token one weight.

A token's weight is relu(w . h_t + b) for its contextual embedding h_t; a term's weight
is the max over the term's occurrences in the text. Two directory layouts load:

- sparseir's: the encoder, and the head beside it as `unicoil_head.safetensors`, two
  tensors `weight` [1, hidden] and `bias` [1] (see docs/encoders.md);
- castorini's published checkpoints (e.g. unicoil-msmarco-passage): one state dict
  (`model.safetensors` or `pytorch_model.bin`) holding the encoder under `bert.` and the
  head as `tok_proj.weight` / `tok_proj.bias`.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import InputError
from ._base import WEIGHT_FILES, TransformerWeighter

HEAD_FILE = "unicoil_head.safetensors"
CASTORINI_HEAD = "tok_proj."


class UnicoilWeighter(TransformerWeighter):
    def __init__(self, model, options):
        super().__init__(model, options)
        self.head_tensors = self._read_head()  # small; read now so that a missing head fails early

    def load_modules(self, dtype):
        import torch
        from transformers import AutoModel

        encoder = self.load_pretrained(AutoModel, dtype)
        hidden = encoder.config.hidden_size
        weight, bias = self.head_tensors
        if weight is None or bias is None or tuple(weight.shape) != (1, hidden) or tuple(bias.shape) != (1,):
            raise InputError(f"the uniCOIL head must be `weight` [1, {hidden}] and `bias` [1] ({HEAD_FILE}) "
                             f"or `{CASTORINI_HEAD}weight` / `{CASTORINI_HEAD}bias` in the model weights",
                             self.directory)
        head = torch.nn.Linear(hidden, 1, dtype=dtype)
        with torch.no_grad():
            head.weight.copy_(weight)
            head.bias.copy_(bias)
        return encoder, head.to(self.device).eval()

    def _read_head(self):
        """(weight, bias) from sparseir's head file, else from castorini's `tok_proj` entries."""
        if (self.directory / HEAD_FILE).is_file():
            tensors = read_tensors(self.directory / HEAD_FILE)
            return tensors.get("weight"), tensors.get("bias")
        weights_file = next(self.directory / name for name in WEIGHT_FILES if (self.directory / name).is_file())
        tensors = read_tensors(weights_file, prefix=CASTORINI_HEAD)
        if not tensors:
            raise InputError(f"no uniCOIL head: missing {HEAD_FILE}, and {weights_file.name} has no "
                             f"`{CASTORINI_HEAD}*` weights", self.directory)
        return tensors.get(CASTORINI_HEAD + "weight"), tensors.get(CASTORINI_HEAD + "bias")

    def term_weights(self, token_ids: list[np.ndarray]) -> np.ndarray:
        import torch

        encoder, head = self.modules
        input_ids, mask = self.padded(token_ids)
        n_terms = len(self.vocab)
        lengths = torch.as_tensor([len(t) for t in token_ids], device=self.device)
        with torch.inference_mode():
            tokens = encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state[mask]
            token_weights = torch.relu_(head(tokens).squeeze(1))
            rows = torch.arange(len(token_ids), device=self.device).repeat_interleave(lengths)
            # Max over repeated occurrences of a term: scatter into the flattened (batch, V) grid.
            weights = torch.zeros(len(token_ids) * n_terms, dtype=token_weights.dtype, device=self.device)
            weights.scatter_reduce_(0, rows * n_terms + input_ids[mask], token_weights, reduce="amax")
            return self.drop_special(weights.view(len(token_ids), n_terms))


def read_tensors(path: os.PathLike, prefix: str = "") -> dict:
    """The tensors of a .safetensors or torch .bin file whose names start with `prefix`."""
    import torch
    from safetensors import SafetensorError, safe_open

    try:
        if str(path).endswith(".safetensors"):
            with safe_open(path, framework="pt") as f:
                return {name: f.get_tensor(name) for name in f.keys() if name.startswith(prefix)}
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise InputError(f"cannot read the weights: {e}", path) from None
    return {name: tensor for name, tensor in state.items() if name.startswith(prefix)}


def save_head(directory: str | os.PathLike, weight, bias) -> None:
    """Write a uniCOIL head (`weight` [1, hidden], `bias` [1]) into a model directory."""
    import torch
    from safetensors.torch import save

    from ..fileio import atomic_file

    tensors = {"weight": torch.as_tensor(weight, dtype=torch.float32).reshape(1, -1).contiguous(),
               "bias": torch.as_tensor(bias, dtype=torch.float32).reshape(1).contiguous()}
    with atomic_file(os.path.join(directory, HEAD_FILE), mode="wb") as f:
        f.write(save(tensors))
