"""Serving under a memory budget: load_index(memory=...) changes what is resident, never results."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparseir
from sparseir.errors import ParameterError
from sparseir.kinds import get_kind

from conftest import random_vectors, shared_vectors


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


# --- memory="disk": Seismic's summaries and block records read per query --------------------

# Small collections keep every posting, so their records are many times their forward index:
# more than a real index is allowed (max_record_ratio), nothing to a test.
DISK_BLOCKS = {"disk_blocks": True, "max_record_ratio": math.inf}

DISK_CASES = {
    "default": ({}, {}),
    "float32 forward, unpruned summaries": ({"forward_dtype": "float32", "summary_energy": 1.0}, {}),
    "fixed blocks, heavy pruning": ({"clustering": "fixed", "block_size": 5, "n_postings": 40}, {}),
    "kNN refinement": ({"n_knn": 4}, {"n_knn": 4}),
}


def disk_index(docs, root, name, **params):
    path = root / name
    if not path.exists():
        sparseir.build_index(docs, kind="seismic", **DISK_BLOCKS, **params).save(path)
    return path


@pytest.mark.parametrize("case", DISK_CASES)
def test_disk_mode_returns_what_the_index_in_memory_returns(tmp_path, case):
    """Batches and single queries, over knobs from strict to loose, k beyond the collection, with filters."""
    params, knobs = DISK_CASES[case]
    rng = np.random.default_rng(5)
    docs, queries = random_vectors(rng, 700, 150, 14), random_vectors(rng, 30, 150, 6, prefix="q")
    queries.vocab = docs.vocab
    path = disk_index(docs, tmp_path, "index", **params)
    in_memory, on_disk = sparseir.load_index(path, memory="all"), sparseir.load_index(path, memory="disk")
    keep = rng.random(len(docs)) < 0.3
    for settings in ({"query_cut": 1, "heap_factor": 1.0}, {"query_cut": 5, "heap_factor": 0.8},
                     {"query_cut": 40, "heap_factor": 0.3}):
        for k in (10, 1000):
            want = in_memory.search(queries, k=k, **knobs, **settings)
            for got in (on_disk.search(queries, k=k, **knobs, **settings),
                        [np.concatenate(part) for part in zip(*(on_disk.search(queries[q:q + 1], k=k, **knobs,
                                                                                     **settings)
                                                                  for q in range(len(queries))))]):
                for a, b in zip(got, want):
                    np.testing.assert_array_equal(a, b)
        allowed = np.flatnonzero(keep)
        want = in_memory.search(queries, k=10, filter=allowed, **knobs, **settings)
        for a, b in zip(on_disk.search(queries, k=10, filter=allowed, **knobs, **settings), want):
            np.testing.assert_array_equal(a, b)


def binary_over_a_wide_vocabulary() -> sparseir.SparseVectors:
    """400 binary documents of 25 terms each, drawn from 400 ids of a 100,000-term vocabulary."""
    rng = np.random.default_rng(8)
    vocab = sparseir.Vocabulary([str(i) for i in range(100_000)], open=True)
    pool = rng.choice(100_000, 400, replace=False)
    rows = [dict.fromkeys(np.sort(rng.choice(pool, 25, replace=False)).tolist(), 1.0) for _ in range(400)]
    return sparseir.SparseVectors.from_dicts(rows, vocab=vocab)


@pytest.mark.slow
def test_disk_mode_on_binary_vectors_over_a_wide_vocabulary(tmp_path):
    """No stored weights (unit summaries too) and forward-index gaps, through the block records."""
    docs = binary_over_a_wide_vocabulary()
    queries = docs[:20]
    path = disk_index(docs, tmp_path, "binary")
    want = sparseir.load_index(path, memory="all").search(queries, k=10, query_cut=6, heap_factor=0.7)
    got = sparseir.load_index(path, memory="disk").search(queries, k=10, query_cut=6, heap_factor=0.7)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_disk_mode_keeps_summaries_and_documents_out_of_ram(tmp_path):
    from sparseir.layout.seismic import DISK_ONLY, DISK_READS, ON_DISK

    docs = random_vectors(np.random.default_rng(6), 300, 100, 10)
    index = sparseir.load_index(disk_index(docs, tmp_path, "index"), memory="disk")
    assert sorted(index.arrays.disk) == sorted(DISK_READS)
    for name, array in index.arrays.items():
        assert isinstance(array, np.memmap) == (name in {*ON_DISK, *DISK_READS}), name
    everything = sparseir.load_index(disk_index(docs, tmp_path, "index"), memory="all")
    for name, array in everything.arrays.items():  # the records serve memory="disk" alone
        assert isinstance(array, np.memmap) == (name in DISK_ONLY), name


def test_block_records_hold_each_blocks_documents(tmp_path):
    """Decoded, every record lists its block's documents with their forward-index vectors."""
    from sparseir.layout.forward import read_doc
    from sparseir.query.seismic import read_record

    docs = random_vectors(np.random.default_rng(7), 300, 100, 10)
    a = sparseir.build_index(docs, kind="seismic", **DISK_BLOCKS).arrays
    weight_itemsize = a["doc_weights"].itemsize
    largest = a["largest_reads"]
    assert largest[4] == np.diff(a["block_record_offsets"]).max()
    terms, weights = np.empty(100, np.int64), np.empty(100, np.float32)
    for block in range(len(a["block_offsets"]) - 1):
        record = a["block_records"][a["block_record_offsets"][block]:a["block_record_offsets"][block + 1]]
        members = a["block_docs"][a["block_offsets"][block]:a["block_offsets"][block + 1]]
        rows, offsets, record_terms, record_weights = read_record(record, len(members), a["doc_terms"],
                                                                  a["doc_weights"], weight_itemsize)
        np.testing.assert_array_equal(rows, members)
        for i, doc in enumerate(members):
            n = read_doc(a["doc_offsets"], a["doc_terms"], a["doc_weights"], False, doc, terms, weights)
            np.testing.assert_array_equal(record_terms[offsets[i]:offsets[i + 1]], terms[:n])
            np.testing.assert_array_equal(record_weights[offsets[i]:offsets[i + 1]].view(np.float16), weights[:n])


