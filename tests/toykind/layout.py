"""The toy kind's arrays: the collection's CSR, as given.

    toy_offsets  int64, n_docs + 1: a document's entries are toy_offsets[d]:toy_offsets[d + 1]
    toy_terms    int32: their term ids, ascending within a document
    toy_weights  float32: their weights
"""

from sparseir.layout.checks import Ids, Offsets, Weights

LAYOUT_VERSION = 1
CAPABILITIES = frozenset({"filters"})
ON_DISK = ("toy_terms", "toy_weights")
CHECKS = (
    Offsets("toy_offsets", length="n_docs + 1", last="len(toy_terms)"),
    Ids("toy_terms", below="n_terms"),
    Weights("toy_weights", count="len(toy_terms)"),
)
