"""Building the toy kind: the documents' CSR arrays, cast once."""

from dataclasses import dataclass

import numpy as np

from sparseir.params import OrderedBuild


@dataclass(frozen=True)
class BuildParams(OrderedBuild):
    """No knobs of its own; reordering comes with every kind."""


def build(docs, params: BuildParams, workspace) -> dict[str, np.ndarray]:
    return {"toy_offsets": docs.offsets.astype(np.int64), "toy_terms": docs.terms.astype(np.int32),
            "toy_weights": np.ones(docs.nnz, dtype=np.float32) if docs.is_binary else docs.weights.astype(np.float32)}
