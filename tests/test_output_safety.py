"""Outputs never destroy what sparseir did not write.

Every writing command (index, search -o, encode, binarize, tune, bench, demo) refuses an
output that is, holds or lies inside one of its inputs, and --overwrite replaces only what
sparseir writes there: an index directory holding nothing else, an empty directory, or a
regular file. Refusals are one line and exit 1, come before the long work, and leave the
file tree exactly as it was (the user's files, and no temporaries). ``irds:`` lookups of an
unknown id create nothing under IR_DATASETS_HOME.
"""

import errno
import json
import os
import sys

import pytest
from hypothesis import given, strategies as st
from click.testing import CliRunner

import sparseir
from sparseir import InputError
from sparseir.cli import cli
from sparseir.fileio import atomic_directory, check_output, check_replaceable, index_entries
from sparseir.sharded import build_sharded

DOCS = ('{"id": "d1", "vector": {"cat": 1.0, "dog": 0.5}}\n'
        '{"id": "d2", "vector": {"dog": 2.0}}\n'
        '{"id": "d3", "vector": {"fish": 1.0, "cat": 0.25}}\n')
QUERIES = '{"id": "q1", "vector": {"dog": 1.0}}\n{"id": "q2", "vector": {"cat": 2.0, "fish": 1.0}}\n'
THESIS = "\\documentclass{article} my thesis\n"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_failure(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    return result.output


def tree(root) -> dict:
    """Every file (with its bytes) and directory under `root`, hidden ones included."""
    found = {}
    for directory, names, files in os.walk(root):
        for name in names:
            found[os.path.relpath(os.path.join(directory, name), root)] = "<dir>"
        for name in files:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, root)] = "<fifo>" if not os.path.isfile(path) else open(path, "rb").read()
    return found


def refused_leaving_all(root, *args) -> str:
    """Run the command: it must fail with one line and leave every file under `root` as it was."""
    before = tree(root)
    message = one_line_failure(run(*args))
    assert tree(root) == before
    return message


@pytest.fixture
def work(tmp_path):
    (tmp_path / "docs.jsonl").write_text(DOCS)
    (tmp_path / "q.jsonl").write_text(QUERIES)
    assert run("index", tmp_path / "docs.jsonl", "-o", tmp_path / "IDX").exit_code == 0
    return tmp_path


# --- the tester's cases ------------------------------------------------------------------------


def test_index_over_the_directory_of_its_input_keeps_the_input_and_the_thesis(work):
    sb2 = work / "sb2"
    sb2.mkdir()
    (sb2 / "more.jsonl").write_text(DOCS)
    (sb2 / "thesis.tex").write_text(THESIS)
    message = refused_leaving_all(work, "index", sb2 / "more.jsonl", "-o", sb2, "--overwrite")
    assert "holds an input" in message and "more.jsonl" in message
    assert (sb2 / "thesis.tex").read_text() == THESIS and (sb2 / "more.jsonl").read_text() == DOCS


def test_overwrite_replaces_no_directory_that_is_not_an_index(work):
    (work / "sb2").mkdir()
    (work / "sb2" / "thesis.tex").write_text(THESIS)
    message = refused_leaving_all(work, "index", work / "docs.jsonl", "-o", work / "sb2", "--overwrite")
    assert "holds no sparseir index (thesis.tex)" in message and "will not replace it" in message


def test_search_refuses_a_run_inside_the_index_it_searches(work):
    message = refused_leaving_all(work, "search", work / "IDX", work / "q.jsonl", "-k", 1,
                                  "-o", work / "IDX" / "manifest.json", "--overwrite")
    assert "inside an input" in message
    sparseir.load_index(work / "IDX", verify=True)
    # Nor a new file in it.
    refused_leaving_all(work, "search", work / "IDX", work / "q.jsonl", "-k", 1, "-o", work / "IDX" / "run.trec")


@pytest.mark.parametrize("output, message", [(".", "is the current directory"),
                                             ("..", "is the current directory or one above it")])
def test_current_directory_and_its_parent_are_never_replaced(tmp_path, monkeypatch, output, message):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "docs.jsonl").write_text(DOCS)
    here = tmp_path / "work" / "a" / "b"
    here.mkdir(parents=True)
    (here / "notes.txt").write_text("mine\n")
    monkeypatch.chdir(here)
    assert message in refused_leaving_all(tmp_path, "index", tmp_path / "data" / "docs.jsonl", "-o", output,
                                          "--overwrite")
    # The API: even an empty current directory, which an index could otherwise replace.
    (here / "notes.txt").unlink()
    index = sparseir.build_index(sparseir.read_vectors(tmp_path / "data" / "docs.jsonl"))
    before = tree(tmp_path)
    with pytest.raises(InputError, match=message):
        index.save(output, overwrite=True)
    assert tree(tmp_path) == before


