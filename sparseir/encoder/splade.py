"""SPLADE: a masked-LM model; term j weighs max_t log(1 + relu(logit_tj)) over the text's tokens.

The 30522-wide MLM head dominates the cost, so it runs only on real (non-padding)
tokens, packed into one matrix, and in slices that bound the logits' memory. Because
log(1 + relu(x)) is increasing, the max is taken over raw logits first and the
activation applied once per text instead of once per token.
"""

from __future__ import annotations

import warnings

import numpy as np

from . import InputError, TransformerWeighter

# Tokens whose logits are materialised at once: 2048 x 30522 float32 is 250 MB.
HEAD_TOKENS = 2048


class SpladeWeighter(TransformerWeighter):
    """A Hugging Face masked-LM directory (BERT-style `cls` or RoBERTa-style `lm_head`)."""

    def load_modules(self, dtype):
        from transformers import AutoModelForMaskedLM

        model = self.load_pretrained(AutoModelForMaskedLM, dtype)
        head = getattr(model, "cls", None) or getattr(model, "lm_head", None)
        if head is None:
            raise InputError(f"unsupported masked-LM architecture {type(model).__name__} "
                             "(expected a `cls` or `lm_head` output head)", self.directory)
        return model.base_model, head

    def term_weights(self, token_ids: list[np.ndarray]) -> np.ndarray:
        import torch

        encoder, head = self.modules
        input_ids, mask = self.padded(token_ids)
        lengths = [len(ids) for ids in token_ids]
        starts = np.concatenate([[0], np.cumsum(lengths)])
        token_rows = torch.arange(len(token_ids)).repeat_interleave(torch.as_tensor(lengths))
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="index_reduce", category=UserWarning)  # "in beta"
            tokens = encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state[mask]
            best = torch.empty((len(token_ids), len(self.vocab)), dtype=tokens.dtype)
            for first, last in head_slices(starts, HEAD_TOKENS):
                window = slice(starts[first], starts[last])
                logits = head(tokens[window])[:, :len(self.vocab)]
                # One segmented max per slice; each row lies in a single slice, so no
                # initial value is needed (a per-row amax loop is ~20x slower on CPU).
                best.index_reduce_(0, token_rows[window], logits, "amax", include_self=False)
            return self.drop_special(torch.log1p(torch.relu_(best)))


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
