"""The CLI end to end, and its handling of bad input: one line, exit 1, no output left behind."""

import json

import pytest
from click.testing import CliRunner

import sparseir
from sparseir.cli import cli
from conftest import shared_vectors


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "docs.jsonl").write_text(
        '{"id": "d1", "vector": {"cat": 1.0, "dog": 0.5}}\n'
        '{"id": "d2", "vector": {"dog": 2.0}}\n'
        '{"id": "d3", "vector": {"fish": 1.0, "cat": 0.25}}\n')
    (tmp_path / "queries.jsonl").write_text(
        '{"id": "q1", "vector": {"dog": 1.0}}\n{"id": "q2", "vector": {"cat": 2.0, "fish": 1.0}}\n')
    return tmp_path


def test_index_search_info_end_to_end(workdir):
    assert run("index", workdir / "docs.jsonl", "-o", workdir / "ix").exit_code == 0
    result = run("search", workdir / "ix", workdir / "queries.jsonl", "-k", 2, "-o", workdir / "run.trec")
    assert result.exit_code == 0, result.output
    lines = (workdir / "run.trec").read_text().splitlines()
    assert lines == ["q1 Q0 d2 1 2 sparseir", "q1 Q0 d1 2 0.5 sparseir",
                     "q2 Q0 d1 1 2 sparseir", "q2 Q0 d3 2 1.5 sparseir"]
    info = run("info", workdir / "ix")
    assert info.exit_code == 0 and "exact" in info.output and "documents       3" in info.output
    assert "format version  1, array layout 1" in info.output
    assert json.loads(run("info", workdir / "ix", "--json").output)["kind"] == "exact"


def test_search_on_shared_collection_matches_api(tmp_path):
    path = shared_vectors("cranfield")
    assert run("index", path / "collection.jsonl.gz", "-o", tmp_path / "ix").exit_code == 0
    assert run("search", tmp_path / "ix", path / "queries.jsonl.gz", "-k", 5, "-o", tmp_path / "run.tsv",
               "--run-format", "msmarco", "--threads", 1).exit_code == 0
    index = sparseir.load_index(tmp_path / "ix")
    queries = sparseir.read_vectors(path / "queries.jsonl.gz")
    _, rows = index.search(queries, k=5)
    expected = [f"{qid}\t{index.doc_ids[r]}\t{rank}" for qid, rr in zip(queries.ids, rows)
                for rank, r in enumerate(rr, 1) if r >= 0]
    assert (tmp_path / "run.tsv").read_text().splitlines() == expected


BAD_VECTOR_FILES = {
    "empty": ("", "no JSON vector line found"),
    "malformed": ('{"id": "d1", "vector": {"cat": 1.0}}\n{"id": "d2", "vector": \n', r"bad.jsonl:2: invalid JSON"),
    "nan": ('{"id": "d1", "vector": {"cat": NaN}}\n', r"bad.jsonl:1: weight of 'cat' is not finite"),
    "inf": ('{"id": "d1", "vector": {"cat": Infinity}}\n', r"bad.jsonl:1: weight of 'cat' is not finite"),
    "negative": ('{"id": "d1", "vector": {"cat": -1}}\n', r"bad.jsonl:1: weight of 'cat' is negative"),
    "non-numeric": ('{"id": "d1", "vector": {"cat": "x"}}\n', r"bad.jsonl:1: weight of 'cat' is not a number"),
    "duplicate id": ('{"id": "d1", "vector": {"cat": 1}}\n{"id": "d1", "vector": {"dog": 1}}\n',
                     r"bad.jsonl:2: duplicate id 'd1'"),
    "no vector": ('{"id": "d1"}\n', r'bad.jsonl:1: missing or non-object field "vector"'),
}


@pytest.mark.parametrize("case", sorted(BAD_VECTOR_FILES))
def test_bad_vector_files_fail_cleanly(tmp_path, case):
    content, message = BAD_VECTOR_FILES[case]
    (tmp_path / "bad.jsonl").write_text(content)
    result = run("index", tmp_path / "bad.jsonl", "-o", tmp_path / "ix")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and __import__("re").search(message, error_lines[0]), result.output
    assert not (tmp_path / "ix").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def test_index_takes_integer_dimensions_without_vocab_option(tmp_path):
    """vocab "auto", the default: terms outside BERT WordPiece ("70000") give an open vocabulary."""
    (tmp_path / "docs.jsonl").write_text('{"id": "d1", "vector": {"17": 0.5, "70000": 1.0}}\n'
                                         '{"id": "d2", "vector": {"17": 2.0}}\n'
                                         '{"id": "d3", "vector": {"12345": 1.0, "70000": 0.25}}\n')
    (tmp_path / "queries.jsonl").write_text('{"id": "q1", "vector": {"70000": 2.0, "17": 1.0}}\n')
    result = run("index", tmp_path / "docs.jsonl", "-o", tmp_path / "ix")
    assert result.exit_code == 0, result.output
    index = sparseir.load_index(tmp_path / "ix")
    assert index.vocab.open and sorted(index.vocab.terms) == ["12345", "17", "70000"]
    result = run("search", tmp_path / "ix", tmp_path / "queries.jsonl", "-k", 3, "-o", tmp_path / "run.trec")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run.trec").read_text().splitlines() == [
        "q1 Q0 d1 1 2.5 sparseir", "q1 Q0 d2 2 2 sparseir", "q1 Q0 d3 3 0.5 sparseir"]


