"""A damaged index is an error, never a crash or a silent wrong answer.

Each case damages a copy of an index built here, then opens and searches it through the API
and, where the damage used to crash the process, through ``sparseir search`` in a
subprocess (a crash shows there as a negative return code: SIGSEGV, SIGABRT).
"Rehashed" damage also rewrites the file's sha256 in the manifest, as a buggy writer
would: then the structural checks, not the checksum, must refuse it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sparseir
from sparseir.errors import IndexFormatError
from sparseir.index import INDEX_CHECKS
from sparseir.kinds import get_kind
from sparseir.layout.checks import array_names
from sparseir.layout.seismic import record_layout
from sparseir.storage import sha256_file

from conftest import random_vectors

REPO = Path(__file__).resolve().parents[1]
BUILDS = {
    "exact": {},
    "saat": {},
    "blockmax": {"block_size": 8},
    "sindi": {"window_size": 128},
    "seismic": {"disk_blocks": True, "n_knn": 3},
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(root with one index per kind, the documents, a queries file)."""
    rng = np.random.default_rng(21)
    docs = random_vectors(rng, 300, 80, 10)
    root = tmp_path_factory.mktemp("damaged")
    for kind, params in BUILDS.items():
        sparseir.build_index(docs, kind=kind, **params).save(root / kind)
    sparseir.write_vectors(docs[:8], root / "queries.jsonl")
    return root, docs


@pytest.fixture
def copy_of(built, tmp_path):
    root, _ = built

    def copy(kind: str) -> Path:
        shutil.copytree(root / kind, tmp_path / kind)
        return tmp_path / kind
    return copy


def rewrite(index: Path, name: str, change, rehash: bool = False) -> None:
    """Apply change(array) in place to an array file (same dtype and shape, so same size);
    rehash: record the new sha256 in the manifest too."""
    file = index / f"{name}.npy"
    array = np.load(file)
    change(array)
    np.save(file, array)
    if rehash:
        manifest = json.loads((index / "manifest.json").read_text())
        manifest["arrays"][name]["sha256"] = sha256_file(file)
        (index / "manifest.json").write_text(json.dumps(manifest))


def flip_last_byte(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[-1] ^= 0x01
    file.write_bytes(bytes(data))


def edit_manifest(index: Path, change) -> None:
    manifest = json.loads((index / "manifest.json").read_text())
    change(manifest)
    (index / "manifest.json").write_text(json.dumps(manifest))


def cli_search(index: Path, queries: Path, run: Path, *options: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "sparseir", "search", str(index), str(queries), "-o", str(run),
                           *options], capture_output=True, text=True, env=env, timeout=600)


