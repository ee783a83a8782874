"""A segmented index (sparseir.segments) owns only its own names, trusts its commit points only
after checking them, survives readers racing a writer, and grows an open vocabulary.

Each case reproduces a problem as a user meets it (through the CLI where it is a command) on
an index built here: user files beside the segments must survive every write; a damaged or
hand-edited commit point or tombstone file is one line and exit 1, never a traceback or a
silently different answer; a reader whose generation a writer replaces while it opens it
opens the latest instead; and documents with new terms, added to an index over an open
vocabulary, are found as a fresh build over the same live documents finds them.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import sparseir
from conftest import random_vectors
from sparseir import segments
from sparseir.cli import cli
from sparseir.segments import create_segmented, load_segmented

N_TERMS = 60
K = 5


def batch(seed: int, n: int, prefix: str) -> sparseir.SparseVectors:
    return random_vectors(np.random.default_rng(seed), n, N_TERMS, 6, prefix=prefix)


def run(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def one_error_line(result, *patterns: str) -> str:
    """The command failed with exit 1 and one line (no traceback) matching every pattern."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    # Progress lines (stderr) may come first; the error is the last line, alone.
    errors = [number for number, line in enumerate(lines) if line.startswith("Error: ")]
    assert errors == [len(lines) - 1], result.output
    for pattern in patterns:
        assert re.search(pattern, lines[-1]), (pattern, result.output)
    return lines[-1]


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert message and "\n" not in message, message
    return message


def write_jsonl(path: Path, docs: dict[str, dict]) -> Path:
    path.write_text("".join(json.dumps({"id": doc_id, "vector": vector}) + "\n" for doc_id, vector in docs.items()))
    return path


def as_jsonl(path: Path, vectors: sparseir.SparseVectors) -> Path:
    return write_jsonl(path, {vector.id: vector.as_dict(vectors.vocab) for vector in vectors})


def commit_point(path: Path) -> Path:
    return path / f"generation.{segments.latest_generation(path)}.json"


def edit_commit_point(path: Path, change) -> Path:
    """Rewrite the latest commit point as `change(manifest)` leaves it (a hand edit)."""
    file = commit_point(path)
    manifest = json.loads(file.read_text())
    change(manifest)
    file.write_text(json.dumps(manifest, indent=2))
    return file


def three_segments(path: Path, kind: str = "exact") -> sparseir.SparseVectors:
    """An index of three small segments, two with tombstones; returns every document added."""
    index = create_segmented(path, kind=kind, small_segment=100, max_segments=8)
    parts = [batch(1, 12, "a"), batch(2, 9, "b"), batch(3, 10, "c")]
    for part in parts:
        index.add(part)
    index.delete(["a1", "a4", "b0"])
    return sparseir.SparseVectors.concatenate(parts)


# --- the index deletes only what is its own ----------------------------------------------------

USER_FILES = {"NOTES.txt": "my notes\n", "my-backup/generation.3.json": "{}\n", "my-backup/seg-000001/x": "data",
              "generation.4.json.bak": "{\"backup\": true}\n", ".hidden": "mine", "seg-000001.txt": "not a segment",
              # A temporary's name, but of no name the index writes, and of no running process.
              ".NOTES.txt.99999999.abcd1234.tmp": "mine too"}