def test_disk_mode_needs_block_records(saved, tmp_path):
    root, queries = saved
    with pytest.raises(ParameterError, match="disk_blocks"):
        sparseir.load_index(root / "seismic", memory="disk")
    with pytest.raises(ParameterError, match="memory='summaries'"):
        sparseir.load_index(root / "exact", memory="disk")
    from click.testing import CliRunner
    from sparseir.cli import cli

    queries_file = tmp_path / "queries.jsonl"
    sparseir.write_vectors(queries, queries_file)
    result = CliRunner().invoke(cli, ["search", str(root / "seismic"), str(queries_file), "-o", str(tmp_path / "run"),
                                      "--memory", "disk"])
    assert result.exit_code != 0 and "disk_blocks" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_disk_mode_refuses_a_file_changed_under_it(tmp_path):
    """A record file truncated after loading fails the search, rather than answering from garbage."""
    docs = random_vectors(np.random.default_rng(9), 300, 100, 10)
    path = disk_index(docs, tmp_path, "index")
    index = sparseir.load_index(path, memory="disk")
    with open(path / "block_records.npy", "r+b") as f:
        f.truncate(200)
    with pytest.raises(OSError, match="could not be read"):
        index.search(docs[:5], k=10)


@pytest.mark.slow
def test_disk_mode_on_a_shared_collection():
    path = shared_vectors("scifact")
    docs = sparseir.read_vectors(path / "collection.jsonl.gz")
    queries = sparseir.read_vectors(path / "queries.jsonl.gz", vocab=docs.vocab)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as scratch:
        index_path = disk_index(docs, Path(scratch), "scifact")
        in_memory = sparseir.load_index(index_path, memory="all")
        on_disk = sparseir.load_index(index_path, memory="disk")
        for settings in ({"query_cut": 3, "heap_factor": 0.9}, {"query_cut": 10, "heap_factor": 0.7}):
            for a, b in zip(on_disk.search(queries, k=100, **settings), in_memory.search(queries, k=100, **settings)):
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind_args", [["--kind", "seismic", "--disk-blocks", "--max-record-ratio", "inf"],
                                       ["--kind", "sindi", "--window-size", "100"]], ids=["seismic", "sindi"])
def test_cli_builds_out_of_core_and_searches_from_disk(tmp_path, kind_args):
    from click.testing import CliRunner
    from sparseir.cli import cli

    docs = random_vectors(np.random.default_rng(12), 400, 120, 12)
    queries = docs[:20]  # none empty, which the command line refuses
    sparseir.write_vectors(docs, tmp_path / "docs.jsonl.gz")
    sparseir.write_vectors(queries, tmp_path / "queries.jsonl")
    runner = CliRunner()
    built = runner.invoke(cli, ["index", str(tmp_path / "docs.jsonl.gz"), "-o", str(tmp_path / "index"), *kind_args,
                                "--memory-budget", "8K"])
    assert built.exit_code == 0, built.output
    runs = {}
    for memory in ("all", "disk"):
        result = runner.invoke(cli, ["search", str(tmp_path / "index"), str(tmp_path / "queries.jsonl"), "-o",
                                     str(tmp_path / f"{memory}.trec"), "--memory", memory])
        assert result.exit_code == 0, result.output
        runs[memory] = (tmp_path / f"{memory}.trec").read_text()
    assert runs["disk"] == runs["all"] and runs["all"].count("\n") == 20 * 10


