"""sparseir.bench.synthetic: readable parts, determinism, the documented statistics, topics that cluster."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import sparseir
from sparseir.bench import synthetic as synth

# Slow: run with -m slow (CI runs both sets).
pytestmark = pytest.mark.slow

N_DOCS, N_QUERIES, SEED = 20_000, 1_000, 7


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """20,000 passages in 3 parts (8,000, 8,000, 4,000) whose row groups do not line up with them."""
    out = tmp_path_factory.mktemp("synth")
    stats = synth.generate(out, N_DOCS, N_QUERIES, seed=SEED, part_size=8_000, row_group=3_000, log=lambda m: None)
    return out, stats


def read_collection(out: Path) -> tuple[sparseir.SparseVectors, np.ndarray, np.ndarray]:
    """(vectors, groups, topics) of all parts."""
    parts = sorted((out / "collection").glob("part-*.parquet"))
    docs = sparseir.SparseVectors.concatenate([sparseir.read_vectors(part) for part in parts])
    labels = [pq.read_table(part, columns=["group", "topic"]) for part in parts]
    return (docs, *(np.concatenate([t.column(name).to_numpy() for t in labels]) for name in ("group", "topic")))


def test_parts_are_readable_sparseir_vectors(generated):
    out, stats = generated
    parts = sorted((out / "collection").glob("part-*.parquet"))
    assert [p.name for p in parts] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    first = sparseir.read_vectors(parts[0])  # validates: sorted unique term ids, finite non-negative weights
    assert len(first) == 8_000 and first.vocab == sparseir.Vocabulary.default()
    assert [pq.ParquetFile(p).metadata.num_rows for p in parts] == [8_000, 8_000, 4_000]
    assert [pq.ParquetFile(parts[0]).metadata.row_group(i).num_rows for i in range(3)] == [3_000, 3_000, 2_000]
    docs, groups, topics = read_collection(out)
    assert list(docs.ids[:3]) == ["0", "1", "2"] and docs.ids[-1] == str(N_DOCS - 1)
    assert docs.weights.dtype == np.float32 and 0 < docs.weights.min() and docs.weights.max() <= 5.0
    assert topics.min() >= 0 and topics.max() < synth.Params().n_topics
    assert groups.min() >= 0 and groups.max() < synth.Params().n_groups
    inactive = np.setdiff1d(np.arange(len(docs.vocab)), synth.active_term_ids(docs.vocab))
    assert not np.isin(docs.terms, inactive).any()  # never [PAD], [unused*], [CLS], ...
    queries = sparseir.read_vectors(out / "queries.parquet", vocab=docs.vocab)
    assert len(queries) == N_QUERIES
    qrels = (out / "qrels.txt").read_text().splitlines()
    sources = pq.read_table(out / "queries.parquet", columns=["source"]).column("source").to_pylist()
    assert qrels == [f"{j} 0 {s} 1" for j, s in enumerate(sources)]
    assert json.loads((out / "stats.json").read_text())["docs"]["nnz"] == docs.nnz == stats["docs"]["nnz"]


def test_same_seed_same_vectors_whatever_the_chunking(generated, tmp_path):
    out, _ = generated
    synth.generate(tmp_path, N_DOCS, N_QUERIES, seed=SEED, part_size=20_000, row_group=7_000, log=lambda m: None)
    docs, groups, topics = read_collection(out)
    again, again_groups, again_topics = read_collection(tmp_path)
    assert docs.equals(again) and np.array_equal(groups, again_groups) and np.array_equal(topics, again_topics)
    assert (out / "queries.parquet").read_bytes() == (tmp_path / "queries.parquet").read_bytes()
    # Passage i depends only on (seed, i): any subset regenerates the same rows.
    model = synth.build_model(SEED)
    rows = np.array([19_999, 5, 12_345, 5])
    offsets, terms, weights, _, _ = synth.generate_docs(model, rows)
    assert docs.take(rows).equals(sparseir.SparseVectors(offsets, terms, weights, docs.ids[rows]))


def test_another_seed_other_vectors(generated, tmp_path):
    out, _ = generated
    model = synth.build_model(SEED + 1)
    _, terms, _, _, _ = synth.generate_docs(model, np.arange(100))
    docs, _, _ = read_collection(out)
    assert not np.array_equal(terms, docs[:100].terms)


REFERENCE_SCRIPT = """
import sys, warnings
import numpy as np
warnings.simplefilter("ignore")  # uint64 wrap-around warns in interpreted numpy
from sparseir.bench import synthetic as synth
model = synth.build_model(int(sys.argv[2]), synth.Params(n_topics=50))
docs = synth.generate_docs(model, np.array([0, 1, 9_999]))
queries = synth.generate_queries(model, 3, 10_000)
np.savez(sys.argv[1], *docs, *queries)
"""


def test_compiled_kernels_match_their_python_source(tmp_path):
    """The generator run by the interpreter (NUMBA_DISABLE_JIT) gives the compiled one's vectors:
    guards against numba typing surprises (a uint64 stream typed int64 draws other numbers)."""
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    subprocess.run([sys.executable, "-c", REFERENCE_SCRIPT, str(tmp_path / "ref.npz"), str(SEED)],
                   env=env, check=True, timeout=120)
    reference = np.load(tmp_path / "ref.npz")
    model = synth.build_model(SEED, synth.Params(n_topics=50))
    compiled = [*synth.generate_docs(model, np.array([0, 1, 9_999])), *synth.generate_queries(model, 3, 10_000)]
    assert len(compiled) == len(reference.files)
    for k, array in enumerate(compiled):
        expected = reference[f"arr_{k}"]
        if array.dtype.kind == "f":
            np.testing.assert_allclose(array, expected, rtol=1e-6)
        else:
            np.testing.assert_array_equal(array, expected)


def test_statistics_follow_the_documented_figures(generated):
    _, stats = generated
    docs, queries, published = stats["docs"], stats["queries"], synth.PUBLISHED
    assert abs(docs["nnz_per_vector"]["mean"] / published["nnz_per_passage"] - 1) < 0.05  # 119 (Seismic)
    assert abs(queries["nnz_per_vector"]["mean"] / published["nnz_per_query"] - 1) < 0.08  # 43 (Seismic)
    assert 40 <= docs["nnz_per_vector"]["p5"] and docs["nnz_per_vector"]["p95"] <= 260
    assert abs(docs["weight_sum_per_vector"] / published["weight_sum_per_passage"] - 1) < 0.08  # 59.2 (Anserini)
    assert 0.42 < docs["weights"]["mean"] < 0.58
    assert 0.05 < docs["weights"]["p5"] and docs["weights"]["p99"] < 3.0 and docs["weights"]["max"] <= 5.0
    low, high = published["flops_range"]
    assert low <= stats["flops"] <= high
    # Heavy-tailed document frequencies: a head in a large share of passages, a long rare tail.
    df = docs["df_fraction_at_rank"]
    assert df["1"] > 0.3 and df["100"] > 0.05 and df["10000"] < 0.005
    assert 500 < docs["terms_with_df_fraction_at_least"]["0.01"] < 4_000
    # Queries: the source passage's heaviest terms weigh most.
    assert queries["weights"]["p99"] > docs["weights"]["p99"] and queries["l1_mass_in_top10"] > 0.5


def test_passages_of_one_group_or_topic_share_terms(generated):
    out, stats = generated
    docs, groups, topics = read_collection(out)
    rows = [set(docs[i].terms.tolist()) for i in range(len(docs))]

    def mean_shared(pairs):
        return np.mean([len(rows[a] & rows[b]) for a, b in pairs])

    def pairs_sharing(labels):
        order = np.argsort(labels, kind="stable")
        return [(a, b) for a, b in itertools.pairwise(order) if labels[a] == labels[b]][:1000]

    same_group = pairs_sharing(groups)
    same_topic = [(a, b) for a, b in pairs_sharing(topics) if groups[a] != groups[b]]
    rng = np.random.default_rng(0)
    random_pairs = [(a, b) for a, b in rng.integers(0, len(docs), (1000, 2)) if a != b]
    assert len(same_group) > 50 and len(same_topic) > 500
    assert mean_shared(same_group) > 1.3 * mean_shared(same_topic) > 2.6 * mean_shared(random_pairs)
    cluster = stats["clusterability"]
    assert cluster["shared_terms_same_topic"] > 2 * cluster["shared_terms_random_pair"]
    # Written in random topic order: neighbours in the file rarely share a topic.
    assert np.mean(topics[1:] == topics[:-1]) < 0.01


def test_queries_have_their_source_among_the_nearest_passages(generated):
    scipy = pytest.importorskip("scipy")  # noqa: F841  (to_scipy needs it)
    out, _ = generated
    docs, _, _ = read_collection(out)
    queries = sparseir.read_vectors(out / "queries.parquet", vocab=docs.vocab)
    sources = np.array(pq.read_table(out / "queries.parquet", columns=["source"]).column("source").to_pylist(),
                       dtype=np.int64)
    scores = (queries.to_scipy() @ docs.to_scipy().T).toarray()
    rank = (scores > scores[np.arange(len(queries)), sources][:, None]).sum(axis=1)
    assert np.mean(rank < 10) > 0.8


def test_refuses_to_replace_outputs_unless_told(generated, tmp_path):
    synth.generate(tmp_path, 3_000, 10, seed=1, part_size=1_000, log=lambda m: None)
    with pytest.raises(FileExistsError):
        synth.generate(tmp_path, 3_000, 10, seed=1, part_size=1_000, log=lambda m: None)
    synth.generate(tmp_path, 1_500, 10, seed=1, part_size=1_000, overwrite=True, log=lambda m: None)
    assert sorted(p.name for p in (tmp_path / "collection").iterdir()) == ["part-00000.parquet",
                                                                           "part-00001.parquet"]
    assert sum(len(sparseir.read_vectors(p)) for p in (tmp_path / "collection").iterdir()) == 1_500