def test_writes_leave_what_is_not_the_index_alone_and_info_lists_it(tmp_path):
    docs = tmp_path / "docs.jsonl"
    as_jsonl(docs, batch(1, 6, "d"))
    index_dir = tmp_path / "idx"
    assert run("index", docs, "-o", index_dir, "--segmented", "--small-segment", "2", "--max-segments", "2",
               "--vocab", "open").exit_code == 0
    for name, content in USER_FILES.items():
        (index_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (index_dir / name).write_text(content)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("outside")
    (index_dir / "seg-000099").symlink_to(outside)  # the index's name, but a link: not the index's
    # What an interrupted writer of the index leaves is the index's own: the next write removes it.
    (index_dir / "seg-000050").mkdir()
    (index_dir / "seg-000050" / "manifest.json").write_text("{}")
    (index_dir / "seg-000001.deletes.0.npy").write_bytes(b"stale")

    def user_files_intact():
        for name, content in USER_FILES.items():
            assert (index_dir / name).read_text() == content, name
        assert (index_dir / "seg-000099").is_symlink() and (outside / "keep.txt").read_text() == "outside"

    more = as_jsonl(tmp_path / "more.jsonl", batch(2, 3, "m"))
    for args in (["add", index_dir, more], ["delete", index_dir, "d2"], ["compact", index_dir]):
        result = run(*args)
        assert result.exit_code == 0, result.output
        user_files_intact()
    assert not (index_dir / "seg-000050").exists() and not (index_dir / "seg-000001.deletes.0.npy").exists()
    index = sparseir.load_index(index_dir, verify=True)
    assert index.live_ids() == ["d0", "d1", "d3", "d4", "d5", "m0", "m1", "m2"]
    result = run("info", index_dir)
    assert result.exit_code == 0, result.output
    foreign = [line for line in result.output.splitlines() if "left alone" in line]
    assert foreign == ["not part of the index, left alone: .NOTES.txt.99999999.abcd1234.tmp, .hidden, NOTES.txt, "
                       "generation.4.json.bak, my-backup/, seg-000001.txt, seg-000099/"], result.output


def test_info_names_nothing_foreign_in_a_clean_index(tmp_path):
    three_segments(tmp_path / "idx")
    result = run("info", tmp_path / "idx")
    assert result.exit_code == 0 and "left alone" not in result.output, result.output


# --- tombstones: checksummed, counted, read in one line ----------------------------------------

def tombstone_file(path: Path) -> Path:
    entries = [entry for entry in json.loads(commit_point(path).read_text())["segments"] if entry["deletes"]]
    return path / entries[0]["deletes"]


def queries_file(tmp_path: Path) -> Path:
    return as_jsonl(tmp_path / "queries.jsonl", random_vectors(np.random.default_rng(9), 4, N_TERMS, 4, prefix="q"))


def test_a_truncated_tombstone_file_is_one_line_for_every_command(tmp_path):
    index_dir = tmp_path / "idx"
    three_segments(index_dir)
    file = tombstone_file(index_dir)
    file.write_bytes(file.read_bytes()[:-5])
    queries = queries_file(tmp_path)
    more = as_jsonl(tmp_path / "more.jsonl", batch(5, 2, "m"))
    name = re.escape(file.name)
    one_error_line(run("search", index_dir, queries, "-o", tmp_path / "run.trec", "--verify"), name)
    one_error_line(run("search", index_dir, queries, "-o", tmp_path / "run.trec"), name)
    one_error_line(run("info", index_dir), name)
    one_error_line(run("add", index_dir, more), name)
    one_error_line(run("compact", index_dir), name)
    with pytest.raises(sparseir.IndexFormatError) as error:
        sparseir.load_index(index_dir)
    assert file.name in one_line(error)
    file.write_bytes(b"")  # empty: still one line
    one_error_line(run("info", index_dir), name)


def test_an_inverted_tombstone_file_of_the_same_size_is_refused(tmp_path):
    index_dir = tmp_path / "idx"
    three_segments(index_dir)
    file = tombstone_file(index_dir)
    size = file.stat().st_size
    inverted = ~np.load(file)
    buffer = io.BytesIO()
    np.save(buffer, inverted, allow_pickle=False)
    file.write_bytes(buffer.getvalue())
    assert file.stat().st_size == size
    one_error_line(run("search", index_dir, queries_file(tmp_path), "-o", tmp_path / "run.trec", "--verify"),
                   re.escape(file.name), "checksum")
    with pytest.raises(sparseir.IndexFormatError, match="checksum"):
        sparseir.load_index(index_dir)


def version_1(manifest: dict) -> None:
    """A commit point as sparseir wrote it before tombstone checksums and vocabulary files."""
    manifest["format_version"] = 1
    manifest.pop("vocab", None)
    for entry in manifest["segments"]:
        entry.pop("deletes_sha256", None)


def test_commit_points_without_checksums_still_open_and_take_writes(tmp_path):
    index_dir = tmp_path / "idx"
    docs = three_segments(index_dir)
    before = sparseir.load_index(index_dir)
    queries = random_vectors(np.random.default_rng(9), 6, N_TERMS, 4, prefix="q")
    expected = before.search(queries, k=K)
    edit_commit_point(index_dir, version_1)
    index = sparseir.load_index(index_dir, verify=True)
    assert index.live_ids() == before.live_ids()
    np.testing.assert_array_equal(index.search(queries, k=K)[1], expected[1])
    index.delete(["c3"])
    index.add(batch(8, 2, "n"))
    index = sparseir.load_index(index_dir, verify=True)
    assert index.live_ids() == [i for i in docs.ids.tolist() if i not in ("a1", "a4", "b0", "c3")] + ["n0", "n1"]
    assert json.loads(commit_point(index_dir).read_text())["format_version"] == segments.FORMAT_VERSION


def test_without_a_checksum_the_tombstone_count_still_catches_an_inverted_file(tmp_path):
    index_dir = tmp_path / "idx"
    three_segments(index_dir)
    edit_commit_point(index_dir, version_1)
    file = tombstone_file(index_dir)
    np.save(file, ~np.load(file), allow_pickle=False)
    with pytest.raises(sparseir.IndexFormatError) as error:
        sparseir.load_index(index_dir)
    assert file.name in one_line(error) and "tombstones" in str(error.value)


# --- commit points: every field checked, only names inside the index ---------------------------

def drop(key):
    return lambda manifest: manifest.pop(key)


def set_field(key, value, segment=None):
    def change(manifest):
        (manifest if segment is None else manifest["segments"][segment])[key] = value
    return change


BAD_COMMIT_POINTS = {
    # name: (the change, what the one line must name)
    "no segments": (drop("segments"), "'segments'"),
    "no kind": (drop("kind"), "'kind'"),
    "no generation": (drop("generation"), "'generation'"),
    "no small_segment": (drop("small_segment"), "'small_segment'"),
    "no max_segments": (drop("max_segments"), "'max_segments'"),
    "no next_segment": (drop("next_segment"), "'next_segment'"),
    "no build_params": (drop("build_params"), "'build_params'"),
    "no format": (drop("format"), "not a sparseir-segmented-index"),
    "newer format": (set_field("format_version", 99), "upgrade sparseir"),
    "segments not a list": (set_field("segments", {"dir": "seg-000001"}), "'segments'"),
    "entry not an object": (lambda m: m["segments"].__setitem__(0, "seg-000001"), r"segments\[0\]"),
    "generation not its file's": (set_field("generation", 1), "'generation'"),
    "generation a string": (set_field("generation", "3"), "'generation'"),
    "unknown kind": (set_field("kind", "nope"), "'kind'"),
    "unknown build parameter": (set_field("build_params", {"nope": 1}), "'build_params'"),
    "max_segments zero": (set_field("max_segments", 0), "'max_segments'"),
    "max_segments a bool": (set_field("max_segments", True), "'max_segments'"),
    "entry without dir": (lambda m: m["segments"][1].pop("dir"), r"segments\[1\] 'dir'"),
    "entry without n_docs": (lambda m: m["segments"][0].pop("n_docs"), r"segments\[0\] 'n_docs'"),
    "entry without deletes": (lambda m: m["segments"][0].pop("deletes"), r"segments\[0\] 'deletes'"),
    "entry without n_deleted": (lambda m: m["segments"][0].pop("n_deleted"), r"segments\[0\] 'n_deleted'"),
    "entry without kind": (lambda m: m["segments"][2].pop("kind"), r"segments\[2\] 'kind'"),
    "n_docs a string": (set_field("n_docs", "12", 0), r"segments\[0\] 'n_docs'"),
    "n_docs wrong": (set_field("n_docs", 11, 0), "seg-000001.*11"),
    "n_deleted negative": (set_field("n_deleted", -1, 0), r"segments\[0\] 'n_deleted'"),
    "n_deleted past n_docs": (set_field("n_deleted", 13, 0), r"segments\[0\] 'n_deleted'"),
    "deletes a number": (set_field("deletes", 5, 0), r"segments\[0\] 'deletes'"),
    "deletes of another segment": (set_field("deletes", "seg-000002.deletes.4.npy", 0), r"segments\[0\] 'deletes'"),
    "checksum not hex": (set_field("deletes_sha256", "abc", 0), r"segments\[0\] 'deletes_sha256'"),
    "a segment twice": (lambda m: m["segments"][1].__setitem__("dir", "seg-000001"), r"segments\[1\] 'dir'"),
    "segment past next_segment": (set_field("next_segment", 2), r"segments\[1\] 'dir'"),
    "entry kind not the index's": (set_field("kind", "sindi", 0), r"segments\[0\] 'kind'"),
    "vocab not an object": (set_field("vocab", "vocab.1.txt"), "'vocab'"),
}


@pytest.mark.parametrize("case", list(BAD_COMMIT_POINTS))
def test_a_malformed_commit_point_is_one_line_naming_the_file_and_the_key(tmp_path, case):
    index_dir = tmp_path / "idx"
    three_segments(index_dir)
    change, key = BAD_COMMIT_POINTS[case]
    file = edit_commit_point(index_dir, change)
    one_error_line(run("info", index_dir), re.escape(file.name), key)
    with pytest.raises(sparseir.IndexFormatError) as error:
        sparseir.load_index(index_dir)
    assert file.name in one_line(error)


OUTSIDE_NAMES = {
    "dir": ["../other_index", "/etc", "seg-000001/../seg-000002", "seg-000001/", ".", ""],
    "deletes": ["../other.npy", "/etc/passwd", "sub/seg-000001.deletes.3.npy"],
}


@pytest.mark.parametrize("key, value", [(key, value) for key, values in OUTSIDE_NAMES.items() for value in values])
def test_a_commit_point_naming_a_path_outside_the_index_is_refused(tmp_path, key, value):
    other = tmp_path / "other_index"  # 12 documents, as seg-000001: without the check, loaded in its place
    sparseir.build_index(batch(1, 12, "a"), kind="exact").save(other)
    index_dir = tmp_path / "idx"
    three_segments(index_dir)
    file = edit_commit_point(index_dir, set_field(key, value, 0))
    one_error_line(run("info", index_dir), re.escape(file.name), f"'{key}'")
    with pytest.raises(sparseir.IndexFormatError) as error:
        sparseir.load_index(index_dir)
    assert file.name in one_line(error)


def test_a_vocabulary_file_outside_the_index_is_refused(tmp_path):
    index_dir = tmp_path / "idx"
    index = create_segmented(index_dir, kind="exact")
    index.add(sparseir.SparseVectors.from_dicts([{"apple": 1.0}], ids=["d"], vocab=sparseir.Vocabulary.growing()))
    file = edit_commit_point(index_dir, lambda manifest: manifest["vocab"].__setitem__("file", "../vocab.1.txt"))
    one_error_line(run("info", index_dir), re.escape(file.name), "vocab 'file'")


def test_a_segment_linked_from_outside_the_index_is_refused(tmp_path):
    index_dir = tmp_path / "idx"
    three_segments(index_dir)
    outside = tmp_path / "elsewhere"
    (index_dir / "seg-000001").rename(outside)
    (index_dir / "seg-000001").symlink_to(outside)
    file = commit_point(index_dir)
    one_error_line(run("info", index_dir), re.escape(file.name), "seg-000001 is a link leading out")
    # The link (not the index's own) survives a write that fails, and the directory it leads to too.
    one_error_line(run("compact", index_dir))
    assert (index_dir / "seg-000001").is_symlink() and (outside / "manifest.json").exists()


# --- readers racing a writer ---------------------------------------------------------------------

def writer_runs_first(monkeypatch, index_dir: Path, hook_name: str, write, times: int = 1) -> list[int]:
    """Make the reader's `hook_name` step let `write()` commit (and remove the old generation)
    first, the first `times` calls; returns the generations the reader was at, one per write."""
    real = getattr(segments, hook_name)
    seen: list[int] = []
    busy = []

    def hooked(*args, **kwargs):
        if len(seen) < times and not busy:  # the writer's own reopening passes straight through
            busy.append(True)
            try:
                seen.append(segments.latest_generation(index_dir))
                write()
            finally:
                busy.pop()
        return real(*args, **kwargs)

    monkeypatch.setattr(segments, hook_name, hooked)
    return seen


@pytest.mark.parametrize("hook_name, operation", [
    ("read_commit_point", "delete"),  # the commit point itself vanishes
    ("open_segment", "compact"),  # the segment directories vanish
    ("read_tombstones", "compact"),  # the tombstone files vanish (their segment is already open)
    ("open_segment", "add"),  # the add merges: two segments replaced by one
])
def test_a_reader_whose_generation_is_replaced_while_opening_opens_the_latest(tmp_path, monkeypatch, hook_name,
                                                                               operation):
    index_dir = tmp_path / "idx"
    three_segments(index_dir)
    writer = load_segmented(index_dir)
    writer.manifest["max_segments"] = 3  # (in memory) the add makes a fourth segment, which merges
    write = {"delete": lambda: writer.delete(["c0"]), "compact": writer.compact,
             "add": lambda: writer.add(batch(6, 4, "w"))}[operation]
    seen = writer_runs_first(monkeypatch, index_dir, hook_name, write)
    reader = load_segmented(index_dir)
    assert seen and seen[0] < writer.generation == reader.generation
    assert reader.live_ids() == writer.live_ids()
    for segment in reader.segments:
        assert segment.path.exists()
    queries = random_vectors(np.random.default_rng(9), 6, N_TERMS, 4, prefix="q")
    np.testing.assert_array_equal(reader.search(queries, k=K)[1], writer.search(queries, k=K)[1])


def test_a_reader_gives_up_in_one_line_when_every_generation_is_replaced(tmp_path, monkeypatch):
    index_dir = tmp_path / "idx"
    three_segments(index_dir)
    writer = load_segmented(index_dir)
    ids = iter(writer.live_ids())
    writer_runs_first(monkeypatch, index_dir, "read_commit_point", lambda: writer.delete([next(ids)]), times=100)
    with pytest.raises(sparseir.IndexFormatError) as error:
        load_segmented(index_dir)
    assert "replaced while being opened" in one_line(error)


def test_a_missing_segment_without_a_later_generation_is_damage_not_a_race(tmp_path, monkeypatch):
    index_dir = tmp_path / "idx"
    three_segments(index_dir)
    calls = []
    real = segments.open_generation
    monkeypatch.setattr(segments, "open_generation", lambda *args: calls.append(1) or real(*args))
    shutil.rmtree(index_dir / "seg-000002")
    with pytest.raises(sparseir.IndexFormatError) as error:
        load_segmented(index_dir)
    assert "seg-000002" in one_line(error)
    assert len(calls) == 1, "retried though no writer had committed"


# --- delete counts what changed; messages fit the CLI and the API --------------------------------

def test_delete_counts_an_id_given_twice_once(tmp_path):
    index_dir = tmp_path / "idx"
    index = create_segmented(index_dir, kind="exact")
    index.add(sparseir.SparseVectors.from_dicts([{"t1": 1.0}, {"t2": 2.0}, {"t1": 3.0}], ids=["4983", "17", "5"],
                                                vocab=sparseir.Vocabulary.growing()))
    result = run("delete", index_dir, "4983", "4983")
    assert result.exit_code == 0, result.output
    assert "deleted 1 documents" in result.output and "2 live" in result.output, result.output
    assert load_segmented(index_dir).live_ids() == ["17", "5"]
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("17\n17\n")
    result = run("delete", index_dir, "17", "--ids-file", ids_file)
    assert result.exit_code == 0 and "deleted 1 documents" in result.output, result.output
    # Python too: each id tombstoned once, the count of tombstones what changed.
    index = load_segmented(index_dir)
    index.delete(["5", "5"])
    assert index.n_live == 0 and index.manifest["segments"][0]["n_deleted"] == 3


def test_errors_name_the_option_as_well_as_the_argument(tmp_path):
    index_dir = tmp_path / "idx"
    docs = as_jsonl(tmp_path / "docs.jsonl", batch(1, 4, "d"))
    assert run("index", docs, "-o", index_dir, "--segmented", "--vocab", "open").exit_code == 0
    output = one_error_line(run("add", index_dir, docs), "'d0'", "--upsert")
    assert "add(" not in output
    assert run("add", index_dir, docs, "--upsert").exit_code == 0
    stale, fresh = load_segmented(index_dir), load_segmented(index_dir)
    fresh.delete(["d1"])
    with pytest.raises(sparseir.ParameterError) as error:
        stale.delete(["d2"])
    assert "open the index again" in one_line(error) and "load_index" not in str(error.value)


# --- an open vocabulary grows ------------------------------------------------------------------

WORDS = [f"w{i}" for i in range(30)]


def open_docs(docs: dict[str, dict], vocab: sparseir.Vocabulary | None = None) -> sparseir.SparseVectors:
    """Documents over an open vocabulary: their own (as `--vocab open` reads a file), or one
    grown from `vocab` (as reading with an index's vocabulary does)."""
    start = sparseir.Vocabulary.growing() if vocab is None else sparseir.Vocabulary(vocab.terms, vocab.name, True)
    return sparseir.SparseVectors.from_dicts(list(docs.values()), ids=list(docs), vocab=start)


def assert_same_as_fresh(index, live: dict[str, dict], queries: list[dict]) -> None:
    """Search equals exact search over a fresh build of the live documents: the same ids in
    order (but among equal scores) and the same scores."""
    assert index.live_ids() == list(live)
    scores, rows = index.search(queries, k=K)
    if not live:
        assert np.all(rows == -1)
        return
    fresh = sparseir.build_index(open_docs(live), kind="exact")
    fresh_scores, fresh_rows = fresh.search(queries, k=K)
    np.testing.assert_array_equal(rows >= 0, fresh_rows >= 0)
    found = rows >= 0
    np.testing.assert_allclose(scores[found], fresh_scores[found], rtol=1e-6)
    got = np.asarray(index.doc_ids).astype(str)[rows[found]]
    want = np.asarray(fresh.doc_ids).astype(str)[fresh_rows[found]]
    for j in np.flatnonzero(got != want):
        assert scores[found][j] == fresh_scores[found][j], (got[j], want[j])


def word_vector(terms, weights) -> dict:
    return {term: float(weight) for term, weight in zip(terms, weights)}


VECTORS = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6, unique=True).flatmap(
    lambda terms: st.lists(st.floats(0.1, 5.0), min_size=len(terms), max_size=len(terms)).map(
        lambda weights: word_vector(terms, weights)))