def test_root_and_mount_points_are_never_replaced():
    with pytest.raises(InputError, match="is the current directory or one above it"):
        check_replaceable("/", "directory")
    mount = next((path for path in ("/proc", "/sys", "/dev") if os.path.ismount(path)), None)
    if mount is None:
        pytest.skip("no mount point to try")
    with pytest.raises(InputError, match="is a mount point"):
        check_replaceable(mount, "directory")


# --- what --overwrite may replace -----------------------------------------------------------------


def test_overwrite_replaces_an_index_and_an_empty_directory(work):
    assert run("index", work / "q.jsonl", "-o", work / "IDX", "--overwrite").exit_code == 0
    assert sparseir.load_index(work / "IDX").n_docs == 2
    (work / "empty").mkdir()
    assert run("index", work / "docs.jsonl", "-o", work / "empty", "--overwrite").exit_code == 0
    assert sparseir.load_index(work / "empty").n_docs == 3
    assert [path.name for path in work.iterdir() if path.name.startswith(".")] == []


def test_an_index_holding_a_users_file_is_not_replaced(work):
    (work / "IDX" / "notes.txt").write_text("mine\n")
    message = refused_leaving_all(work, "index", work / "q.jsonl", "-o", work / "IDX", "--overwrite")
    assert "holds a sparseir index and also files sparseir did not write (notes.txt)" in message


@pytest.mark.parametrize("layout", ["sharded", "segmented"])
def test_sharded_and_segmented_indexes_are_replaced_but_not_with_a_users_file(work, layout):
    options = ["--shards", 2] if layout == "sharded" else ["--segmented"]
    assert run("index", work / "docs.jsonl", "-o", work / "other", *options).exit_code == 0
    assert index_entries(work / "other")[0] == f"{layout} sparseir index"
    (work / "other" / "notes.txt").write_text("mine\n")
    assert "notes.txt" in refused_leaving_all(work, "index", work / "q.jsonl", "-o", work / "other", "--overwrite")
    (work / "other" / "notes.txt").unlink()
    assert run("index", work / "q.jsonl", "-o", work / "other", "--overwrite").exit_code == 0
    assert sparseir.load_index(work / "other").n_docs == 2


def test_a_file_output_replaces_only_a_regular_file(work):
    (work / "fifo").mkdir()
    (work / "dir.jsonl").mkdir()
    os.mkfifo(work / "fifo" / "pipe")
    message = refused_leaving_all(work, "binarize", work / "docs.jsonl", "--top-k", 1, "-o", work / "fifo" / "pipe",
                                  "--overwrite")
    assert "not a regular file" in message
    vectors = sparseir.read_vectors(work / "docs.jsonl")
    index = sparseir.load_index(work / "IDX")
    rows = [[0]] * 2
    before = tree(work)
    with pytest.raises(InputError, match="is a directory; sparseir will not replace it with a file"):
        sparseir.write_vectors(vectors, work / "dir.jsonl", overwrite=True)
    from sparseir.formats import write_run

    with pytest.raises(InputError, match="is a directory"):
        write_run(work / "IDX", ["q1", "q2"], index.doc_ids, rows, [[1.0]] * 2, overwrite=True)
    with pytest.raises(InputError, match="is a file; sparseir will not replace it with a directory"):
        index.save(work / "docs.jsonl", overwrite=True)
    assert tree(work) == before
    # A regular file is replaced.
    assert run("binarize", work / "docs.jsonl", "--top-k", 1, "-o", work / "q.jsonl", "--overwrite").exit_code == 0
    assert sparseir.read_vectors(work / "q.jsonl").nnz == 3


# --- every writing command keeps its inputs apart from its output -------------------------------


def test_another_name_for_an_input_is_still_the_input(work):
    (work / "link.jsonl").symlink_to(work / "docs.jsonl")
    message = refused_leaving_all(work, "binarize", work / "docs.jsonl", "--top-k", 1, "-o", work / "link.jsonl",
                                  "--overwrite")
    assert "is an input" in message
    refused_leaving_all(work, "binarize", work / "link.jsonl", "--top-k", 1, "-o", work / "docs.jsonl", "--overwrite")
    (work / "IDX-link").symlink_to(work / "IDX")
    refused_leaving_all(work, "search", work / "IDX-link", work / "q.jsonl", "-k", 1,
                        "-o", work / "IDX" / "manifest.json", "--overwrite")


