"""Out-of-core builds (``sparseir.workspace``): under a tiny memory budget, so that every
phase runs in many chunks, every kind writes exactly the arrays of the in-memory build,
from every input format; the pieces (radix selection, chunking, spooling) are checked
against plain numpy."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import random_vectors, shared_vectors
from hypothesis import given, settings
from hypothesis import strategies as st

import sparseir
from sparseir import KINDS, ParameterError, SparseVectors
from sparseir.cli import cli
from sparseir.indexer.seismic import kth_smallest
from sparseir.workspace import PAGE, Workspace, parse_bytes

TINY = "8K"  # a couple of pages: every phase runs in many chunks


def assert_same_index(expected, actual):
    assert sorted(expected.arrays) == sorted(actual.arrays)
    for name, array in expected.arrays.items():
        other = actual.arrays[name]
        assert array.dtype == other.dtype and np.array_equal(array, other), name
    assert np.array_equal(expected.doc_ids, actual.doc_ids) and expected.vocab == actual.vocab
    assert expected.build_params == actual.build_params


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    docs = random_vectors(np.random.default_rng(11), 600, 400, 25)
    folder = tmp_path_factory.mktemp("collection")
    sparseir.write_vectors(docs, folder / "docs.jsonl.gz")
    sparseir.write_vectors(docs, folder / "docs.parquet")
    (folder / "parts").mkdir()
    for part, lo in enumerate(range(0, len(docs), 250)):
        sparseir.write_vectors(docs[lo:lo + 250], folder / "parts" / f"part-{part:05d}.parquet")
    return docs, folder


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("source", ["docs.jsonl.gz", "docs.parquet", "parts"])
def test_every_kind_out_of_core_equals_in_memory(collection, tmp_path, kind, source):
    docs, folder = collection
    # Pruning that bites (seismic), and the options that take other paths through the builders.
    params = {"seismic": {"n_postings": 20}, "blockmax": {"reorder": "none"}}.get(kind, {})
    expected = sparseir.build_index(sparseir.read_vectors(folder / source), kind=kind, **params)
    actual = sparseir.build_index_from(folder / source, tmp_path / "index", kind=kind, memory_budget=TINY, **params)
    assert_same_index(expected, actual)
    assert os.listdir(tmp_path) == ["index"]  # the scratch directory is gone


@pytest.mark.parametrize("params", [{"clustering": "fixed"}, {"forward_dtype": "float32", "summary_energy": 1.0},
                                    {"n_postings": 3, "max_fraction": 1.0},
                                    {"disk_blocks": True, "max_record_ratio": math.inf}])
def test_seismic_options_out_of_core(collection, tmp_path, params):
    docs, folder = collection
    expected = sparseir.build_index(docs, kind="seismic", **params)
    actual = sparseir.build_index_from(folder / "docs.parquet", tmp_path / "index", kind="seismic",
                                       memory_budget=TINY, **params)
    assert_same_index(expected, actual)


@pytest.mark.slow
def test_binary_and_wide_vocabulary_out_of_core(tmp_path):
    """Binary vectors over more than 65,536 dimensions: no stored weights, forward-index gaps."""
    rng = np.random.default_rng(3)
    rows = [dict.fromkeys(np.sort(rng.choice(120_000, 30, replace=False)).tolist(), 1.0) for _ in range(300)]
    path = tmp_path / "binary.jsonl"
    sparseir.write_vectors(SparseVectors.from_dicts(rows, vocab=sparseir.Vocabulary(
        [str(i) for i in range(120_000)], open=True)), path)
    for kind, params in (("seismic", {"disk_blocks": True, "max_record_ratio": math.inf}), ("sindi", {}), ("exact", {})):
        expected = sparseir.build_index(sparseir.read_vectors(path), kind=kind, **params)
        actual = sparseir.build_index_from(path, tmp_path / kind, kind=kind, memory_budget=TINY, **params)
        assert_same_index(expected, actual)


def test_foreign_parquet_ids_out_of_core(tmp_path):
    """Parquet from elsewhere: int64 term ids and no vocabulary, renumbered after the spool."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(4)
    terms = [np.sort(rng.choice(200_000, 12, replace=False)).astype(np.int64) for _ in range(200)]
    weights = [rng.random(12).astype(np.float32) + 0.01 for _ in range(200)]
    path = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(200)], "terms": terms, "weights": weights}), path,
                   row_group_size=30)
    expected = sparseir.build_index(sparseir.read_vectors(path), kind="seismic", n_postings=5)
    actual = sparseir.build_index_from(path, tmp_path / "index", kind="seismic", memory_budget=TINY, n_postings=5)
    assert_same_index(expected, actual)