def test_disk_blocks_refused_above_the_record_ratio(tmp_path):
    """Records that would outgrow the forward index past max_record_ratio are refused before any
    is written, naming the measured ratio; below it the build says what it wrote."""
    from click.testing import CliRunner
    from sparseir.cli import cli
    from sparseir.indexer.seismic import DEFAULT_MAX_RECORD_RATIO

    docs = random_vectors(np.random.default_rng(5), 300, 100, 20)  # every posting kept: ~20 blocks a document
    with pytest.raises(ParameterError, match=r"x the forward index .* above max_record_ratio=16"):
        sparseir.build_index(docs, kind="seismic", disk_blocks=True)
    assert DEFAULT_MAX_RECORD_RATIO == 16
    with pytest.raises(ParameterError, match="max_record_ratio must be a number > 0"):
        sparseir.build_index(docs, kind="seismic", disk_blocks=True, max_record_ratio=0)
    # The bound counts what would be written: lowering it below the measured ratio refuses.
    built = sparseir.build_index(docs, kind="seismic", **DISK_BLOCKS)
    ratio = built.arrays["block_records"].nbytes / sum(built.arrays[name].nbytes for name in
                                                        ("doc_offsets", "doc_terms", "doc_weights", "doc_term_gaps"))
    sparseir.build_index(docs, kind="seismic", disk_blocks=True, max_record_ratio=ratio * 1.001)
    with pytest.raises(ParameterError, match=f"{ratio:,.1f}x the forward index"):
        sparseir.build_index(docs, kind="seismic", disk_blocks=True, max_record_ratio=ratio * 0.999)

    sparseir.write_vectors(docs, tmp_path / "docs.jsonl")
    runner = CliRunner()
    refused = runner.invoke(cli, ["index", str(tmp_path / "docs.jsonl"), "-o", str(tmp_path / "refused"), "--kind",
                                  "seismic", "--disk-blocks"])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "--max-record-ratio" in refused.output and not (tmp_path / "refused").exists()
    built = runner.invoke(cli, ["index", str(tmp_path / "docs.jsonl"), "-o", str(tmp_path / "built"), "--kind",
                                "seismic", "--disk-blocks", "--max-record-ratio", str(ratio * 1.01)])
    assert built.exit_code == 0, built.output
    assert "disk_blocks: block records of" in built.output and f"{ratio:,.1f}x the forward index" in built.output


# --- memory="disk" for SINDI: each kept term's lists and the candidates' rows read per query --------

SINDI_DISK_CASES = {
    "default": {},
    "small windows": {"window_size": 64},
    "float32 values and forward, odd windows": {"window_size": 33, "value_dtype": "float32",
                                                "forward_dtype": "float32"},
    "one-row windows, nothing pruned": {"window_size": 1, "doc_prune_ratio": 0.0},
}


def sindi_disk_index(docs, root, name, **params):
    path = root / name
    if not path.exists():
        sparseir.build_index(docs, kind="sindi", **params).save(path)
    return path


def assert_same_results(got, want):
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def one_by_one(index, queries, **options):
    """Single queries, each on the serial path, stacked as a batch's results."""
    return [np.concatenate(part) for part in zip(*(index.search(queries[q:q + 1], **options)
                                                   for q in range(len(queries))))]


@pytest.mark.parametrize("case", SINDI_DISK_CASES)
def test_sindi_disk_mode_returns_what_the_index_in_memory_returns(tmp_path, case):
    """Batches and single queries, few candidates to every document, k beyond the collection, with filters."""
    rng = np.random.default_rng(5)
    docs, queries = random_vectors(rng, 700, 150, 14), random_vectors(rng, 30, 150, 6, prefix="q")
    queries.vocab = docs.vocab
    path = sindi_disk_index(docs, tmp_path, "index", **SINDI_DISK_CASES[case])
    in_memory, on_disk = sparseir.load_index(path, memory="all"), sparseir.load_index(path, memory="disk")
    masks = rng.random((len(queries), len(docs))) < 0.3
    for knobs in ({"n_candidate": 1}, {"n_candidate": 30, "query_prune_ratio": 0.5},
                  {"n_candidate": len(docs), "query_prune_ratio": 0.0}):
        for k in (10, 1000):
            want = in_memory.search(queries, k=k, **knobs)
            assert_same_results(on_disk.search(queries, k=k, **knobs), want)
            assert_same_results(one_by_one(on_disk, queries, k=k, **knobs), want)
        for filters in ({"filter": np.flatnonzero(masks[0])}, {"filters": list(masks)}):
            assert_same_results(on_disk.search(queries, k=10, **filters, **knobs),
                                in_memory.search(queries, k=10, **filters, **knobs))