STEPS = st.lists(st.one_of(
    st.tuples(st.just("add"), st.lists(VECTORS, min_size=1, max_size=6), st.booleans()),
    st.tuples(st.just("delete"), st.floats(0.0, 1.0)),
    st.tuples(st.just("compact")),
    st.tuples(st.just("reload")),
), min_size=1, max_size=8)
QUERIES = [{word: 1.0} for word in WORDS] + [{"w1": 0.5, "w17": 2.0, "w29": 1.0}, {"never": 1.0, "w3": 1.0}]


@settings(max_examples=30, deadline=None)
@given(steps=STEPS, start=st.integers(1, len(WORDS)))
def test_adding_new_terms_to_an_open_vocabulary_equals_a_fresh_build(tmp_path_factory, steps, start):
    """The first documents use a few words, later ones more (as a growing collection does);
    each batch is read with its own vocabulary or with the index's, grown."""
    path = tmp_path_factory.mktemp("open") / "idx"
    index = create_segmented(path, kind="exact", small_segment=4, max_segments=2)
    first = {f"s{i}": {WORDS[(i * 7) % start]: 1.0 + i} for i in range(3)}
    index.add(open_docs(first))
    live = dict(first)
    rng = np.random.default_rng(len(steps))
    for number, step in enumerate(steps):
        if step[0] == "add":
            docs = {f"n{number}-{i}": vector for i, vector in enumerate(step[1])}
            index.add(open_docs(docs, index.vocab if step[2] else None))
            live.update(docs)
        elif step[0] == "delete":
            if not live:
                continue
            ids = list(live)
            doomed = [ids[i] for i in rng.choice(len(ids), max(1, round(step[1] * len(ids))), replace=False)]
            index.delete(doomed)
            for doc_id in doomed:
                del live[doc_id]
        elif step[0] == "compact":
            index.compact()
        else:
            index = load_segmented(path, verify=True)
        assert_same_as_fresh(index, live, QUERIES)
    reopened = sparseir.load_index(path, verify=True)
    assert reopened.vocab.open
    used = {term for vector in live.values() for term in vector}
    assert used <= set(reopened.vocab.terms)
    for segment in reopened.segments:  # a prefix each: term ids never change
        assert reopened.vocab.terms[:len(segment.vocab)] == segment.vocab.terms
    assert_same_as_fresh(reopened, live, QUERIES)