def test_directories_and_globs_of_parts_are_inputs(work):
    parts = work / "parts"
    parts.mkdir()
    (parts / "part-0.jsonl").write_text(DOCS)
    (parts / "part-1.jsonl").write_text(QUERIES.replace("q", "e"))
    assert "inside an input" in refused_leaving_all(work, "index", parts, "-o", parts / "index")
    assert "holds an input" in refused_leaving_all(work, "index", parts / "*.jsonl", "-o", parts, "--overwrite")
    assert "holds an input" in refused_leaving_all(work, "index", parts / "part-?.jsonl", "-o", parts, "--overwrite",
                                                   "--memory-budget", "1M")


def test_the_out_of_core_api_refuses_to_write_over_its_input(work):
    parts = work / "parts"
    parts.mkdir()
    (parts / "part-0.jsonl").write_text(DOCS)
    before = tree(work)
    with pytest.raises(InputError, match="holds an input"):
        sparseir.build_index_from(parts / "part-0.jsonl", parts, overwrite=True)
    with pytest.raises(InputError, match="inside an input"):
        sparseir.build_index_from(parts, parts / "index")
    assert tree(work) == before


def test_sharded_build_replaces_no_users_directory(work):
    (work / "sb2").mkdir()
    (work / "sb2" / "thesis.tex").write_text(THESIS)
    before = tree(work)
    with pytest.raises(InputError, match="holds no sparseir index"):
        build_sharded(sparseir.read_vectors(work / "docs.jsonl"), work / "sb2", shards=2, overwrite=True)
    assert tree(work) == before


def test_encode_refuses_to_write_over_its_collection_before_loading_a_model(work):
    (work / "collection.tsv").write_text("d1\tthe cat\nd2\ta dog\n")
    message = refused_leaving_all(work, "encode", work / "collection.tsv", "-o", work / "collection.tsv",
                                  "--overwrite")
    assert "is an input" in message


def test_tune_refuses_to_store_into_a_file_it_reads(work):
    message = refused_leaving_all(work, "tune", work / "IDX", work / "IDX" / "manifest.json",
                                  "--docs", work / "docs.jsonl")
    assert "is an input" in message


def test_bench_keeps_its_dataset_and_replaces_only_result_files(work):
    dataset = work / "dataset"
    (dataset / "vectors").mkdir(parents=True)
    (dataset / "vectors" / "collection.jsonl").write_text(DOCS)
    (dataset / "vectors" / "queries.jsonl").write_text(QUERIES)
    (work / "bench.toml").write_text('[[methods]]\nname = "exact"\nkind = "exact"\n')
    # The inputs are the files read: the dataset's, and the config.
    assert "holds an input" in refused_leaving_all(work, "bench", work / "bench.toml", "--dataset", dataset,
                                                   "-o", dataset, "--overwrite")
    assert "holds an input" in refused_leaving_all(work, "bench", work / "bench.toml", "--dataset", dataset,
                                                   "-o", dataset / "vectors", "--overwrite")
    assert "holds an input" in refused_leaving_all(work, "bench", work / "bench.toml", "--dataset", dataset,
                                                   "-o", work, "--overwrite")
    assert "holds an input" in refused_leaving_all(work, "bench", work / "bench.toml",
                                                   "--docs", dataset / "vectors" / "collection.jsonl",
                                                   "--queries", work / "q.jsonl", "-o", dataset / "vectors")
    (work / "out" / "results.json").mkdir(parents=True)
    assert "is a directory" in refused_leaving_all(work, "bench", work / "bench.toml", "--dataset", dataset,
                                                   "-o", work / "out", "--overwrite")


def test_demo_writes_only_into_a_new_empty_or_earlier_demo_directory(work, monkeypatch):
    (work / "mine").mkdir()
    (work / "mine" / "results.json").write_text('{"my": "results"}\n')
    message = refused_leaving_all(work, "demo", "-o", work / "mine")
    assert "did not write" in message


def test_a_failed_bench_leaves_no_directory_it_made(work):
    (work / "bench.toml").write_text('[[methods]]\nname = "exact"\nkind = "exact"\n')
    (work / "bad.jsonl").write_text('{"id": "q1", "vector": {"dog": 1.0}}\n{"id": "q2", "vector": \n')
    before = tree(work)
    result = run("bench", work / "bench.toml", "--docs", work / "docs.jsonl", "--queries", work / "bad.jsonl",
                 "-o", work / "new" / "results")
    assert result.exit_code == 1 and "bad.jsonl:2" in result.output
    assert tree(work) == before