def test_spooled_jsonl_switches_to_an_open_vocabulary(tmp_path):
    """vocab=auto: BERT terms first, then a word BERT lacks; the spooled rows are renumbered in place."""
    path = tmp_path / "words.jsonl"
    path.write_text('{"id": "a", "vector": {"cat": 1.5, "dog": 0.5}}\n'
                    '{"id": "b", "vector": {"zzqx-not-bert": 2.0, "cat": 1.0}}\n', encoding="utf-8")
    expected = sparseir.read_vectors(path)
    with Workspace(tmp_path / "scratch", TINY) as workspace:
        (tmp_path / "scratch").mkdir()
        spooled = sparseir.read_vectors(path, workspace=workspace)
        assert spooled.equals(expected) and spooled.vocab.open
    index = sparseir.build_index_from(path, tmp_path / "index", kind="exact", memory_budget=TINY)
    assert_same_index(sparseir.build_index(expected, kind="exact"), index)


@pytest.mark.slow
def test_shared_collection_out_of_core(tmp_path):
    path = shared_vectors("cisi") / "collection.jsonl.gz"
    docs = sparseir.read_vectors(path)
    for kind in ("seismic", "blockmax"):
        assert_same_index(sparseir.build_index(docs, kind=kind),
                          sparseir.build_index_from(path, tmp_path / kind, kind=kind, memory_budget="64K"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, -0.0, 1e-30, 0.25, 0.5, 0.5000001, 1.0, 3.0, 1e30]) |
                st.floats(0, 100, width=32), min_size=1, max_size=200), st.data())
def test_radix_selection_equals_partition(weights, data):
    weights = np.array(weights, dtype=np.float32)
    rank = data.draw(st.integers(0, len(weights) - 1))
    docs = SparseVectors(np.array([0, len(weights)]), np.zeros(len(weights), np.int32), weights, validate=False)
    chunked = Workspace("unused", PAGE)  # out of core: one row's chunk at a time
    for workspace in (Workspace(), chunked):
        assert kth_smallest(docs, rank, workspace) == np.partition(weights, rank)[rank]


@given(st.lists(st.integers(0, 50), max_size=60), st.integers(1, 80))
def test_ranges_cover_everything_within_the_budget(costs, budget):
    workspace = Workspace("unused", PAGE)
    workspace.budget = budget  # below a page, only for this check of the arithmetic
    runs = list(workspace.ranges(np.array(costs, dtype=np.int64), "test"))
    assert [lo for lo, _ in runs] == [0, *(hi for _, hi in runs[:-1])][:len(runs)]
    assert (runs[-1][1] if runs else 0) == len(costs)
    for lo, hi in runs:
        assert hi > lo and (hi - lo == 1 or sum(costs[lo:hi]) <= budget)


def test_in_memory_workspace_runs_one_chunk():
    assert list(Workspace().ranges(np.ones(10, dtype=np.int64), "test")) == [(0, 10)]


@pytest.mark.parametrize("text, expected", [("2G", 2 << 30), ("512M", 512 << 20), ("1.5g", 3 << 29), ("64KiB", 65536),
                                            (8192, 8192), ("8192", 8192)])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["lots", "1X", "", "100", -5, "0.5K"])
def test_bad_budget_names_itself(text):
    with pytest.raises(ParameterError, match="memory budget"):
        parse_bytes(text)


@pytest.mark.parametrize("args, message", [(["--memory-budget", "lots"], "memory budget"),
                                           (["--memory-budget", "1G", "--shards", "2"], "--memory-budget")])
def test_cli_bad_out_of_core_options(collection, tmp_path, args, message):
    _, folder = collection
    result = subprocess.run([sys.executable, "-m", "sparseir", "index", str(folder / "docs.parquet"), "-o",
                             str(tmp_path / "index"), *args], capture_output=True, text=True)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "index").exists()
    assert os.listdir(tmp_path) == []  # no scratch directory left behind either


# --- SINDI: the windowed lists, streamed -------------------------------------------------------

def assert_same_files(expected_dir, actual_dir):
    """Every array file and the vocabulary byte for byte (the manifests differ in build time only)."""
    names = sorted(path.name for path in expected_dir.iterdir() if path.name != "manifest.json")
    assert names == sorted(path.name for path in actual_dir.iterdir() if path.name != "manifest.json")
    for name in names:
        assert (expected_dir / name).read_bytes() == (actual_dir / name).read_bytes(), name


@st.composite
def sindi_cases(draw):
    """A small collection with tied weights and empty rows, and SINDI build parameters."""
    n_terms = draw(st.integers(1, 40))
    weight = st.sampled_from([0.5, 1.0, 2.0, 3.25]) | st.floats(0.125, 50.0, width=32)
    rows = draw(st.lists(st.dictionaries(st.integers(0, n_terms - 1), weight, max_size=12), min_size=1, max_size=60))
    binary = draw(st.booleans())
    if binary:
        rows = [dict.fromkeys(row, 1.0) for row in rows]
    params = {"window_size": draw(st.integers(1, 70)),
              "doc_prune_ratio": draw(st.sampled_from([0.0, 0.25, 0.6, 0.95])),
              "value_dtype": draw(st.sampled_from(["uint8", "float32"])),
              "forward_dtype": draw(st.sampled_from(["float16", "float32"]))}
    vocab = sparseir.Vocabulary([f"t{i}" for i in range(n_terms)], name="random")
    return SparseVectors.from_dicts([dict(sorted(row.items())) for row in rows], vocab=vocab), params