@pytest.mark.slow
@settings(max_examples=10, deadline=None)
@given(st.data())
def test_sindi_disk_mode_equals_memory_on_random_collections(data):
    """Tied weights, empty documents and queries, every window size, binary or weighted."""
    import tempfile
    from pathlib import Path

    n_terms = data.draw(st.integers(1, 30))
    weight = st.sampled_from([0.5, 1.0, 2.0, 3.25])
    vectors = st.dictionaries(st.integers(0, n_terms - 1), weight, max_size=10)
    rows, query_rows = data.draw(st.lists(vectors, min_size=1, max_size=50)), data.draw(st.lists(vectors, min_size=1, max_size=8))
    if data.draw(st.booleans()):
        rows = [dict.fromkeys(row, 1.0) for row in rows]
    vocab = sparseir.Vocabulary([f"t{i}" for i in range(n_terms)])
    docs = sparseir.SparseVectors.from_dicts([dict(sorted(row.items())) for row in rows], vocab=vocab)
    queries = sparseir.SparseVectors.from_dicts([dict(sorted(row.items())) for row in query_rows], vocab=vocab)
    params = {"window_size": data.draw(st.integers(1, 60)), "value_dtype": data.draw(st.sampled_from(["uint8", "float32"])),
              "doc_prune_ratio": data.draw(st.sampled_from([0.0, 0.3]))}
    knobs = {"n_candidate": data.draw(st.integers(1, 60)), "query_prune_ratio": data.draw(st.sampled_from([0.0, 0.4]))}
    k = data.draw(st.integers(1, 12))
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "index"
        sparseir.build_index(docs, kind="sindi", **params).save(path)
        want = sparseir.load_index(path, memory="all").search(queries, k=k, **knobs)
        on_disk = sparseir.load_index(path, memory="disk")
        assert_same_results(on_disk.search(queries, k=k, **knobs), want)
        assert_same_results(one_by_one(on_disk, queries, k=k, **knobs), want)


@pytest.mark.parametrize("read_postings", [1, 40, 200, 5_000])
def test_sindi_disk_mode_reads_runs_of_windows_or_groups_of_terms_and_returns_the_same(tmp_path, monkeypatch,
                                                                                      read_postings):
    """Buffers smaller than one window's kept lists (read a group of terms at a time), about one
    window's (runs of one window), or many windows' (long runs): the results never change."""
    from sparseir.query import sindi as sindi_query

    rng = np.random.default_rng(8)
    docs, queries = random_vectors(rng, 700, 40, 20), random_vectors(rng, 25, 40, 12, prefix="q")
    queries.vocab = docs.vocab
    path = sindi_disk_index(docs, tmp_path, "dense", window_size=32)
    want = {n: sparseir.load_index(path, memory="all").search(queries, k=10, n_candidate=n, query_prune_ratio=0.1)
            for n in (5, 700)}
    monkeypatch.setattr(sindi_query, "READ_POSTINGS", read_postings)
    on_disk = sparseir.load_index(path, memory="disk")
    for n, results in want.items():
        assert_same_results(on_disk.search(queries, k=10, n_candidate=n, query_prune_ratio=0.1), results)
        assert_same_results(one_by_one(on_disk, queries, k=10, n_candidate=n, query_prune_ratio=0.1), results)