@pytest.mark.parametrize("kind", ["exact", "blockmax", "sindi", "seismic", "saat"])
def test_new_terms_are_found_in_every_kind_and_old_segments_skip_them(tmp_path, kind):
    """A segment of the index's kind built over 3 terms, then one over 6; queries naming the
    new terms go to the first segment too, which must drop them (its arrays know 3 terms)."""
    params = {"sindi": {"doc_prune_ratio": 0.0}, "seismic": {"summary_energy": 1.0}}.get(kind, {})
    knobs = {"sindi": {"query_prune_ratio": 0.0}}.get(kind, {})
    path = tmp_path / "idx"
    index = create_segmented(path, kind=kind, small_segment=0, max_segments=8, **params)
    old = {"a": {"red": 1.0, "green": 2.0}, "b": {"blue": 3.0}, "c": {"red": 0.5, "blue": 0.5}}
    new = {"d": {"cyan": 4.0, "red": 1.5}, "e": {"magenta": 2.0}, "f": {"yellow": 1.0, "green": 1.0}}
    index.add(open_docs(old))
    index.add(open_docs(new))  # its own vocabulary: cyan, red, magenta, yellow, green
    assert index.vocab.terms == ["red", "green", "blue", "cyan", "magenta", "yellow"]
    assert [len(segment.vocab) for segment in index.segments] == [3, 6]
    queries = [{"cyan": 1.0}, {"magenta": 1.0, "red": 1.0}, {"yellow": 2.0, "blue": 1.0}, {"nowhere": 1.0}]
    expected = [["d"], ["e", "d", "a", "c"], ["b", "f", "c"], []]
    for opened in (index, load_segmented(path, verify=True)):
        scores, rows = opened.search(queries, k=K, **knobs)
        got = [[str(opened.doc_ids[row]) for row in found[found >= 0]] for found in rows]
        assert got == expected
        assert np.all(opened.doc_frequency() == [3, 2, 2, 1, 1, 1])
    index.compact()
    assert [len(segment.vocab) for segment in index.segments] == [6]
    _, rows = index.search(queries, k=K, **knobs)
    assert [[str(index.doc_ids[row]) for row in found[found >= 0]] for found in rows] == expected


