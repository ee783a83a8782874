"""Peer adapters: one interface, rows that line up with the documents given to build."""

import numpy as np
import pytest

import sparseir
from sparseir.peers import PEERS

from test_seismic import random_vectors, recall

EXACT_KNOBS = {"pyseismic": dict(query_cut=1000, heap_factor=0.01), "bmp": dict(alpha=1.0, beta=1.0),
               "pyvsag": dict(query_prune_ratio=0.0, n_candidate=600)}


@pytest.mark.parametrize("name", sorted(PEERS))
def test_peer_matches_exact_search(name, tmp_path):
    if not PEERS[name].available():
        pytest.skip(f"{name} not installed")
    docs = random_vectors(5, 600, 80, 12)
    queries = random_vectors(6, 30, 80, 6)
    queries.vocab = docs.vocab
    _, exact_rows = sparseir.build_index(docs, kind="exact").search(queries, k=5)
    peer = PEERS[name](**({"n_postings": 10**6, "summary_energy": 1.0} if name == "pyseismic" else {}))
    peer.build(docs)
    assert peer.build_seconds > 0 and peer.index_bytes > 0
    scores, rows = peer.search(queries, 5, threads=1, **EXACT_KNOBS[name])
    assert scores.dtype == np.float32 and rows.dtype == np.int64 and rows.shape == (len(queries), 5)
    # Rows that did not line up with the documents would overlap by chance only (~1%);
    # approximation (pyseismic's pruning, bmp's 8-bit weights) costs a little.
    assert recall(rows, exact_rows) >= 0.85
    with pytest.raises(sparseir.ParameterError, match="unknown"):
        peer.search(queries, 5, no_such_knob=1)
