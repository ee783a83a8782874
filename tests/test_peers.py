"""Peer adapters: one interface, rows that line up with the documents given to build."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_seismic import random_vectors, recall

import sparseir
from sparseir.bench.peers import PEERS, PISA, PyVsag, quantize
from sparseir.bench.timing import time_batch, time_single

# Slow: run with -m slow (CI runs both sets).
pytestmark = pytest.mark.slow

EXACT_KNOBS = {"pyseismic": {"query_cut": 1000, "heap_factor": 0.01}, "bmp": {"alpha": 1.0, "beta": 1.0},
               "pyvsag": {"query_prune_ratio": 0.0, "n_candidate": 600}, "pisa": {"algorithm": "block_max_wand"}}


def in_own_process(check: str, *args) -> None:
    """Run `check(*args)` from this module in a fresh interpreter.

    pisa's and pyvsag's native libraries crash a process that uses both (see sparseir.bench.peers),
    so pisa never runs inside the test process, where pyvsag runs.
    """
    code = f"import test_peers; test_peers.{check}(*{args!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent, capture_output=True, text=True,
                          check=False, timeout=600)
    assert done.returncode == 0, f"{check}{args} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"


@pytest.mark.parametrize("name", sorted(PEERS))
def test_peer_matches_exact_search(name):
    if not PEERS[name].available():
        pytest.skip(f"{name} not installed")
    if name == "pisa":
        in_own_process("check_peer_matches_exact_search", name)
    else:
        check_peer_matches_exact_search(name)


def check_peer_matches_exact_search(name):
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
    # approximation (pyseismic's pruning, bmp's and pisa's 8-bit weights) costs a little.
    assert recall(rows, exact_rows) >= 0.85
    with pytest.raises(sparseir.ParameterError, match="unknown"):
        peer.search(queries, 5, no_such_knob=1)


def integer_vectors(seed: int, n: int, n_terms: int, max_len: int, top: int) -> sparseir.SparseVectors:
    """random_vectors with integer weights in 1..top: few distinct dot products, so many ties."""
    vectors = random_vectors(seed, n, n_terms, max_len)
    weights = np.random.default_rng(seed + 100).integers(1, top + 1, vectors.nnz)
    return sparseir.SparseVectors(vectors.offsets, vectors.terms, weights, None, vectors.vocab)


def dense_quantized(vectors: sparseir.SparseVectors, scale: float) -> np.ndarray:
    dense = np.zeros((len(vectors), len(vectors.vocab)), dtype=np.int64)
    rows = np.repeat(np.arange(len(vectors)), np.diff(vectors.offsets))
    dense[rows, vectors.terms] = quantize(vectors.weights, scale)
    return dense


def assert_brute_force_top_k(scores, rows, docs, queries, scale, k):
    """Hits are the k highest quantized dot products (docs scoring 0 left out); among equal scores any order."""
    brute = dense_quantized(queries, 255 / queries.weights.max()) @ dense_quantized(docs, scale).T
    for q in range(len(queries)):
        expected = np.sort(brute[q][brute[q] > 0])[::-1][:k]
        found = rows[q][rows[q] >= 0]
        assert len(found) == len(expected) and len(set(found.tolist())) == len(found)
        np.testing.assert_array_equal(scores[q][:len(found)], expected.astype(np.float32))
        np.testing.assert_array_equal(brute[q][found], expected)  # each row really has its score
        assert np.all(rows[q][len(found):] == -1) and np.all(scores[q][len(found):] == -np.inf)


@pytest.mark.parametrize("algorithm", ["block_max_wand", "maxscore"])
@pytest.mark.parametrize("weights", ["integer", "float"])
def test_pisa_is_exact_over_quantized_weights(algorithm, weights):
    if not PISA.available():
        pytest.skip("pyterrier-pisa not installed")
    in_own_process("check_pisa_is_exact", algorithm, weights)


def check_pisa_is_exact(algorithm, weights):
    if weights == "integer":  # already 1..255 at scale 1, few values: ties everywhere
        docs, queries = integer_vectors(7, 3000, 120, 30, 4), integer_vectors(8, 40, 120, 8, 255)
        peer = PISA(scale=1.0, block_size=16)
    else:  # skewed float weights through the default scale, as bmp quantizes them
        docs, queries = random_vectors(7, 3000, 120, 30), random_vectors(8, 40, 120, 8)
        peer = PISA(block_size=16)
    queries.vocab = docs.vocab
    peer.build(docs)
    assert peer.build_seconds > 0 and peer.index_bytes > 0
    k = 10
    scores, rows = peer.search(queries, k, algorithm=algorithm)
    assert scores.dtype == np.float32 and rows.dtype == np.int64 and rows.shape == (len(queries), k)
    assert_brute_force_top_k(scores, rows, docs, queries, peer.scale, k)
    # The timing protocol's paths give the same hits: one call per query, one batch call on 1 and 2 threads.
    _, one_scores, one_rows = time_single(peer, queries, k, {"algorithm": algorithm}, passes=1)
    np.testing.assert_array_equal(one_scores, scores)
    np.testing.assert_array_equal(one_rows, rows)
    for threads in (1, 2):
        _, batch_scores, batch_rows = time_batch(peer, queries, k, threads, {"algorithm": algorithm}, repeats=1)
        np.testing.assert_array_equal(batch_scores, scores)
        np.testing.assert_array_equal(batch_rows, rows)
    peer.close()


def test_pisa_refuses_unknown_parameters():
    if not PISA.available():
        pytest.skip("pyterrier-pisa not installed")
    in_own_process("check_pisa_refuses_unknown_parameters")


def check_pisa_refuses_unknown_parameters():
    docs = random_vectors(5, 50, 40, 6)
    with pytest.raises(sparseir.ParameterError, match="unknown pisa build"):
        PISA(bsize=32).build(docs)
    peer = PISA()
    peer.build(docs)
    with pytest.raises(sparseir.ParameterError, match="algorithm"):
        peer.search(docs, 5, algorithm="ranked_and")  # not rank-safe, and unknown ones would crash


@pytest.mark.parametrize("first", ["pisa", "pyvsag"])
def test_pisa_and_pyvsag_refuse_to_share_a_process(first):
    if not (PISA.available() and PyVsag.available()):
        pytest.skip("needs both pyterrier-pisa and pyvsag")
    in_own_process("check_second_peer_refuses", first)


def check_second_peer_refuses(first):
    docs = random_vectors(5, 50, 40, 6)
    PEERS[first]().build(docs)
    second = "pyvsag" if first == "pisa" else "pisa"
    with pytest.raises(sparseir.ParameterError, match="separate process"):
        PEERS[second]().build(docs)  # a ParameterError, where using it would crash the interpreter
