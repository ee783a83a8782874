"""``irds:<dataset id>`` sources: exactly the records of the equivalent file, read offline.

ir_datasets gets local copies of the shared collections in its own file layout under a
temporary IR_DATASETS_HOME (the BEIR zip; MS MARCO's cached query and qrels files). The
network is closed for every test here, so a download attempt fails the test.
"""

import itertools
import json
import socket
import sys
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import SHARED_DATA
from sparseir import InputError, read_documents, read_qrels, read_queries, read_vectors
from sparseir.cli import cli
from sparseir.datasets import open_dataset
from sparseir.evaluate import evaluate, load_qrels

# Slow: run with -m slow (CI runs both sets).
pytestmark = pytest.mark.slow

pytest.importorskip("ir_datasets")

SCIFACT = SHARED_DATA / "scifact"
MSMARCO_TOPICS = SHARED_DATA / "msmarco-passage-topics"
TRAIN_QUERY = {"_id": "train-1", "text": "a claim from the training split", "metadata": {}}


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a test of irds: sources tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def irds_home(tmp_path, monkeypatch):
    """An empty IR_DATASETS_HOME, with ir_datasets imported afresh: its datasets fix their
    paths under the home when the package is first imported."""
    if not SCIFACT.exists() or not MSMARCO_TOPICS.exists():
        pytest.skip("shared scifact / msmarco-passage-topics not available")
    home = tmp_path / "ir_datasets_home"
    monkeypatch.setenv("IR_DATASETS_HOME", str(home))
    for name in [name for name in sys.modules if name == "ir_datasets" or name.startswith("ir_datasets.")]:
        monkeypatch.delitem(sys.modules, name)
    return home


def texts(path):
    return [line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines()]


def lay_out_scifact(home, n_docs=None, n_queries=None):
    """beir/scifact as ir_datasets keeps it: the BEIR zip at beir/scifact/source.zip.

    BEIR documents join title and text with one space, as the shared collection.tsv does; a
    text split at its first space gives back exactly the shared text. One query and its
    qrels are in the train split only, so beir/scifact/test must leave it out.
    """
    docs = texts(SCIFACT / "collection.tsv")[:n_docs]
    queries = texts(SCIFACT / "queries.tsv")[:n_queries]
    kept = {query_id for query_id, _ in queries}
    qrels = [line.split() for line in (SCIFACT / "qrels.txt").read_text().splitlines()]
    qrels = [(query_id, doc_id, relevance) for query_id, _, doc_id, relevance in qrels if query_id in kept]
    corpus = []
    for doc_id, text in docs:
        title, _, rest = text.partition(" ")
        corpus.append({"_id": doc_id, "title": title, "text": rest, "metadata": {}})
    header = "query-id\tcorpus-id\tscore\n"
    (home / "beir" / "scifact").mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(home / "beir" / "scifact" / "source.zip", "w") as archive:
        archive.writestr("scifact/corpus.jsonl", "".join(json.dumps(doc) + "\n" for doc in corpus))
        archive.writestr("scifact/queries.jsonl", "".join(json.dumps({"_id": query_id, "text": text, "metadata": {}})
                                                          + "\n" for query_id, text in queries)
                         + json.dumps(TRAIN_QUERY) + "\n")
        archive.writestr("scifact/qrels/test.tsv", header + "".join(f"{q}\t{d}\t{r}\n" for q, d, r in qrels))
        archive.writestr("scifact/qrels/train.tsv", header + f"train-1\t{docs[0][0]}\t1\n")
    return docs, queries


def lay_out_msmarco_dev_small(home):
    """msmarco-passage/dev/small's queries and qrels where ir_datasets caches them once
    extracted from collectionandqueries.tar.gz."""
    target = home / "msmarco-passage" / "dev" / "small"
    target.mkdir(parents=True)
    (target / "queries.tsv").write_bytes((MSMARCO_TOPICS / "queries.dev-small.tsv").read_bytes())
    (target / "qrels").write_bytes((MSMARCO_TOPICS / "qrels.dev-small.txt").read_bytes())


def test_scifact_records_equal_the_shared_files(irds_home):
    lay_out_scifact(irds_home)
    assert list(read_documents("irds:beir/scifact")) == list(read_documents(SCIFACT / "collection.tsv"))
    assert list(read_queries("irds:beir/scifact/test")) == list(read_queries(SCIFACT / "queries.tsv"))
    assert list(read_qrels("irds:beir/scifact/test")) == list(read_qrels(SCIFACT / "qrels.txt"))
    every_query = list(read_queries("irds:beir/scifact"))
    assert len(every_query) == 301 and every_query[-1] == (TRAIN_QUERY["_id"], TRAIN_QUERY["text"])


