"""Index directories: round trip, mmap, and refusal of anything damaged or foreign."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import sparseir
from sparseir.storage import FORMAT_VERSION
from conftest import random_vectors


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(11)
    docs = random_vectors(rng, 200, 40, 6)
    queries = random_vectors(rng, 20, 40, 3, prefix="q")
    index = sparseir.build_index(docs)
    index.save(tmp_path / "index")
    return tmp_path / "index", index, queries


def test_save_load_gives_identical_results(saved):
    path, index, queries = saved
    loaded = sparseir.load_index(path, verify=True)
    assert loaded.kind == "exact" and loaded.n_docs == index.n_docs and loaded.vocab == index.vocab
    assert isinstance(loaded.arrays["posting_docs"], np.memmap)
    np.testing.assert_array_equal(loaded.doc_ids, index.doc_ids)
    for a, b in zip(loaded.search(queries, k=10), index.search(queries, k=10)):
        np.testing.assert_array_equal(a, b)


def test_existing_index_is_kept_unless_overwrite(saved):
    path, index, _ = saved
    with pytest.raises(sparseir.InputError, match="already exists"):
        index.save(path)
    index.save(path, overwrite=True)
    sparseir.load_index(path, verify=True)
    assert [p.name for p in path.parent.iterdir()] == ["index"]  # no temp or old directory left


def test_next_save_removes_only_temporaries_of_dead_writers(saved):
    path, index, _ = saved
    finished = subprocess.Popen([sys.executable, "-c", ""])
    finished.wait()
    dead, running = finished.pid, os.getpid()
    stale = [path.parent / f".index.{dead}.abcd_123.tmp", path.parent / f".index.{dead}.efgh_456.old"]
    kept = [path.parent / f".index.{running}.abcd_123.tmp",  # a writer still at work
            path.parent / f".index.1.{dead}.abcd_123.tmp",  # the temporary of another output, index.1
            path.parent / f".index.{dead}.notes"]  # not a name sparseir gives
    for leftover in stale + kept:
        leftover.mkdir()
    (stale[0] / "manifest.json").write_text("{}")
    stale.append(path.parent / f".index.{dead}.ijkl_789.tmp")  # a killed atomic_file's
    stale[-1].write_text("partial")
    index.save(path, overwrite=True)
    assert [leftover for leftover in stale if leftover.exists()] == []
    assert all(leftover.exists() for leftover in kept)


def test_not_an_index(tmp_path):
    with pytest.raises(sparseir.IndexFormatError, match="not a sparseir index"):
        sparseir.load_index(tmp_path)
    with pytest.raises(sparseir.IndexFormatError, match="not a directory"):
        sparseir.load_index(tmp_path / "missing")


def test_newer_format_version_is_refused(saved):
    path, _, _ = saved
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(sparseir.IndexFormatError, match="newer than this sparseir reads"):
        sparseir.load_index(path)


@pytest.mark.parametrize("layout", [None, 0, 2])
def test_other_array_layout_is_refused(saved, layout):
    path, _, _ = saved
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["layout_version"] == 1
    if layout is None:
        del manifest["layout_version"]  # written before layouts were versioned: read as layout 1
    else:
        manifest["layout_version"] = layout
    (path / "manifest.json").write_text(json.dumps(manifest))
    if layout is None:
        sparseir.load_index(path)
        return
    with pytest.raises(sparseir.IndexFormatError, match=f"array layout {layout}.*rebuild the index"):
        sparseir.load_index(path)


def test_missing_truncated_and_corrupted_arrays_are_refused(saved):
    path, _, _ = saved
    target = path / "posting_weights.npy"
    data = target.read_bytes()
    target.write_bytes(data[:-4])
    with pytest.raises(sparseir.IndexFormatError, match="truncated"):
        sparseir.load_index(path)
    flipped = bytearray(data)
    flipped[-1] ^= 0x01
    target.write_bytes(bytes(flipped))
    sparseir.load_index(path)  # same size: the fast check cannot see it ...
    with pytest.raises(sparseir.IndexFormatError, match="checksum mismatch"):
        sparseir.load_index(path, verify=True)  # ... the full one does
    target.unlink()
    with pytest.raises(sparseir.IndexFormatError, match="missing"):
        sparseir.load_index(path)
