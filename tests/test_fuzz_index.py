"""Fuzzing damaged indexes: every kind, every memory mode, random damage to the arrays that
say where things are (offsets, ids, rows, terms, blocks, records, buffer sizes).

Opening a damaged copy either refuses it with one line, or searching it stays inside the
collection: rows in [-1, n_docs), scores finite (or -inf padding). The searches run in this
process, compiled: a kernel that read or wrote outside its arrays would crash the whole run.
The damaged arrays are the ones the layouts declare (``layout.checks``); half the examples
also rewrite the damaged file's sha256 in the manifest, so that the structural checks and
the kernels' guards, not the checksum, are what stands in the way.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

import sparseir
from sparseir.errors import SparseirError
from sparseir.index import INDEX_CHECKS
from sparseir.kinds import KINDS, get_kind
from sparseir.layout.checks import Length, Param, Weights, array_names
from sparseir.layout.seismic import record_layout
from sparseir.storage import sha256_file

from conftest import random_vectors

BUILDS = {"seismic": {"disk_blocks": True, "n_knn": 3}, "sindi": {"window_size": 128}, "blockmax": {"block_size": 8}}
KNOBS = {"seismic": {"n_knn": 3}}
SCALES = (-1, 2, 10, 1000, 1 << 20)


def memory_modes(kind: str) -> tuple[str, ...]:
    return ("mapped", "all", "summaries", "disk") if "disk_blocks" in BUILDS.get(kind, {}) else \
        ("mapped", "all", "summaries")


def damageable(kind: str, manifest: dict) -> list[str]:
    """The arrays whose entries locate something, as the layout declares them (not weights or
    scales, whose damage changes scores only: verify's to find), present and numeric."""
    checks = [check for check in (*INDEX_CHECKS, *get_kind(kind).layout.CHECKS)
              if not isinstance(check, (Length, Weights, Param))]
    return [name for name in array_names(checks)
            if name in manifest["arrays"] and np.dtype(manifest["arrays"][name]["dtype"]).kind in "iub"
            and np.prod(manifest["arrays"][name]["shape"]) > 0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    rng = np.random.default_rng(17)
    docs = random_vectors(rng, 300, 80, 10)
    root = tmp_path_factory.mktemp("fuzz")
    for kind in KINDS:
        sparseir.build_index(docs, kind=kind, **BUILDS.get(kind, {})).save(root / kind)
    return root, docs[:6]


def damage(array: np.ndarray, data, positions) -> None:
    """Flip a bit of, zero or scale 1-3 of `positions` (flat indexes) of `array`, in place."""
    flat = array.reshape(-1)
    for _ in range(data.draw(st.integers(1, 3), label="damages")):
        i = int(positions[data.draw(st.integers(0, len(positions) - 1), label="entry")])
        how = data.draw(st.sampled_from(["flip", "zero", "scale", "max"]), label="how")
        if how == "flip":
            bits = flat[i:i + 1].view(np.uint8)
            bit = data.draw(st.integers(0, 8 * flat.itemsize - 1), label="bit")
            bits[bit // 8] ^= np.uint8(1 << (bit % 8))
        elif how == "zero":
            flat[i] = 0
        elif how == "scale":
            scaled = int(flat[i]) * data.draw(st.sampled_from(SCALES), label="scale")
            info = np.iinfo(flat.dtype) if flat.dtype != np.bool_ else None
            flat[i] = bool(scaled) if info is None else min(max(scaled, info.min), info.max)
        else:
            flat[i] = True if flat.dtype == np.bool_ else np.iinfo(flat.dtype).max


def record_heads(index: Path) -> np.ndarray:
    """Byte offsets of the rows and entry offsets of every block record: its ids and offsets,
    whose damage the reader must catch (the weights' bytes only change scores)."""
    block_offsets = np.load(index / "block_offsets.npy")
    record_offsets = np.load(index / "block_record_offsets.npy")
    heads = [np.arange(record_offsets[b], record_offsets[b] + record_layout(m, 0, 1, 1)[1])
             for b, m in enumerate(np.diff(block_offsets))]
    return np.concatenate(heads)


def check_damaged(root: Path, queries, kind: str, data) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        index = Path(scratch) / kind
        shutil.copytree(root / kind, index)
        manifest = json.loads((index / "manifest.json").read_text())
        name = data.draw(st.sampled_from(damageable(kind, manifest)), label="array")
        file = index / manifest["arrays"][name]["file"]
        array = np.load(file)
        positions = record_heads(index) if name == "block_records" else np.arange(array.size)
        damage(array, data, positions)
        np.save(file, array)
        if data.draw(st.booleans(), label="rehash"):
            manifest["arrays"][name]["sha256"] = sha256_file(file)
            (index / "manifest.json").write_text(json.dumps(manifest))
        memory = data.draw(st.sampled_from(memory_modes(kind)), label="memory")
        try:
            loaded = sparseir.load_index(index, memory=memory)
            results = [loaded.search(queries, k=10, **KNOBS.get(kind, {})),  # in parallel
                       loaded.search(queries[:1], k=10, **KNOBS.get(kind, {}))]  # serially
        except SparseirError as e:
            assert "\n" not in str(e)
            event("refused: checksum" if "checksum" in str(e) else "refused: checks or reader")
            return
        event("searched")
        for scores, rows in results:
            assert ((rows >= -1) & (rows < len(loaded.doc_ids))).all(), rows
            assert (np.isfinite(scores) | ((scores == -np.inf) & (rows == -1))).all(), scores


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_arrays_are_refused_or_searched_within_bounds(built, kind, data):
    root, queries = built
    check_damaged(root, queries, kind, data)