def test_msmarco_dev_small_records_equal_the_shared_files(irds_home):
    lay_out_msmarco_dev_small(irds_home)
    queries = list(read_queries("irds:msmarco-passage/dev/small"))
    assert queries == list(read_queries(MSMARCO_TOPICS / "queries.dev-small.tsv")) and len(queries) == 6980
    qrels = list(read_qrels("irds:msmarco-passage/dev/small"))
    assert qrels == list(read_qrels(MSMARCO_TOPICS / "qrels.dev-small.txt")) and len(qrels) == 7437
    assert load_qrels("msmarco-passage/dev/small") == qrels  # the bare id, as before


def write_run(path, qrels):
    """A run that finds a relevant document at rank 2, after a wrong one, for every other query."""
    first_relevant = {}
    for qrel in qrels:
        first_relevant.setdefault(qrel.query_id, qrel.doc_id)
    path.write_text("".join(f"{query_id} Q0 wrong-{query_id} 1 2.0 t\n{query_id} Q0 {doc_id} 2 1.0 t\n"
                            for query_id, doc_id in itertools.islice(first_relevant.items(), 0, None, 2)))


def test_eval_with_an_irds_id_equals_eval_with_the_qrels_file(irds_home, tmp_path):
    pytest.importorskip("ir_measures")
    lay_out_msmarco_dev_small(irds_home)
    write_run(tmp_path / "run.trec", list(read_qrels(MSMARCO_TOPICS / "qrels.dev-small.txt")))
    from_file = run("eval", tmp_path / "run.trec", MSMARCO_TOPICS / "qrels.dev-small.txt", "--per-query")
    from_irds = run("eval", tmp_path / "run.trec", "irds:msmarco-passage/dev/small", "--per-query")
    assert from_file.exit_code == 0 and from_irds.exit_code == 0, from_irds.output
    assert from_irds.output == from_file.output and "RR@10" in from_file.output
    assert evaluate(tmp_path / "run.trec", "irds:msmarco-passage/dev/small").aggregate["RR@10"] == pytest.approx(0.25, 1e-2)


def test_encode_index_search_from_irds_equal_the_same_from_files(irds_home, tmp_path):
    pytest.importorskip("torch")
    docs, queries = lay_out_scifact(irds_home, n_docs=12, n_queries=4)
    (tmp_path / "collection.tsv").write_text("".join(f"{doc_id}\t{text}\n" for doc_id, text in docs))
    (tmp_path / "queries.tsv").write_text("".join(f"{query_id}\t{text}\n" for query_id, text in queries))
    for name, collection in (("irds", "irds:beir/scifact"), ("file", tmp_path / "collection.tsv")):
        assert run("encode", collection, "-o", tmp_path / f"{name}.parquet").exit_code == 0
    from_irds, from_file = read_vectors(tmp_path / "irds.parquet"), read_vectors(tmp_path / "file.parquet")
    assert list(from_irds.ids) == [doc_id for doc_id, _ in docs] == list(from_file.ids)
    for array in ("offsets", "terms", "weights"):
        np.testing.assert_array_equal(getattr(from_irds, array), getattr(from_file, array))

    assert run("encode", "--query", "irds:beir/scifact/test", "-o", tmp_path / "queries.jsonl").exit_code == 0
    assert list(read_vectors(tmp_path / "queries.jsonl").ids) == [query_id for query_id, _ in queries]

    for name, collection, topics in (("irds", "irds:beir/scifact", "irds:beir/scifact/test"),
                                     ("file", tmp_path / "collection.tsv", tmp_path / "queries.tsv")):
        assert run("index", collection, "-o", tmp_path / f"{name}-index").exit_code == 0
        result = run("search", tmp_path / f"{name}-index", topics, "-k", 5, "-o", tmp_path / f"{name}.trec")
        assert result.exit_code == 0, result.output
    assert (tmp_path / "irds.trec").read_text() == (tmp_path / "file.trec").read_text()


def one_line_failure(result):
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    return result.output


def test_files_ir_datasets_lacks_are_named_in_one_line(irds_home, tmp_path):
    (tmp_path / "run.trec").write_text("q Q0 d 1 1.0 t\n")
    message = one_line_failure(run("eval", tmp_path / "run.trec", "irds:msmarco-passage/dev/small"))
    wanted = irds_home / "msmarco-passage" / "dev" / "small" / "qrels"
    assert f"irds:msmarco-passage/dev/small: qrels are not available offline: ir_datasets wants {wanted} " in message
    assert f"(made from {irds_home / 'msmarco-passage' / 'collectionandqueries.tar.gz'})" in message

    message = one_line_failure(run("index", "irds:beir/scifact", "-o", tmp_path / "index"))
    assert f"documents are not available offline: ir_datasets wants {irds_home / 'beir' / 'scifact' / 'source.zip'};" \
           in message
    assert not (tmp_path / "index").exists()

    # The test queries are filtered by the test qrels: both files are named.
    with pytest.raises(InputError) as error:
        read_queries("irds:beir/scifact/test")
    scifact = irds_home / "beir" / "scifact"
    assert f"{scifact / 'queries.json'} (made from {scifact / 'source.zip'}); " \
           f"{scifact / 'test.qrels'} (made from {scifact / 'source.zip'})" in str(error.value)