@settings(max_examples=25, deadline=None)
@given(sindi_cases(), st.integers(1, 300))
def test_sindi_out_of_core_equals_in_memory_file_for_file(case, budget):
    """Out of core under a budget of a few entries (below the page that a user's budget must
    reach, to cut these small collections into many chunks): windows, pruning, codes and the
    kept mask, in a mapped file, cross chunk boundaries, and the arrays come out byte for byte the same
    (the command line's files are compared below)."""
    import tempfile

    docs, params = case
    expected = sparseir.build_index(docs, kind="sindi", **params).arrays
    with tempfile.TemporaryDirectory() as scratch, Workspace(scratch, PAGE) as workspace:
        workspace.budget = budget
        actual = sparseir.build_index(docs, kind="sindi", workspace=workspace, **params).arrays
        assert sorted(expected) == sorted(actual)
        for name, array in expected.items():
            assert (array.dtype, array.shape) == (actual[name].dtype, actual[name].shape), name
            assert array.tobytes() == np.asarray(actual[name]).tobytes(), name


@pytest.mark.parametrize("kind, budget, params, phases", [
    ("seismic", "64K", {"n_postings": 20}, ("reading", "inverting", "clustering", "summaries (2 of 2)", "forward index")),
    ("sindi", "8K", {"window_size": 64}, ("reading", "pruning documents", "inverting", "forward index",
                                          "counting terms")),
])
def test_cli_out_of_core_shows_a_bar_per_phase_and_equals_in_memory(collection, tmp_path, kind, budget, params,
                                                                    phases):
    docs, folder = collection
    options = [text for name, value in params.items() for text in (f"--{name.replace('_', '-')}", str(value))]
    result = CliRunner().invoke(cli, ["index", str(folder / "docs.parquet"), "-o", str(tmp_path / "index"),
                                      "--kind", kind, "--memory-budget", budget, *options])
    assert result.exit_code == 0, result.output
    for phase in phases:
        assert f"{phase}:" in result.output, phase
    assert "ETA" in result.output
    sparseir.build_index(docs, kind=kind, **params).save(tmp_path / "expected")
    assert_same_files(tmp_path / "expected", tmp_path / "index")


PEAK_PROBE = """
import json, sys
from pathlib import Path
import sparseir
from sparseir.workspace import Workspace

def status(key):
    return next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith(key))

source, output, budget = sys.argv[1:]
first = sorted(Path(source).iterdir())[0]
sparseir.build_index_from(first, output + "-warm", kind="sindi", memory_budget=budget)  # compiles the kernels
with Workspace.beside(output, budget) as workspace:
    docs = sparseir.read_vectors(source, workspace=workspace)  # the reader's peak is its own (test_memory.py)
    workspace.release()
    Path("/proc/self/clear_refs").write_text("5")  # the peak restarts here, at the build
    before = status("VmRSS:")
    sparseir.build_index(docs, kind="sindi", workspace=workspace, doc_prune_ratio=0.5).save(output)
    print(json.dumps({"before": before, "peak": status("VmHWM:")}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="resets the peak through /proc/self/clear_refs")
def test_sindi_out_of_core_peak_is_the_index_plus_the_budget(tmp_path, monkeypatch):
    """From the spooled collection to the saved index, the build's peak resident set grows by at
    most the index's bytes, the budget and a little: the collection (twice the forward index)
    and the mask of kept entries stay out of it."""
    import sparseir.formats.parquet as parquet

    monkeypatch.setattr(parquet, "BATCH_ROWS", 8192)  # small row groups: the reader's own batches stay small
    rng = np.random.default_rng(0)
    n_parts, part_docs, per_doc = 8, 62_500, 80
    (tmp_path / "parts").mkdir()
    for part in range(n_parts):
        terms = np.cumsum(rng.integers(1, 380, (part_docs, per_doc)), axis=1) - 1  # ascending, below 30,400
        docs = SparseVectors(np.arange(part_docs + 1) * per_doc, terms.ravel(),
                             rng.gamma(1.5, 1.0, part_docs * per_doc) + 0.01,
                             ids=[f"p{part}-{i}" for i in range(part_docs)], validate=False)
        sparseir.write_vectors(docs, tmp_path / "parts" / f"part-{part:05d}.parquet")
    del docs, terms
    budget = 16 << 20
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", PEAK_PROBE, str(tmp_path / "parts"), str(tmp_path / "index"),
                             str(budget)], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": repo})
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    index_bytes = sum(path.stat().st_size for path in (tmp_path / "index").iterdir())
    slack = 64 << 20  # the interpreter's, the readers' and the allocator's own
    # A build that held the collection (8 bytes a non-zero) beside the index would not pass.
    assert n_parts * part_docs * per_doc * 8 > 2 * (budget + slack)
    assert measured["peak"] - measured["before"] <= index_bytes + budget + slack, (measured, index_bytes)