def test_explicit_bert_vocab_rejects_unknown_terms_with_a_hint(tmp_path):
    (tmp_path / "docs.jsonl").write_text('{"id": "d1", "vector": {"cat": 1}}\n'
                                         '{"id": "d2", "vector": {"Kätzchen!!": 1}}\n')
    result = run("index", tmp_path / "docs.jsonl", "-o", tmp_path / "ix", "--vocab", "bert")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert ("docs.jsonl:2: unknown term 'Kätzchen!!' (not in the bert-base-uncased vocabulary; "
            "pass vocab='open' / --vocab open for vectors over another vocabulary)") in result.output
    assert not (tmp_path / "ix").exists()


def test_skip_bad_lines_counts_them(tmp_path):
    (tmp_path / "docs.jsonl").write_text('{"id": "d1", "vector": {"cat": 1}}\nnot json\n{"id": "d2", "vector": {"dog": 1}}\n')
    result = run("index", tmp_path / "docs.jsonl", "-o", tmp_path / "ix", "--skip-bad-lines")
    assert result.exit_code == 0 and "skipped 1 bad line" in result.output
    assert sparseir.load_index(tmp_path / "ix").n_docs == 2


@pytest.mark.parametrize("args, message", [
    (["-k", "0"], "-k must be between 1 and the collection size"),
    (["-k", "4"], "-k must be between 1 and the collection size"),
    (["-k", "1", "--threads", "0"], "threads must be an integer"),
])
def test_bad_search_parameters(workdir, args, message):
    run("index", workdir / "docs.jsonl", "-o", workdir / "ix")
    result = run("search", workdir / "ix", workdir / "queries.jsonl", "-o", workdir / "run.trec", *args)
    assert result.exit_code == 1 and message in result.output
    assert not (workdir / "run.trec").exists()


def test_missing_files_and_non_index_directories(workdir):
    result = run("index", workdir / "nope.jsonl", "-o", workdir / "ix")
    assert result.exit_code == 1 and "nope.jsonl: no such file" in result.output
    result = run("search", workdir, workdir / "queries.jsonl", "-o", workdir / "run.trec")
    assert result.exit_code == 1 and "not a sparseir index" in result.output
    assert not (workdir / "run.trec").exists()


def test_newer_index_version_from_cli(workdir):
    run("index", workdir / "docs.jsonl", "-o", workdir / "ix")
    manifest = json.loads((workdir / "ix" / "manifest.json").read_text())
    manifest["format_version"] += 1
    (workdir / "ix" / "manifest.json").write_text(json.dumps(manifest))
    result = run("search", workdir / "ix", workdir / "queries.jsonl", "-o", workdir / "run.trec")
    assert result.exit_code == 1 and "newer than this sparseir reads" in result.output


def test_existing_outputs_are_not_replaced_without_overwrite(workdir):
    run("index", workdir / "docs.jsonl", "-o", workdir / "ix")
    result = run("index", workdir / "docs.jsonl", "-o", workdir / "ix")
    assert result.exit_code == 1 and "already exists" in result.output
    (workdir / "run.trec").write_text("keep me\n")
    result = run("search", workdir / "ix", workdir / "queries.jsonl", "-o", workdir / "run.trec")
    assert result.exit_code == 1 and (workdir / "run.trec").read_text() == "keep me\n"
    assert run("search", workdir / "ix", workdir / "queries.jsonl", "-k", 2, "-o", workdir / "run.trec",
               "--overwrite").exit_code == 0


def test_query_vocabulary_mismatch(workdir):
    run("index", workdir / "docs.jsonl", "-o", workdir / "ix", "--vocab", "open")
    (workdir / "q.jsonl").write_text('{"id": "q", "vector": {"dog": 1.0, "unseen": 3.0}}\n')
    # An open vocabulary: the unseen query term simply matches nothing.
    assert run("search", workdir / "ix", workdir / "q.jsonl", "-k", 1, "-o", workdir / "run.trec").exit_code == 0
    assert (workdir / "run.trec").read_text().split()[2] == "d2"
    run("index", workdir / "docs.jsonl", "-o", workdir / "bert")
    (workdir / "q2.jsonl").write_text('{"id": "q", "vector": {"dog": 1.0, "UNSEEN-term": 3.0}}\n')
    result = run("search", workdir / "bert", workdir / "q2.jsonl", "-k", 1, "-o", workdir / "run2.trec")
    assert result.exit_code == 1 and "q2.jsonl:1: unknown term 'UNSEEN-term'" in result.output


