"""Segmented indexes (sparseir.segments): add, delete, upsert and compact through immutable
segments and generation-numbered commit points.

A Python model of the live documents (id -> vector, in insertion order) is kept beside the
index: after every operation the index must hold exactly the model's live ids in order, and
its search must equal (exact) or nearly equal (approximate kinds: recall@10) a fresh exact
build over the survivors. Writers killed at each crash point (SPARSEIR_CRASH_AT, see
sparseir.fileio) must leave the previous generation or the new one, never a part.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import sparseir
from conftest import random_vectors
from sparseir.fileio import CRASH_AT_ENV
from sparseir.segments import create_segmented

TESTS_DIR = Path(__file__).resolve().parent
N_TERMS, MEAN_NNZ = 200, 12
K = 10
RECALL_BAR = 0.95
# The approximate kinds' own approximations cost more than 5% recall@10 on segments of tens
# of documents, where the top 10 reaches documents sharing one light term: a plain index of
# 20-40 such documents gets 0.92-1.0 (Seismic: pruned block summaries, summary_energy 0.4),
# 0.67-0.87 (SINDI: 25% of each document's and 20% of the query's weight mass pruned) and
# 0.98-1.0 (score-at-a-time, 8-bit impacts) with the defaults. Seismic and SINDI are unpruned
# here, so that what is measured is the segments (tombstones, merges, the merged top-k), not
# the kinds' approximations; build parameters given to create_segmented must reach every
# segment of the kind, merged ones included.
BUILD: dict[str, dict] = {"exact": {}, "seismic": {"summary_energy": 1.0}, "sindi": {"doc_prune_ratio": 0.0},
                          "saat": {}}
KNOBS: dict[str, dict] = {"exact": {}, "seismic": {}, "sindi": {"query_prune_ratio": 0.0}, "saat": {}}


def batch(seed: int, n: int, prefix: str) -> sparseir.SparseVectors:
    return random_vectors(np.random.default_rng(seed), n, N_TERMS, MEAN_NNZ, prefix=prefix)


def with_ids(vectors: sparseir.SparseVectors, ids) -> sparseir.SparseVectors:
    return sparseir.SparseVectors(vectors.offsets, vectors.terms, vectors.weights, list(ids), vectors.vocab)


def queries_for(seed: int) -> sparseir.SparseVectors:
    return random_vectors(np.random.default_rng(seed), 20, N_TERMS, 6, prefix="q")


class Model:
    """The live documents, id -> {term id: weight}, in the order a fresh build would hold them."""

    def __init__(self):
        self.live: dict[str, dict] = {}

    def add(self, vectors: sparseir.SparseVectors, upsert: bool = False) -> None:
        for vector in vectors:
            assert upsert or vector.id not in self.live
            self.live.pop(vector.id, None)  # an upserted id moves to the end
            self.live[vector.id] = vector.as_dict()

    def delete(self, ids) -> None:
        for doc_id in ids:
            del self.live[doc_id]

    def ids(self) -> list[str]:
        return list(self.live)

    def fresh(self, vocab):
        """A fresh exact index over the survivors, in the model's order; None when none survive."""
        if not self.live:
            return None
        ids = self.ids()
        return sparseir.build_index(sparseir.SparseVectors.from_dicts([self.live[i] for i in ids], ids=ids,
                                                                      vocab=vocab), kind="exact")


def live_ids(index) -> list[str]:
    return [str(doc_id) for doc_id in index.live_ids()]


def check_results(index, expected_ids: list[str], scores, rows) -> None:
    """Every returned row is live, is the current row of its id (not an upserted-over or deleted
    version), and appears once per query; padding is -inf / -1."""
    live = set(expected_ids)
    doc_ids = np.asarray(index.doc_ids).astype(str)
    assert len(doc_ids) == index.n_docs
    current_row = {doc_id: row for row, doc_id in enumerate(doc_ids)}  # the last row of an id is its newest
    assert rows.shape == scores.shape == (rows.shape[0], K)
    found = rows >= 0
    assert np.all(rows < index.n_docs)
    assert np.all(np.isneginf(scores[~found]))
    for q in range(len(rows)):
        got = rows[q][found[q]]
        assert len(set(got.tolist())) == len(got), f"query {q}: a row twice"
        for row in got.tolist():
            doc_id = doc_ids[row]
            assert doc_id in live, f"query {q}: returned row {row}, id {doc_id!r}, which is not live"
            assert current_row[doc_id] == row, f"query {q}: returned row {row} of {doc_id!r}, an old version " \
                                               f"(its live row is {current_row[doc_id]})"
        # Found results come first, in non-increasing score order.
        assert not np.any(found[q][1:] & ~found[q][:-1])
        assert np.all(np.diff(scores[q][found[q]]) <= 0)


