"""SPLADE: a masked-LM model; term j weighs max_t log(1 + relu(logit_tj)) over the text's tokens.

Any architecture that `AutoModelForMaskedLM` loads works (BERT, DistilBERT, RoBERTa,
XLM-RoBERTa, ModernBERT, ...): the model's own forward pass runs up to its output layer
(`get_output_embeddings()`, the vocabulary-wide projection), whatever prediction head
precedes it, and stops there. A load-time probe checks that nothing follows that layer.

The projection dominates the cost, so it runs only on real (non-padding) tokens, packed
into one matrix, in slices of tokens and tiles of the vocabulary: a tile of logits fits in
the CPU cache instead of streaming a (tokens x vocabulary) matrix through memory, with
identical results (docs/encoders.md measures it). Because
log(1 + relu(x)) is increasing, the max is taken over raw logits and the activation
applied once per text.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import InputError
from ._base import TransformerWeighter

# Tokens projected at once; with the vocabulary tile below, 2048 x 1024 float32 logits are
# 8 MB (the whole 30522-wide row would be 250 MB).
HEAD_TOKENS = 2048
# Vocabulary columns per tile on CPU; accelerators take the whole vocabulary at once.
VOCAB_TILE = 1024


class _OutputLayerReached(Exception):
    """Stops a forward pass at the output layer, carrying that layer's input."""

    def __init__(self, features):
        super().__init__("output layer reached")
        self.features = features


class SpladeWeighter(TransformerWeighter):
    """A Hugging Face masked-LM directory."""

    def load_modules(self, dtype):
        import torch
        from transformers import AutoModelForMaskedLM

        model = self.load_pretrained(AutoModelForMaskedLM, dtype)
        output_layer = model.get_output_embeddings()
        if not isinstance(output_layer, torch.nn.Linear):
            raise InputError(f"unsupported masked-LM architecture {type(model).__name__} "
                             "(its output layer is not a linear projection)", self.directory)
        self._check_nothing_follows(model, output_layer)
        return model, output_layer

    def term_weights(self, token_ids: list[np.ndarray]) -> np.ndarray:
        import torch

        model, output_layer = self.modules
        input_ids, mask = self.padded(token_ids)
        lengths = [len(ids) for ids in token_ids]
        starts = np.concatenate([[0], np.cumsum(lengths)])
        token_rows = torch.arange(len(token_ids), device=self.device).repeat_interleave(
            torch.as_tensor(lengths, device=self.device))
        n_terms = len(self.vocab)
        tile = VOCAB_TILE if self.device.type == "cpu" else n_terms
        weight, bias = output_layer.weight, output_layer.bias
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="index_reduce", category=UserWarning)  # "in beta"
            tokens = output_layer_input(model, output_layer, input_ids, mask)[mask]
            best = torch.empty((len(token_ids), n_terms), dtype=tokens.dtype, device=self.device)
            for first, last in head_slices(starts, HEAD_TOKENS):
                packed = tokens[starts[first]:starts[last]]
                rows = token_rows[starts[first]:starts[last]] - first
                for column in range(0, n_terms, tile):
                    end = min(column + tile, n_terms)
                    logits = torch.nn.functional.linear(packed, weight[column:end],
                                                        None if bias is None else bias[column:end])
                    # One segmented max per tile, not a call per text; each text lies in a
                    # single slice, so no initial value is needed.
                    best[first:last, column:end].index_reduce_(0, rows, logits, "amax", include_self=False)
            return self.drop_special(torch.log1p(torch.relu_(best)))

    def _check_nothing_follows(self, model, output_layer) -> None:
        """The model's logits must be its output layer applied to that layer's input; an
        architecture that transforms logits afterwards (e.g. soft-capping) is refused."""
        import torch

        # Any token ids do; the tokenizer itself may be busy on the tokenizing thread.
        input_ids, mask = self.padded([np.arange(min(8, len(self.vocab)), dtype=np.int64)])
        with torch.inference_mode():
            logits = model(input_ids=input_ids, attention_mask=mask).logits
            rebuilt = output_layer(output_layer_input(model, output_layer, input_ids, mask))
        if not torch.allclose(logits.float(), rebuilt.float(), rtol=1e-3, atol=1e-3):
            raise InputError(f"unsupported masked-LM architecture {type(model).__name__} "
                             "(its logits are not the output layer's plain projection)", self.directory)


def output_layer_input(model, output_layer, input_ids, mask):
    """The (batch, length, hidden) input of the model's output layer: the model's own forward
    pass, prediction head included, stopped before the vocabulary-wide projection."""
    def stop(module, args):
        raise _OutputLayerReached(args[0])

    handle = output_layer.register_forward_pre_hook(stop)
    try:
        model(input_ids=input_ids, attention_mask=mask)
    except _OutputLayerReached as reached:
        return reached.features
    finally:
        handle.remove()
    raise InputError(f"unsupported masked-LM architecture {type(model).__name__} "
                     "(its forward pass does not use its output layer)")


def head_slices(starts: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive row ranges [first, last) of at most `budget` tokens (at least one row each)."""
    slices = []
    first = 0
    n_rows = len(starts) - 1
    while first < n_rows:
        last = first + 1
        while last < n_rows and starts[last + 1] - starts[first] <= budget:
            last += 1
        slices.append((first, last))
        first = last
    return slices