def test_a_file_read_lazily_is_refused_rather_than_downloaded(irds_home):
    # trec-dl-2019/judged keeps the queries that have qrels; which qrels is decided inside a
    # function ir_datasets calls while reading, so the refusal comes from the download guard.
    target = irds_home / "msmarco-passage" / "trec-dl-2019"
    target.mkdir(parents=True)
    (target / "queries.tsv").write_bytes((MSMARCO_TOPICS / "queries.dl19.tsv").read_bytes())
    assert list(read_queries("irds:msmarco-passage/trec-dl-2019")) == list(read_queries(target / "queries.tsv"))
    with pytest.raises(InputError, match=r"irds:msmarco-passage/trec-dl-2019/judged: queries are not available "
                                         r"offline: ir_datasets wants .*trec-dl-2019"):
        list(read_queries("irds:msmarco-passage/trec-dl-2019/judged"))
    from ir_datasets.util import Download

    assert Download.path.__qualname__ == "Download.path"  # the guard is gone once reading ends


@pytest.mark.parametrize("args, message", [
    (("index", "irds:beir/scifac", "-o", "new-index"), "irds:beir/scifac: not an ir_datasets dataset id (did you mean"),
    (("index", "irds:beir", "-o", "new-index"), "irds:beir: this ir_datasets dataset has no documents"),
    (("search", "index", "irds:beir", "-k", 1, "-o", "new.trec"), "irds:beir: this ir_datasets dataset has no queries"),
    (("eval", "run.trec", "irds:beir/scifact"), "irds:beir/scifact: this ir_datasets dataset has no qrels"),
])
def test_unknown_ids_and_missing_parts_are_one_line_errors(irds_home, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.trec").write_text("q Q0 d 1 1.0 t\n")
    (tmp_path / "docs.jsonl").write_text('{"id": "d", "vector": {"cat": 1.0}}\n')
    assert run("index", "docs.jsonl", "-o", "index").exit_code == 0
    assert message in one_line_failure(run(*args))


def test_bench_datasets_take_irds_sources(irds_home):
    with pytest.raises(InputError, match="irds:beir/scifact: documents are not available offline"):
        open_dataset(docs="irds:beir/scifact", queries=SCIFACT / "queries.tsv")
    lay_out_scifact(irds_home, n_docs=3, n_queries=2)
    dataset = open_dataset(docs="irds:beir/scifact", queries="irds:beir/scifact/test", qrels="irds:beir/scifact/test")
    assert (dataset.collection, dataset.queries, dataset.qrels) == ("irds:beir/scifact",) + ("irds:beir/scifact/test",) * 2
    assert dataset.describe()["collection"] == "irds:beir/scifact"


def test_missing_files_follow_downloads_caches_and_local_copies(tmp_path):
    from ir_datasets.util import Cache, Download, GzipExtract, LocalDownload, RequestsDownload, ZipExtract

    from sparseir.formats.irds import missing_files

    url = "https://example.org/data.zip"
    archive = Download([RequestsDownload(url)], cache_path=tmp_path / "data.zip")
    extracted = Cache(ZipExtract(archive, "data/queries.tsv"), tmp_path / "queries.tsv")
    assert missing_files(extracted) == [f"{tmp_path / 'queries.tsv'} (made from {tmp_path / 'data.zip'})"]
    (tmp_path / "data.zip").touch()
    assert missing_files(extracted) == []
    (tmp_path / "data.zip").unlink()
    (tmp_path / "queries.tsv").touch()
    assert missing_files(extracted) == []

    # A large file may also be a local copy under downloads/<md5>, which ir_datasets takes instead.
    local_copy = tmp_path / "downloads" / "0123abcd"
    mirrored = Download([LocalDownload(local_copy, mkdir=False), RequestsDownload(url)], cache_path=tmp_path / "big.gz")
    assert missing_files(GzipExtract(mirrored)) == [str(tmp_path / "big.gz")]
    local_copy.parent.mkdir()
    local_copy.touch()
    assert missing_files(GzipExtract(mirrored)) == []

    assert missing_files(Download([RequestsDownload(url)])) == [f"{url} (no local copy)"]
    # A streamed download reads its source every time, never its cache.
    assert missing_files(Download([RequestsDownload(url)], cache_path=local_copy, stream=True)) == \
        [f"{url} (no local copy)"]