def check_index(index, model: Model, queries, kind: str) -> None:
    expected = model.ids()
    assert live_ids(index) == expected
    assert index.n_live == len(expected)
    assert index.n_docs >= index.n_live
    scores, rows = index.search(queries, k=K, **KNOBS[kind])
    check_results(index, expected, scores, rows)
    fresh = model.fresh(index.vocab) if model.live else None
    if fresh is None:
        assert np.all(rows == -1), "results from an index with no live document"
        return
    fresh_scores, fresh_rows = fresh.search(queries, k=K)
    doc_ids = np.asarray(index.doc_ids).astype(str)
    fresh_ids = np.asarray(fresh.doc_ids).astype(str)
    if kind == "exact":
        np.testing.assert_array_equal(rows >= 0, fresh_rows >= 0)
        found = rows >= 0
        np.testing.assert_allclose(scores[found], fresh_scores[found], rtol=1e-6, atol=1e-6)
        got, want = doc_ids[rows[found]], fresh_ids[fresh_rows[found]]
        for j in np.flatnonzero(got != want):
            # Ties go to the lower row in both, and rows keep the model's order: equal ids unless
            # two scores are equal to the last bit.
            assert scores[found][j] == fresh_scores[found][j], (j, got[j], want[j])
        return
    recalls = []
    for q in range(len(queries)):
        truth = set(fresh_ids[fresh_rows[q][fresh_rows[q] >= 0]].tolist())
        if truth:
            recalls.append(len(truth & set(doc_ids[rows[q][rows[q] >= 0]].tolist())) / len(truth))
    assert np.mean(recalls) >= RECALL_BAR, f"{kind} recall@{K} {np.mean(recalls):.3f} < {RECALL_BAR}"


OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(1, 40)),
    st.tuples(st.just("delete"), st.floats(0.0, 1.0)),
    st.tuples(st.just("upsert"), st.integers(1, 10), st.integers(0, 10)),
    st.tuples(st.just("compact")),
    st.tuples(st.just("reload")),
), min_size=1, max_size=10)


@pytest.mark.parametrize("kind", ["exact", "seismic", "sindi", "saat"])
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), operations=OPERATIONS)
def test_random_operations_equal_a_fresh_build_of_the_survivors(tmp_path_factory, kind, seed, operations):
    rng = np.random.default_rng(seed)
    path = tmp_path_factory.mktemp(f"segments-{kind}") / "index"
    index = create_segmented(path, kind=kind, small_segment=20, max_segments=3, **BUILD[kind])
    model = Model()
    queries = queries_for(seed)
    generation = index.generation
    check_index(index, model, queries, kind)
    for step, operation in enumerate(operations):
        name = operation[0]
        wrote = True
        if name == "add":
            vectors = batch(int(rng.integers(2**32)), operation[1], prefix=f"b{step}-")
            new_generation = index.add(vectors)
            model.add(vectors)
        elif name == "delete":
            if not model.live:
                continue
            ids = model.ids()
            n = max(1, round(operation[1] * len(ids)))
            doomed = [ids[i] for i in rng.choice(len(ids), size=n, replace=False)]
            new_generation = index.delete(doomed)
            model.delete(doomed)
        elif name == "upsert":
            ids = model.ids()
            old = [ids[i] for i in rng.choice(len(ids), size=min(operation[1], len(ids)), replace=False)]
            n_new = operation[2] if old else max(1, operation[2])
            new_ids = [*old, *(f"u{step}-{i}" for i in range(n_new))]
            order = rng.permutation(len(new_ids))
            vectors = with_ids(batch(int(rng.integers(2**32)), len(new_ids), "x"), [new_ids[i] for i in order])
            new_generation = index.add(vectors, upsert=True)
            model.add(vectors, upsert=True)
        elif name == "compact":
            new_generation = index.compact()
            assert index.n_docs == index.n_live == len(model.live), "compact kept deleted documents"
        else:
            wrote = False
            index = sparseir.load_index(path)
            assert index.generation == generation
        if wrote:
            assert new_generation == index.generation
            assert new_generation > generation
            generation = new_generation
        check_index(index, model, queries, kind)
    reopened = sparseir.load_index(path, verify=True)
    assert reopened.generation == generation
    check_index(reopened, model, queries, kind)
    event(f"operations: {len(operations)}")
    event(f"rows {'>' if reopened.n_docs > reopened.n_live else '=='} live at the end")
    if hasattr(reopened, "segments"):
        event(f"segments at the end: {len(reopened.segments)}")