def test_module_entry_point():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "sparseir", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "sparseir" in result.stdout


def test_empty_query_vectors(workdir):
    run("index", workdir / "docs.jsonl", "-o", workdir / "ix")
    (workdir / "q.jsonl").write_text('{"id": "q1", "vector": {"dog": 1.0}}\n{"id": "q2", "vector": {}}\n')
    result = run("search", workdir / "ix", workdir / "q.jsonl", "-k", 1, "-o", workdir / "run.trec")
    assert result.exit_code == 1 and "q.jsonl: query 'q2' (record 2) has no terms" in result.output
    assert not (workdir / "run.trec").exists()
    result = run("search", workdir / "ix", workdir / "q.jsonl", "-k", 1, "-o", workdir / "run.trec", "--skip-bad-lines")
    assert result.exit_code == 0 and "skipped 1 bad line" in result.output
    assert (workdir / "run.trec").read_text().split()[:3] == ["q1", "Q0", "d2"]


def test_sharded_index_searches_like_a_single_one(tmp_path):
    path = shared_vectors("cisi")
    for name, extra in (("single", []), ("sharded", ["--shards", 3, "--partition", "hash"])):
        assert run("index", path / "collection.jsonl.gz", "-o", tmp_path / name, *extra).exit_code == 0
        assert run("search", tmp_path / name, path / "queries.jsonl.gz", "-o", tmp_path / f"{name}.trec").exit_code == 0
    assert (tmp_path / "single.trec").read_text() == (tmp_path / "sharded.trec").read_text()
    assert "--ray" in run("search", "--help").output


def test_idf_queries_on_a_sharded_index_weigh_like_on_a_single_one(tmp_path):
    pytest.importorskip("transformers")
    path = shared_vectors("cisi").parent
    queries = tmp_path / "queries.tsv"
    queries.write_text("".join(path.joinpath("queries.tsv").read_text().splitlines(keepends=True)[:5]))
    for name, extra in (("single", []), ("sharded", ["--shards", 3])):
        assert run("index", path / "vectors" / "collection.jsonl.gz", "-o", tmp_path / name, *extra).exit_code == 0
        result = run("search", tmp_path / name, queries, "-k", 5, "-o", tmp_path / f"{name}.trec",
                     "--query-encoder", "idf")
        assert result.exit_code == 0, result.output
    assert (tmp_path / "single.trec").read_text() == (tmp_path / "sharded.trec").read_text()


def test_raw_text_queries_with_splade_and_idf(tmp_path):
    pytest.importorskip("torch")
    path = shared_vectors("cisi").parent
    assert run("index", path / "vectors" / "collection.jsonl.gz", "-o", tmp_path / "ix").exit_code == 0
    queries = tmp_path / "queries.tsv"
    queries.write_text("".join(path.joinpath("queries.tsv").read_text().splitlines(keepends=True)[:5]))
    for encoder in ("splade", "idf"):
        result = run("search", tmp_path / "ix", queries, "-k", 3, "-o", tmp_path / f"{encoder}.trec",
                     "--query-encoder", encoder)
        assert result.exit_code == 0, result.output
        assert len((tmp_path / f"{encoder}.trec").read_text().splitlines()) == 15
    # Pre-encoded query vectors and live SPLADE encoding of the same texts rank alike.
    live = [line.split()[2] for line in (tmp_path / "splade.trec").read_text().splitlines()]
    run("search", tmp_path / "ix", path / "vectors" / "queries.jsonl.gz", "-k", 3, "-o", tmp_path / "pre.trec")
    pre = [line.split()[2] for line in (tmp_path / "pre.trec").read_text().splitlines()[:15]]
    assert live == pre


def test_info_on_a_sharded_index(workdir):
    assert run("index", workdir / "docs.jsonl", "-o", workdir / "ix", "--shards", 2).exit_code == 0
    result = run("info", workdir / "ix")
    assert result.exit_code == 0 and "2 shards (contiguous partition)" in result.output
    assert json.loads(run("info", workdir / "ix", "--json").output)["format"] == "sparseir-sharded-index"


def test_version_and_info_name_the_optional_parts_present():
    from importlib import metadata

    for args in (["--version"], ["info"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"sparseir {sparseir.__version__}\n")
        assert f"numba {metadata.version('numba')}" in result.output
        for extra in ("encode", "eval", "bench", "ray"):
            assert f"  {extra} " in result.output
    versions = json.loads(CliRunner().invoke(cli, ["info", "--json"]).output)
    assert versions["sparseir"] == sparseir.__version__ and versions["core"]["numpy"] == metadata.version("numpy")