def assert_refused(result: subprocess.CompletedProcess, run: Path, *words: str) -> None:
    """Exit 1 with one error line, the last (progress lines may come before it), naming `words`;
    no traceback, no run file."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr and [line for line in lines if line.startswith("Error")] == lines[-1:], \
        result.stderr
    for word in words:
        assert word in lines[-1], lines[-1]
    assert not run.exists()


# --- the tester's cases, through the command line ---------------------------------------------

@pytest.mark.parametrize("kind", ["sindi", "seismic"])
@pytest.mark.parametrize("rehash", [False, True])
def test_corrupt_doc_offsets_is_refused_not_a_crash(built, copy_of, tmp_path, kind, rehash):
    root, _ = built
    index = copy_of(kind)

    def corrupt(offsets):
        offsets[len(offsets) // 2] = np.iinfo(offsets.dtype).max
    rewrite(index, "doc_offsets", corrupt, rehash)
    run = tmp_path / "run.tsv"
    why = "not monotone at entry" if rehash else "checksum mismatch"
    assert_refused(cli_search(index, root / "queries.jsonl", run), run, "doc_offsets.npy", why)
    with pytest.raises(IndexFormatError, match=f"doc_offsets.npy: {why}"):
        sparseir.load_index(index)


@pytest.mark.parametrize("rehash", [False, True])
def test_corrupt_largest_reads_is_refused_not_heap_corruption(built, copy_of, tmp_path, rehash):
    root, _ = built
    index = copy_of("seismic")

    def corrupt(largest):
        largest[:] = 1  # buffers too small for the reads
    rewrite(index, "largest_reads", corrupt, rehash)
    run = tmp_path / "run.tsv"
    why = "the offsets of lists and records give" if rehash else "checksum mismatch"
    assert_refused(cli_search(index, root / "queries.jsonl", run, "--memory", "disk"), run, "largest_reads.npy",
                   why)
    with pytest.raises(IndexFormatError, match="largest_reads.npy"):
        sparseir.load_index(index, memory="disk")


@pytest.mark.parametrize("rehash", [False, True])
def test_scaled_block_record_offsets_are_refused_naming_the_file(built, copy_of, tmp_path, rehash):
    root, _ = built
    index = copy_of("seismic")

    def corrupt(offsets):
        offsets *= 10
    rewrite(index, "block_record_offsets", corrupt, rehash)
    run = tmp_path / "run.tsv"
    why = "expected" if rehash else "checksum mismatch"
    assert_refused(cli_search(index, root / "queries.jsonl", run, "--memory", "disk"), run,
                   "block_record_offsets.npy", why)
    with pytest.raises(IndexFormatError, match=r"block_record_offsets.npy: (ends at \d+, expected \d+ "
                                               r"\(len\(block_records\)\)|checksum mismatch)"):
        sparseir.load_index(index, memory="disk")


def lengthen_first_list(offsets):
    """Offsets still monotone from 0 to the same end, whose first non-empty item now spans a
    quarter of them."""
    offsets[1:len(offsets) // 4] = 0


@pytest.mark.parametrize("name, why", [("posting_offsets", "a list holds more postings than its window has rows"),
                                       ("doc_offsets", "a document holds more entries than the vocabulary has terms")])
@pytest.mark.parametrize("rehash", [False, True])
def test_sindi_lengths_beyond_the_read_buffers_are_refused_at_open(built, copy_of, tmp_path, name, why, rehash):
    """memory="disk" sizes its buffers by the window and the vocabulary: offsets that call for more
    are refused at every open, before any read."""
    root, _ = built
    index = copy_of("sindi")
    rewrite(index, name, lengthen_first_list, rehash)
    run = tmp_path / "run.tsv"
    why = why if rehash else "checksum mismatch"
    assert_refused(cli_search(index, root / "queries.jsonl", run, "--memory", "disk"), run, f"{name}.npy", why)
    for memory in ("mapped", "disk"):
        with pytest.raises(IndexFormatError, match=f"{name}.npy: (entry \\d+: )?{why}"):
            sparseir.load_index(index, memory=memory)


def test_flipped_byte_in_doc_ids_is_refused_not_other_ids(built, copy_of, tmp_path):
    root, _ = built
    index = copy_of("exact")
    flip_last_byte(index / "doc_ids.npy")
    run = tmp_path / "run.tsv"
    assert_refused(cli_search(index, root / "queries.jsonl", run), run, "doc_ids.npy", "checksum mismatch")


@pytest.mark.parametrize("field", ["n_docs", "n_terms"])
def test_edited_counts_in_the_manifest_are_refused(built, copy_of, tmp_path, field):
    root, _ = built
    index = copy_of("sindi")
    edit_manifest(index, lambda manifest: manifest["info"].update({field: manifest["info"][field] + 1}))
    run = tmp_path / "run.tsv"
    assert_refused(cli_search(index, root / "queries.jsonl", run), run, "manifest.json", f"info.{field}")


def test_a_block_record_damaged_after_the_checks_fails_the_search_naming_its_file(built, copy_of, tmp_path):
    """Records are bulk, not hashed at open: the reader checks each one before reading inside it."""
    root, docs = built
    index = copy_of("seismic")
    block_offsets = np.load(index / "block_offsets.npy")
    record_offsets = np.load(index / "block_record_offsets.npy")
    records = np.load(index / "block_records.npy")
    for block in range(len(block_offsets) - 1):
        m = block_offsets[block + 1] - block_offsets[block]
        offsets_at = record_offsets[block] + record_layout(m, 0, 1, 1)[0]
        records[offsets_at + 4:offsets_at + 8] = 0xFF  # entry offset 1: far past the record
    np.save(index / "block_records.npy", records)
    with pytest.raises(IndexFormatError, match="block_records.npy: holds a record that does not fit"):
        sparseir.load_index(index, memory="disk").search(docs[:5], k=10)
    run = tmp_path / "run.tsv"
    assert_refused(cli_search(index, root / "queries.jsonl", run, "--memory", "disk"), run, "block_records.npy",
                   "damaged index")
    assert sparseir.load_index(index).search(docs[:5], k=10)[1].min() >= 0  # other modes never read records


@pytest.mark.parametrize("kind, name", [("seismic", "block_records.npy"), ("sindi", "posting_values.npy")])
def test_a_file_read_from_disk_truncated_after_loading_names_the_file(built, copy_of, kind, name):
    _, docs = built
    index = copy_of(kind)
    loaded = sparseir.load_index(index, memory="disk")
    with open(index / name, "r+b") as f:
        f.truncate(200)
    with pytest.raises(OSError, match="could not be read") as raised:
        loaded.search(docs[:5], k=10)
    assert raised.value.filename.endswith(name)


# --- no small file changes results silently ------------------------------------------------

def small_files(kind: str) -> list[str]:
    """Every array file of `kind` outside its bulk, and the vocabulary."""
    layout = get_kind(kind).layout
    bulk = {*layout.ON_DISK, *getattr(layout, "DISK_READS", ()), *getattr(layout, "DISK_ONLY", ())}
    return [f"{name}.npy" for name in array_names((*INDEX_CHECKS, *layout.CHECKS)) if name not in bulk] + ["vocab.txt"]


@pytest.mark.parametrize("kind, file", [(kind, file) for kind in BUILDS for file in small_files(kind)])
def test_a_flipped_byte_in_any_small_file_is_refused(copy_of, kind, file):
    index = copy_of(kind)
    if not (index / file).exists():
        pytest.skip(f"this {kind} build stores no {file}")
    flip_last_byte(index / file)
    with pytest.raises(IndexFormatError, match=f"{file}: checksum mismatch"):
        sparseir.load_index(index)


@pytest.mark.parametrize("kind, param, value", [("blockmax", "block_size", 16), ("sindi", "window_size", 64),
                                                ("saat", "bits", 6), ("seismic", "n_knn", 5),
                                                ("seismic", "disk_blocks", False)])
def test_build_parameters_edited_in_the_manifest_are_refused(copy_of, kind, param, value):
    index = copy_of(kind)
    edit_manifest(index, lambda manifest: manifest["build_params"].update({param: value}))
    with pytest.raises(IndexFormatError, match=f"{param}") as raised:
        sparseir.load_index(index)
    assert "damaged index" in str(raised.value) and "\n" not in str(raised.value)


def test_a_malformed_manifest_is_refused_in_one_line(copy_of):
    index = copy_of("exact")
    edit_manifest(index, lambda manifest: manifest["arrays"]["term_offsets"].pop("file"))
    with pytest.raises(IndexFormatError, match="malformed manifest"):
        sparseir.load_index(index)
    index = copy_of("sindi")
    edit_manifest(index, lambda manifest: manifest["arrays"].pop("posting_offsets"))
    with pytest.raises(IndexFormatError, match="lists no posting_offsets array"):
        sparseir.load_index(index)


def test_an_index_without_document_frequencies_still_opens(built, copy_of):
    """Older builds stored no doc_frequency: optional, as before."""
    _, docs = built
    index = copy_of("exact")
    edit_manifest(index, lambda manifest: manifest["arrays"].pop("doc_frequency"))
    (index / "doc_frequency.npy").unlink()
    assert sparseir.load_index(index).search(docs[:3], k=5)[1].min() >= 0


def test_a_flipped_row_map_of_a_sharded_index_is_refused(tmp_path):
    from sparseir.sharded import build_sharded

    docs = random_vectors(np.random.default_rng(3), 200, 60, 8)
    build_sharded(docs, tmp_path / "sharded", shards=2, kind="exact", partition="hash")
    row_maps = sorted((tmp_path / "sharded").glob("**/*rows*.npy"))
    assert row_maps, sorted(p.name for p in (tmp_path / "sharded").iterdir())
    flip_last_byte(row_maps[0])
    with pytest.raises(IndexFormatError, match="checksum mismatch"):
        sparseir.load_index(tmp_path / "sharded")


# --- every array declared, so that a new one cannot go unchecked ---------------------------------

@pytest.mark.parametrize("kind", BUILDS)
def test_every_array_of_every_kind_is_declared(built, kind):
    root, _ = built
    manifest = json.loads((root / kind / "manifest.json").read_text())
    declared = set(array_names((*INDEX_CHECKS, *get_kind(kind).layout.CHECKS)))
    assert set(manifest["arrays"]) <= declared, set(manifest["arrays"]) - declared


# --- damaged bulk, which no open reads: results stay within the collection --------------------------

BULK_DAMAGE = {
    "exact posting_docs": ("exact", "posting_docs", lambda a: a.__setitem__(slice(None, None, 3), -7), "mapped"),
    "saat posting_docs": ("saat", "posting_docs", lambda a: a.__setitem__(slice(None, None, 3), 10 ** 9), "all"),
    "blockmax entry_blocks": ("blockmax", "entry_blocks", lambda a: a.__setitem__(slice(None, None, 2), 10 ** 6),
                              "mapped"),
    "blockmax entry_masks": ("blockmax", "entry_masks", lambda a: a.__setitem__(slice(None), 0xFF), "all"),
    "blockmax entry_postings": ("blockmax", "entry_postings",
                                lambda a: a.__setitem__(slice(0, -1, 2), 2 ** 31), "mapped"),
    "sindi posting_docs": ("sindi", "posting_docs", lambda a: a.__setitem__(slice(None), 65535), "summaries"),
    "sindi doc_terms": ("sindi", "doc_terms", lambda a: a.__setitem__(slice(None), 65535), "mapped"),
    "sindi posting_docs, from disk": ("sindi", "posting_docs", lambda a: a.__setitem__(slice(None), 65535), "disk"),
    "sindi posting_values, from disk": ("sindi", "posting_values", lambda a: a.__setitem__(slice(None), 255),
                                        "disk"),
    "sindi doc_terms, from disk": ("sindi", "doc_terms", lambda a: a.__setitem__(slice(None, None, 2), 65535),
                                   "disk"),
    "seismic block_docs": ("seismic", "block_docs", lambda a: a.__setitem__(slice(None, None, 2), -2 ** 31),
                           "mapped"),
    "seismic knn": ("seismic", "knn", lambda a: a.__setitem__(slice(None), 10 ** 8), "all"),
    "seismic single_terms": ("seismic", "single_terms", lambda a: a.__setitem__(slice(None), 65535), "all"),
    "seismic term_entries": ("seismic", "term_entries", lambda a: a.__setitem__(slice(None), 250), "mapped"),
    "seismic entry_block_bits": ("seismic", "entry_block_bits", lambda a: a.__setitem__(slice(None), 0xFFFFFFFF),
                                 "disk"),
}


@pytest.mark.parametrize("case", BULK_DAMAGE)
def test_damaged_bulk_keeps_results_within_the_collection(built, copy_of, case):
    _, docs = built
    kind, name, change, memory = BULK_DAMAGE[case]
    index = copy_of(kind)
    # Arrays outside the bulk are hashed at open while small, as here: rehashed, they stand for
    # those of an index large enough that only their lengths are checked.
    hashed = f"{name}.npy" in small_files(kind)
    rewrite(index, name, change, rehash=hashed)
    knobs = {"n_knn": 3} if kind == "seismic" else {}
    loaded = sparseir.load_index(index, memory=memory)
    for queries in (docs[:20], docs[:1]):  # in parallel and serially
        scores, rows = loaded.search(queries, k=20, **knobs)
        assert ((rows >= -1) & (rows < len(docs))).all()
        assert not np.isnan(scores).any() and (np.isfinite(scores) | (rows == -1)).all()
    if not hashed:
        with pytest.raises(IndexFormatError, match=f"{name}.npy: checksum mismatch"):
            sparseir.load_index(index, verify=True)