# --- writers killed at every crash point ------------------------------------------------------

CHILD = """
import json, sys
import numpy as np
import sparseir
from conftest import random_vectors

op = json.loads(sys.argv[2])
index = sparseir.load_index(sys.argv[1])
if op["op"] == "add":
    vectors = random_vectors(np.random.default_rng(op["seed"]), op["n"], {n_terms}, {mean_nnz}, prefix=op["prefix"])
    index.add(vectors, upsert=op.get("upsert", False))
elif op["op"] == "delete":
    index.delete(op["ids"])
else:
    index.compact()
""".format(n_terms=N_TERMS, mean_nnz=MEAN_NNZ)

SMALL, MAX_SEGMENTS = 20, 3


def apply_in_model(model: Model, op: dict) -> None:
    if op["op"] == "add":
        model.add(batch(op["seed"], op["n"], op["prefix"]), upsert=op.get("upsert", False))
    elif op["op"] == "delete":
        model.delete(op["ids"])


def make_base(path: Path, kind: str, n_segments: int) -> Model:
    """An index of `n_segments` segments (small exact ones and kind ones) with some deletions."""
    index = create_segmented(path, kind=kind, small_segment=SMALL, max_segments=MAX_SEGMENTS, **BUILD[kind])
    model = Model()
    sizes = [30, 8, 25, 5][:n_segments]
    for i, n in enumerate(sizes):
        vectors = batch(100 + i, n, f"s{i}-")
        index.add(vectors)
        model.add(vectors)
    doomed = [model.ids()[i] for i in (0, 3, len(model.live) - 1)]
    index.delete(doomed)
    model.delete(doomed)
    assert live_ids(index) == model.ids()
    return model


def killed_at(step: int, path: Path, op: dict) -> bool:
    """Run `op` on the index at `path` in a child told to kill itself at crash point `step`;
    False when it completed first."""
    # The child imports this directory's conftest: the directory goes first on its PYTHONPATH.
    python_path = os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))
    child = subprocess.run([sys.executable, "-c", CHILD, str(path), json.dumps(op)],
                           env={**os.environ, CRASH_AT_ENV: str(step), "PYTHONPATH": python_path}, capture_output=True)
    if child.returncode == 0:
        return False
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    return True


def temp_leftovers(path: Path) -> list[str]:
    """Hidden temporaries named as sparseir.fileio's writers name them (`.NAME.PID.XXXX.tmp|old`)
    whose writer no longer runs, anywhere under and beside the index."""
    pattern = re.compile(r"\..+\.(\d+)\.[a-z0-9_]+\.(?:tmp|old)")
    found = []
    for directory in [path.parent, path, *(p for p in path.rglob("*") if p.is_dir())]:
        for entry in directory.iterdir():
            match = pattern.fullmatch(entry.name)
            if match and int(match[1]) != os.getpid():
                try:
                    os.kill(int(match[1]), 0)
                except ProcessLookupError:
                    found.append(str(entry.relative_to(path.parent)))
    return sorted(found)


def tree(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_size for p in path.rglob("*") if p.is_file()}