# --- replacing leaves nothing behind ------------------------------------------------------------


@pytest.mark.parametrize("failing_call", [1, 2], ids=["moving-the-old-aside", "renaming-the-new-in"])
def test_a_failed_replacement_keeps_the_old_index_and_leaves_no_temporaries(work, monkeypatch, failing_call):
    import sparseir.fileio as fileio

    before = tree(work)
    real_replace, calls = os.replace, []

    def replace(source, target):
        calls.append(target)
        if len(calls) == failing_call:
            raise OSError(errno.EBUSY, "Device or resource busy", str(target))
        return real_replace(source, target)

    monkeypatch.setattr(fileio.os, "replace", replace)
    with pytest.raises(OSError):
        with atomic_directory(work / "IDX", overwrite=True) as tmp:
            (tmp / "manifest.json").write_text("{}")
    monkeypatch.undo()
    assert tree(work) == before
    sparseir.load_index(work / "IDX", verify=True)


def test_check_output_refuses_a_missing_parent_and_existing_outputs(work):
    with pytest.raises(InputError, match="parent directory does not exist"):
        check_output(work / "no" / "such" / "run.trec")
    with pytest.raises(InputError, match="already exists"):
        check_output(work / "IDX", kind="directory")
    assert check_output(work / "IDX", overwrite=True, kind="directory") == work / "IDX"
    assert check_output(work / "new.trec", inputs=["irds:beir/scifact", None, work / "q.jsonl"]) == work / "new.trec"


# --- ir_datasets' home ----------------------------------------------------------------------------


@pytest.fixture
def fresh_ir_datasets(monkeypatch):
    """ir_datasets not yet imported here, as in a new process."""
    pytest.importorskip("ir_datasets")
    for name in [name for name in sys.modules if name == "ir_datasets" or name.startswith("ir_datasets.")]:
        monkeypatch.delitem(sys.modules, name)


def test_an_unknown_irds_id_creates_nothing_in_the_home(work, monkeypatch, fresh_ir_datasets):
    home = work / "ir_datasets_home"
    monkeypatch.setenv("IR_DATASETS_HOME", str(home))
    message = one_line_failure(run("index", "irds:beir/scifac", "-o", work / "new"))
    assert "irds:beir/scifac: not an ir_datasets dataset id (did you mean beir/scifact" in message
    assert not home.exists() and not (work / "new").exists()
    (work / "run.trec").write_text("q1 Q0 d1 1 1.0 t\n")
    one_line_failure(run("eval", work / "run.trec", "no-such/dataset"))
    assert not home.exists()


@pytest.mark.parametrize("inside", [False, True])
def test_a_home_that_is_a_file_is_named_in_one_line(work, monkeypatch, fresh_ir_datasets, inside):
    (work / "home-file").write_text("not a directory\n")
    home = work / "home-file" / "sub" if inside else work / "home-file"
    monkeypatch.setenv("IR_DATASETS_HOME", str(home))
    message = one_line_failure(run("index", "irds:beir/scifact", "-o", work / "new"))
    assert f"IR_DATASETS_HOME={home}: " in message and "not a directory" in message
    assert (work / "home-file").read_text() == "not a directory\n"


def test_a_damaged_manifest_is_judged_without_a_crash(tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "manifest.json").write_text(json.dumps({"format": "sparseir-index", "arrays": [1, {"file": {}}],
                                                       "vocab": "vocab.txt"}))
    (damaged / "data.npy").write_text("x")
    with pytest.raises(InputError, match=r"also files sparseir did not write \(data.npy\)"):
        check_replaceable(damaged, "directory")
    (damaged / "manifest.json").write_text('{"format": "someone-elses"}')
    with pytest.raises(InputError, match="holds no sparseir index"):
        check_replaceable(damaged, "directory")


@given(st.lists(st.sampled_from("ab"), max_size=4), st.lists(st.sampled_from("ab"), max_size=4))
def test_an_output_is_refused_exactly_when_it_overlaps_an_input(output_parts, input_parts):
    from sparseir.fileio import check_apart

    base = "/no-such-base-dir"
    output, given_input = os.path.join(base, *output_parts), os.path.join(base, *input_parts)
    shorter = min(len(output_parts), len(input_parts))
    overlaps = output_parts[:shorter] == input_parts[:shorter]
    try:
        check_apart(output, [given_input])
        refused = False
    except InputError:
        refused = True
    assert refused == overlaps