def test_sindi_disk_mode_leaves_readahead_on_the_lists_it_reads_in_runs(tmp_path):
    """Lists are read a term's run of windows at a time, front to back: their files keep the
    kernel's readahead; the forward index's rows are read at random and advised so."""
    from sparseir.layout.sindi import DISK_MODE

    docs = random_vectors(np.random.default_rng(10), 300, 50, 8)
    index = sparseir.load_index(sindi_disk_index(docs, tmp_path, "index", window_size=16), memory="disk")
    advised = {name: array.random for name, array in index.arrays.disk.items()}
    assert set(DISK_MODE.runs) == {"posting_docs", "posting_values"}
    assert advised == {name: name not in DISK_MODE.runs for name in DISK_MODE.reads}


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="reads /proc/self/io")
def test_sindi_disk_mode_reads_a_terms_lists_of_many_windows_at_once(tmp_path):
    """A query's kept terms are read once each (two files), not once per window: far fewer
    read calls than the index has windows."""
    rng = np.random.default_rng(9)
    docs, queries = random_vectors(rng, 2_000, 60, 10), random_vectors(rng, 1, 60, 5, prefix="q")
    queries.vocab = docs.vocab
    path = sindi_disk_index(docs, tmp_path, "many windows", window_size=8)
    on_disk = sparseir.load_index(path, memory="disk")
    knobs = {"k": 5, "n_candidate": 5, "query_prune_ratio": 0.0}
    on_disk.search(queries, **knobs)  # compiled, buffers made

    def read_calls():
        lines = dict(line.split(": ") for line in open("/proc/self/io").read().splitlines())
        return int(lines["syscr"])

    before = read_calls()
    _, rows = on_disk.search(queries, **knobs)
    calls = read_calls() - before
    n_windows = -(-len(docs) // 8)
    assert (rows >= 0).sum() == 5
    # Two per kept term and two per candidate row, where one read per (window, term) would take thousands.
    assert calls <= 2 * len(queries.terms) + 2 * 5 + 4 < n_windows, calls


def test_sindi_disk_mode_on_binary_vectors_over_a_wide_vocabulary(tmp_path):
    """No stored values or weights, and forward-index gaps, read from their files."""
    docs = binary_over_a_wide_vocabulary()
    path = sindi_disk_index(docs, tmp_path, "binary", window_size=50)
    queries = docs[:20]
    for knobs in ({"n_candidate": 10}, {"n_candidate": 400, "query_prune_ratio": 0.0}):
        want = sparseir.load_index(path, memory="all").search(queries, k=10, **knobs)
        on_disk = sparseir.load_index(path, memory="disk")
        assert_same_results(on_disk.search(queries, k=10, **knobs), want)
        assert_same_results(one_by_one(on_disk, queries, k=10, **knobs), want)


def mapped_resident_bytes(paths) -> int:
    """Resident bytes of this process's mappings of `paths` (/proc/self/smaps)."""
    wanted = {str(path.resolve()) for path in paths}
    resident, current = 0, None
    for line in open("/proc/self/smaps").read().splitlines():
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            current = fields[5] if len(fields) >= 6 else None
        elif fields and fields[0] == "Rss:" and current in wanted:
            resident += int(fields[1]) * 1024
    return resident


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="reads /proc/self/smaps")
def test_sindi_disk_mode_keeps_no_copy_of_the_postings_or_forward_index(tmp_path):
    """Only directories in RAM; the bulk's files are open for pread, and their mappings, which
    other modes read through, are never touched: no page of them is resident after searching."""
    from sparseir.layout.sindi import DISK_READS, ON_DISK

    docs = random_vectors(np.random.default_rng(6), 2000, 300, 30)
    path = sindi_disk_index(docs, tmp_path, "index", window_size=256)
    index = sparseir.load_index(path, memory="disk")
    assert sorted(index.arrays.disk) == sorted(DISK_READS)
    for name, array in index.arrays.items():
        assert isinstance(array, np.memmap) == (name in {*ON_DISK, *DISK_READS}), name
    bulk = [path / f"{name}.npy" for name in DISK_READS]
    index.search(docs[:50], k=10)
    index.search(docs[:1], k=10)
    assert mapped_resident_bytes(bulk) == 0
    summaries = sparseir.load_index(path, memory="summaries")
    summaries.search(docs[:50], k=10)
    assert mapped_resident_bytes(bulk) > 0  # the measure sees pages read through a mapping


@pytest.mark.parametrize("name", ["posting_docs", "doc_terms"])
def test_sindi_disk_mode_refuses_a_file_changed_under_it(tmp_path, name):
    docs = random_vectors(np.random.default_rng(9), 300, 100, 10)
    path = sindi_disk_index(docs, tmp_path, "index", window_size=64)
    index = sparseir.load_index(path, memory="disk")
    with open(path / f"{name}.npy", "r+b") as f:
        f.truncate(200)
    for queries in (docs[:5], docs[:1]):
        with pytest.raises(OSError, match="could not be read") as raised:
            index.search(queries, k=10)
        assert raised.value.filename.endswith(f"{name}.npy")