KILL_CASES = {
    # name: (segments in the base index, the operation)
    "add-small": (2, {"op": "add", "seed": 7, "n": 6, "prefix": "new-"}),
    "add-kind": (2, {"op": "add", "seed": 8, "n": 40, "prefix": "new-"}),
    "add-merge": (3, {"op": "add", "seed": 9, "n": 12, "prefix": "new-"}),  # a 4th segment: past max_segments
    "upsert": (2, {"op": "add", "seed": 10, "n": 12, "prefix": "s1-", "upsert": True}),  # s1-0..7 live, 8..11 new
    "delete": (3, {"op": "delete", "ids": ["s0-5", "s1-2", "s2-0", "s2-23"]}),
    "compact": (3, {"op": "compact"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(KILL_CASES))
def test_writer_killed_at_each_crash_point_leaves_old_or_new_generation(tmp_path, case):
    kind = "sindi"
    n_segments, op = KILL_CASES[case]
    base = tmp_path / "base"
    before = make_base(base, kind, n_segments)
    before_generation = sparseir.load_index(base).generation
    after = Model()
    after.live = dict(before.live)
    apply_in_model(after, op)
    assert after.ids() != before.ids() or op["op"] == "compact"
    queries = queries_for(3)
    work = tmp_path / "work"
    seen = []
    for step in itertools.count(1):
        assert step < 500, "the writer never completed"
        shutil.rmtree(work, ignore_errors=True)
        for leftover in tmp_path.glob(".work.*"):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink()
        shutil.copytree(base, work, symlinks=True)
        if not killed_at(step, work, op):
            break
        index = sparseir.load_index(work, verify=True)
        state = live_ids(index)
        assert state in (before.ids(), after.ids()), f"killed at crash point {step}: neither generation"
        is_new = state == after.ids() and (op["op"] != "compact" or index.generation > before_generation)
        seen.append(is_new)
        model = after if state == after.ids() else before
        if not is_new:
            assert index.generation == before_generation, f"crash point {step}"
        else:
            assert index.generation > before_generation, f"crash point {step}"
        check_index(index, model, queries, kind)
        # Later successful writes (an add, then a delete) must not trip over, nor pick up, what
        # the killed writer left.
        later = Model()
        later.live = dict(model.live)
        previous = index.generation
        more = batch(12, 3, "later-")
        generation = index.add(more)
        later.add(more)
        assert generation > previous, f"crash point {step}"
        doomed = later.ids()[1]
        previous = index.generation
        generation = index.delete([doomed])
        later.delete([doomed])
        assert generation > previous
        reopened = sparseir.load_index(work, verify=True)
        assert reopened.generation == generation, f"crash point {step}"
        check_index(reopened, later, queries, kind)
        assert temp_leftovers(work) == [], f"crash point {step}: a killed writer's temporaries stayed"
    # The child completed: the new generation, whole.
    index = sparseir.load_index(work, verify=True)
    assert index.generation > before_generation
    check_index(index, after, queries, kind)
    if op["op"] == "compact":
        assert index.n_docs == index.n_live
    assert seen, "no crash point reached: the operation writes without crash points"
    # Old, then new: the operation's effect appears at one step and stays.
    assert seen == sorted(seen), seen
    assert not seen[0], "killed at the first crash point, the new generation was already there"


@pytest.mark.slow
def test_killed_writers_do_not_pile_up_files(tmp_path):
    """What a killed add wrote is deleted (or at least not kept) once a later write commits: the
    directory ends up about as large as one where no writer was killed."""
    op = {"op": "add", "seed": 11, "n": 30, "prefix": "new-"}
    clean, crashed = tmp_path / "clean", tmp_path / "crashed"
    make_base(clean, "exact", 2)
    index = sparseir.load_index(clean)
    index.add(batch(11, 30, "new-"))
    index.delete(["new-0"])
    clean_bytes = sum(tree(clean).values())
    kills = 0
    for step in itertools.count(1):
        assert step < 500, "the writer never completed"
        shutil.rmtree(crashed, ignore_errors=True)
        make_base(crashed, "exact", 2)
        if not killed_at(step, crashed, op):
            break
        kills += 1
        index = sparseir.load_index(crashed)
        if "new-0" not in live_ids(index):  # the old generation: the add is redone in full
            index.add(batch(11, 30, "new-"))
        index.delete(["new-0"])
        index = sparseir.load_index(crashed, verify=True)
        assert live_ids(index) == live_ids(sparseir.load_index(clean)), f"crash point {step}"
        assert temp_leftovers(crashed) == [], f"crash point {step}"
        crashed_bytes = sum(tree(crashed).values())
        assert crashed_bytes <= 1.2 * clean_bytes, (step, sorted(tree(clean)), sorted(tree(crashed)))
    assert kills


# --- errors -----------------------------------------------------------------------------------

def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert message and "\n" not in message, message
    return message


@pytest.mark.parametrize("kind", ["exact", "sindi"])
def test_write_errors_are_one_line_and_change_nothing(tmp_path, kind):
    path = tmp_path / "index"
    index = create_segmented(path, kind=kind, small_segment=SMALL, max_segments=MAX_SEGMENTS)
    first = batch(1, 25, "a")
    index.add(first)
    generation, ids = index.generation, live_ids(index)

    def unchanged():
        assert index.generation == generation and live_ids(index) == ids
        reopened = sparseir.load_index(path)
        assert reopened.generation == generation and live_ids(reopened) == ids

    # An id already live, without upsert (alone, and among new ids).
    with pytest.raises(sparseir.ParameterError) as error:
        index.add(batch(2, 1, "a"))
    assert "a0" in one_line(error)
    unchanged()
    with pytest.raises(sparseir.ParameterError) as error:
        index.add(with_ids(batch(2, 3, "z"), ["new1", "a7", "new2"]))
    assert "a7" in one_line(error)
    unchanged()
    # Unknown ids on delete; a known one beside it stays.
    with pytest.raises(sparseir.ParameterError) as error:
        index.delete(["nope"])
    assert "nope" in one_line(error)
    unchanged()
    with pytest.raises(sparseir.ParameterError) as error:
        index.delete(["a1", "nope"])
    one_line(error)
    unchanged()
    # Another vocabulary.
    other = batch(3, 2, "o")
    other = sparseir.SparseVectors(other.offsets, other.terms, other.weights, other.ids,
                                   sparseir.Vocabulary([f"w{i}" for i in range(N_TERMS)], name="other"))
    with pytest.raises(sparseir.ParameterError) as error:
        index.add(other)
    one_line(error)
    unchanged()
    # A deleted id is unknown to delete, and free to add again (without upsert).
    index.delete(["a1"])
    with pytest.raises(sparseir.ParameterError) as error:
        index.delete(["a1"])
    one_line(error)
    index.add(with_ids(batch(4, 1, "r"), ["a1"]))
    assert live_ids(index) == [i for i in ids if i != "a1"] + ["a1"]


def test_one_batch_holding_an_id_twice_never_makes_two_live_copies(tmp_path):
    index = create_segmented(tmp_path / "index", kind="exact", small_segment=SMALL, max_segments=MAX_SEGMENTS)
    try:
        index.add(with_ids(batch(1, 3, "d"), ["x", "y", "x"]))
    except sparseir.ParameterError as error:
        assert "\n" not in str(error)
        assert live_ids(index) == []
        return
    assert sorted(live_ids(index)) == ["x", "y"]


def test_unknown_kind_is_a_parameter_error(tmp_path):
    with pytest.raises(sparseir.ParameterError) as error:
        create_segmented(tmp_path / "index", kind="nope")
    one_line(error)


# --- readers and writers side by side -----------------------------------------------------------

def test_an_open_reader_keeps_searching_the_generation_it_opened(tmp_path):
    path = tmp_path / "index"
    model = make_base(path, "sindi", 3)
    reader = sparseir.load_index(path)
    queries = queries_for(5)
    check_index(reader, model, queries, "sindi")
    writer = sparseir.load_index(path)
    writer.delete(model.ids()[:10])
    writer.add(batch(13, 25, "w-"))
    writer.compact()  # every segment file the reader opened is now unreferenced
    check_index(reader, model, queries, "sindi")
    after = Model()
    after.live = dict(model.live)
    after.delete(model.ids()[:10])
    after.add(batch(13, 25, "w-"))
    check_index(sparseir.load_index(path, verify=True), after, queries, "sindi")


def test_a_stale_writer_never_undoes_a_committed_write(tmp_path):
    """Two handles opened at one generation both write: the second either fails (with a
    one-line error) or applies on top; the first one's committed effect stays either way."""
    path = tmp_path / "index"
    model = make_base(path, "exact", 2)
    first, second = sparseir.load_index(path), sparseir.load_index(path)
    x, y = model.ids()[1], model.ids()[2]  # both in the first segment
    first.delete([x])
    model.delete([x])
    committed = sparseir.load_index(path, verify=True)
    assert live_ids(committed) == model.ids()
    try:
        second.delete([y])
    except sparseir.SparseirError as error:
        assert "\n" not in str(error)
    else:
        model.delete([y])
    assert live_ids(sparseir.load_index(path, verify=True)) == model.ids(), \
        "the stale writer's write changed (or replaced) the committed generation"
    try:
        second.add(batch(14, 30, "stale-"))  # a kind segment, numbered from the stale commit point
    except sparseir.SparseirError as error:
        assert "\n" not in str(error)
    else:
        model.add(batch(14, 30, "stale-"))
    assert live_ids(sparseir.load_index(path, verify=True)) == model.ids()


def test_ids_and_rows_follow_each_write(tmp_path):
    """What a handle derives from its generation (ids by row, rows by id) is renewed when it writes."""
    rng = np.random.default_rng(11)
    index = create_segmented(tmp_path / "live", kind="exact", small_segment=5)
    first = random_vectors(rng, 8, 20, 4, prefix="a")
    index.add(first)
    queries = random_vectors(rng, 3, 20, 3, prefix="q")
    index.search(queries, k=3, filter=["a1", "a2"])  # caches the id -> row map of this generation
    assert list(index.doc_ids) == list(first.ids)
    second = random_vectors(rng, 6, 20, 4, prefix="b")
    index.add(second)
    assert list(index.doc_ids) == [*first.ids, *second.ids]
    _, rows = index.search(queries, k=3, filter=["b0", "b5"])
    assert set(index.doc_ids[rows[rows >= 0]]) <= {"b0", "b5"}
