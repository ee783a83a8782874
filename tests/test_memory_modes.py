"""Serving under a memory budget: load_index(memory=...) changes what is resident, never results."""

from __future__ import annotations

import numpy as np
import pytest

import sparseir
from sparseir.errors import ParameterError
from sparseir.kinds import get_kind

from conftest import random_vectors


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rng = np.random.default_rng(11)
    docs, queries = random_vectors(rng, 600, 120, 12), random_vectors(rng, 40, 120, 6, prefix="q")
    queries.vocab = docs.vocab
    root = tmp_path_factory.mktemp("memory")
    for kind in sparseir.KINDS:
        sparseir.build_index(docs, kind=kind).save(root / kind)
    return root, queries


@pytest.mark.parametrize("kind", sparseir.KINDS)
def test_every_memory_mode_returns_what_the_mapped_index_returns(saved, kind):
    root, queries = saved
    want = sparseir.load_index(root / kind).search(queries, k=10)
    on_disk = set(get_kind(kind).layout.ON_DISK)
    for memory in ("all", "summaries"):
        index = sparseir.load_index(root / kind, memory=memory)
        for got, expected in zip(index.search(queries, k=10), want):
            np.testing.assert_array_equal(got, expected)
        for name, array in index.arrays.items():
            mapped = isinstance(array, np.memmap)
            assert mapped == (memory == "summaries" and name in on_disk), (memory, name)
    assert on_disk & set(index.arrays), "a kind keeps some bulk on disk"


def test_memory_modes_reach_sharded_indexes_and_bad_modes_are_refused(saved, tmp_path):
    root, queries = saved
    from sparseir.sharded import build_sharded

    docs = random_vectors(np.random.default_rng(2), 300, 120, 10)
    queries.vocab = docs.vocab
    build_sharded(docs, tmp_path / "sharded", shards=2, kind="seismic")
    want = sparseir.load_index(tmp_path / "sharded").search(queries, k=5)
    got = sparseir.load_index(tmp_path / "sharded", memory="summaries").search(queries, k=5)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ParameterError, match="memory"):
        sparseir.load_index(root / "exact", memory="lots")