def test_a_fixed_vocabulary_does_not_grow(tmp_path):
    path = tmp_path / "idx"
    index = create_segmented(path, kind="exact")
    index.add(batch(1, 5, "a"))
    other = sparseir.SparseVectors.from_dicts([{"t1": 1.0, "brand-new": 2.0}], ids=["x"],
                                              vocab=sparseir.Vocabulary.growing())
    with pytest.raises(sparseir.ParameterError) as error:
        index.add(other)
    assert "fixed" in one_line(error)
    assert len(index.vocab) == N_TERMS and not list(path.glob("vocab.*"))


def test_the_cli_grows_an_open_vocabulary_through_add_compact_and_search(tmp_path):
    first = {"d1": {"apple": 1.0, "pie": 2.0}, "d2": {"banana": 1.5}, "d3": {"apple": 0.5, "banana": 0.5}}
    second = {"d4": {"cherry": 3.0, "apple": 1.0}, "d5": {"durian": 2.0, "pie": 0.25}}
    third = {"d6": {"elderberry": 1.0, "cherry": 1.0}}
    queries = write_jsonl(tmp_path / "queries.jsonl", {
        "q1": {"cherry": 1.0}, "q2": {"durian": 1.0, "apple": 1.0}, "q3": {"elderberry": 2.0, "pie": 1.0},
        "q4": {"apple": 1.0, "banana": 1.0, "unseen": 5.0}})
    index_dir = tmp_path / "idx"
    result = run("index", write_jsonl(tmp_path / "first.jsonl", first), "-o", index_dir, "--segmented", "--vocab",
                 "open", "--small-segment", "1")
    assert result.exit_code == 0, result.output

    def same_run_as_fresh(live: dict, name: str) -> None:
        fresh = tmp_path / f"fresh-{name}"
        assert run("index", write_jsonl(tmp_path / f"{name}.jsonl", live), "-o", fresh, "--vocab", "open"
                   ).exit_code == 0
        for directory, out in ((index_dir, f"segmented-{name}.trec"), (fresh, f"fresh-{name}.trec")):
            result = run("search", directory, queries, "-k", "3", "-o", tmp_path / out)
            assert result.exit_code == 0, result.output
        got = [line.split() for line in (tmp_path / f"segmented-{name}.trec").read_text().splitlines()]
        want = [line.split() for line in (tmp_path / f"fresh-{name}.trec").read_text().splitlines()]
        assert [line[:5] for line in got] == [line[:5] for line in want]  # query, Q0, id, rank, score

    for number, more in enumerate((second, third), start=2):
        result = run("add", index_dir, write_jsonl(tmp_path / f"more{number}.jsonl", more))
        assert result.exit_code == 0, result.output
    live = {**first, **second, **third}
    same_run_as_fresh(live, "added")
    assert run("delete", index_dir, "d1").exit_code == 0
    del live["d1"]
    assert run("compact", index_dir).exit_code == 0
    same_run_as_fresh(live, "compacted")
    result = run("info", index_dir)
    assert "vocabulary      open (6 terms)" in result.output, result.output


def test_a_term_a_vocabulary_file_cannot_hold_is_refused_before_any_write(tmp_path):
    path = tmp_path / "idx"
    index = create_segmented(path, kind="exact")
    index.add(open_docs({"a": {"apple": 1.0}}))
    generation = index.generation
    with pytest.raises(sparseir.ParameterError) as error:
        index.add(open_docs({"b": {"two\nlines": 1.0}}))
    assert "line break" in one_line(error)
    assert load_segmented(path).generation == generation and index.vocab.terms == ["apple"]
    empty = create_segmented(tmp_path / "empty", kind="exact")
    with pytest.raises(sparseir.ParameterError) as error:
        empty.add(open_docs({"b": {"two\nlines": 1.0}}))
    assert "line break" in one_line(error) and not empty.has_vocab
