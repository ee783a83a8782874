"""The catalogue of bad inputs: every reader, every case, one clear line naming file:line.

Each case is (reader, file name, content, expected message). The same catalogue runs
through the CLI, which must exit 1 with that one line and leave no output behind.
"""

import gzip
import io
import os
import re

import numpy as np
import pytest
from click.testing import CliRunner

import sparseir
import sparseir.extras
from sparseir.cli import cli
from sparseir.formats import read_qrels, read_run, read_texts

GOOD_JSON = '{"id": "d1", "vector": {"cat": 1.0}}\n'


def gz(text: str) -> bytes:
    return gzip.compress(text.encode())


def truncated_gzip() -> bytes:
    data = gz(GOOD_JSON * 200)
    return data[: len(data) // 2]


def parquet_without_weights() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table({"id": ["a"], "terms": [[1]]}), sink)
    return sink.getvalue()


def seismic_bin(*words) -> bytes:
    return np.array(words, dtype="<u4").tobytes()


def vectors(path):
    return sparseir.read_vectors(path)


def bert_vectors(path):
    return sparseir.read_vectors(path, vocab="bert")  # the default, "auto", takes any terms


def drain(reader):
    return lambda path: list(reader(path))


CATALOGUE = [
    # --- JSON vectors --------------------------------------------------------------
    ("vectors", "empty.jsonl", b"", r"empty.jsonl: no JSON vector line found"),
    ("vectors", "blank.jsonl", b"\n\n  \n", r"blank.jsonl: no JSON vector line found"),
    ("vectors", "trunc.jsonl", (GOOD_JSON + '{"id": "d2", "vec').encode(), r"trunc.jsonl:2: invalid JSON"),
    ("vectors", "utf8.jsonl", GOOD_JSON.encode() + b'{"id": "\xff"}\n', r"utf8.jsonl:2: invalid UTF-8 at byte 8"),
    ("vectors", "array.jsonl", b"[1, 2]\n", r"array.jsonl:1: expected a JSON object"),
    ("vectors", "noid.jsonl", b'{"vector": {"cat": 1}}\n', r'noid.jsonl:1: missing field "id"'),
    ("vectors", "novec.jsonl", b'{"id": "a", "vector": [1]}\n', r'novec.jsonl:1: missing or non-object field "vector"'),
    ("vectors", "text.jsonl", b'{"id": "a", "vector": {"cat": "1"}}\n', r"text.jsonl:1: weight of 'cat' is not a number"),
    ("vectors", "bool.jsonl", b'{"id": "a", "vector": {"cat": true}}\n', r"bool.jsonl:1: weight of 'cat' is not a number"),
    ("vectors", "nan.jsonl", b'{"id": "a", "vector": {"cat": NaN}}\n', r"nan.jsonl:1: weight of 'cat' is not finite"),
    ("vectors", "inf.jsonl", b'{"id": "a", "vector": {"cat": -Infinity}}\n', r"inf.jsonl:1: weight of 'cat' is not finite"),
    ("vectors", "neg.jsonl", b'{"id": "a", "vector": {"cat": -0.5}}\n', r"neg.jsonl:1: weight of 'cat' is negative"),
    ("vectors", "dup.jsonl", (GOOD_JSON * 2).encode(), r"dup.jsonl:2: duplicate id 'd1'"),
    ("bert vectors", "unk.jsonl", b'{"id": "a", "vector": {"CamelCase": 1}}\n',
     r"unk.jsonl:1: unknown term 'CamelCase' \(not in the bert-base-uncased vocabulary"),
    ("vectors", "gz.jsonl.gz", truncated_gzip(), r"gz.jsonl.gz: cannot read: "),
    ("vectors", "nogz.jsonl.gz", GOOD_JSON.encode(), None),  # plain text named .gz still reads
    # --- Seismic binary ------------------------------------------------------------
    ("vectors", "empty.bin", b"", r"empty.bin: size 0 bytes is not a Seismic binary file"),
    ("vectors", "odd.bin", b"\x01\x00\x00", r"odd.bin: size 3 bytes is not a Seismic binary file"),
    ("vectors", "zero.bin", seismic_bin(0), r"zero.bin: no vectors found"),
    ("vectors", "short.bin", seismic_bin(2, 1, 5, 0x3F800000), r"short.bin: truncated: header says 2 vectors"),
    ("vectors", "long.bin", seismic_bin(1, 1, 5, 0x3F800000, 7), r"long.bin: size mismatch"),
    ("bert vectors", "big.bin", seismic_bin(1, 1, 99999, 0x3F800000), r"big.bin: vector 0: term id 99999 outside"),
    ("vectors", "nan.bin", seismic_bin(1, 1, 5, 0x7FC00000), r"nan.bin: vector 0: weight is NaN"),
    ("vectors", "neg.bin", seismic_bin(1, 1, 5, 0xBF800000), r"neg.bin: vector 0: weight is NaN, infinite or negative"),
    # --- Parquet -------------------------------------------------------------------
    ("vectors", "junk.parquet", b"not parquet at all", r"junk.parquet: not a Parquet file"),
    ("vectors", "cols.parquet", parquet_without_weights(), r"cols.parquet: missing column\(s\) \['weights'\]"),
    # --- MS MARCO text -------------------------------------------------------------
    ("texts", "empty.tsv", b"", r"empty.tsv: no id<TAB>text line found"),
    ("texts", "cols.tsv", b"1\thello\n2\thello\tworld\n", r"cols.tsv:2: expected 2 tab-separated fields"),
    ("texts", "trunc.tsv", b"1\thello\n2", r"trunc.tsv:2: expected 2 tab-separated fields \(id, text\), got 1"),
    ("texts", "utf8.tsv", b"1\t\xc3\x28\n", r"utf8.tsv:1: invalid UTF-8"),
    ("texts", "dup.tsv", b"1\ta\n1\tb\n", r"dup.tsv:2: duplicate id '1'"),
    ("texts", "noid.tsv", b"\ttext\n", r"noid.tsv:1: empty id"),
    # --- qrels ---------------------------------------------------------------------
    ("qrels", "empty.qrels", b"", r"empty.qrels: no qrel line found"),
    ("qrels", "cols.qrels", b"q1 0 d1\n", r"cols.qrels:1: expected 4 fields"),
    ("qrels", "rel.qrels", b"q1 0 d1 high\n", r"rel.qrels:1: relevance 'high' is not an integer"),
    ("qrels", "dup.qrels", b"q1 0 d1 1\nq1 0 d1 2\n", r"dup.qrels:2: duplicate id 'q1 d1'"),
    # --- runs ----------------------------------------------------------------------
    ("run", "empty.run", b"", r"empty.run: no run line found"),
    ("run", "cols.run", b"q1 Q0 d1 1 2.0\n", r"cols.run:1: expected 6 fields \(TREC run\) or 3"),
    ("run", "score.run", b"q1 Q0 d1 1 high tag\n", r"score.run:1: score 'high' is not a number"),
    ("run", "nan.run", b"q1 Q0 d1 1 nan tag\n", r"nan.run:1: score 'nan' is not finite"),
    ("run", "rank.run", b"q1\td1\tfirst\n", r"rank.run:1: rank 'first' is not an integer"),
    ("run", "rank0.run", b"q1\td1\t0\n", r"rank0.run:1: rank 0 must be >= 1"),
    ("run", "dup.run", b"q1 Q0 d1 1 2.0 t\nq1 Q0 d1 2 1.0 t\n", r"dup.run:2: duplicate id 'q1 d1'"),
]

READERS = {"vectors": vectors, "bert vectors": bert_vectors, "texts": drain(read_texts), "qrels": drain(read_qrels),
           "run": drain(read_run)}


@pytest.mark.parametrize("reader, name, content, message", CATALOGUE, ids=[c[1] for c in CATALOGUE])
def test_reader_catalogue(tmp_path, reader, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    if message is None:
        READERS[reader](path)
        return
    with pytest.raises(sparseir.InputError) as raised:
        READERS[reader](path)
    text = str(raised.value)
    assert "\n" not in text
    assert re.search(message, text), text
    assert text.startswith(str(path))


@pytest.mark.parametrize("reader", sorted(READERS))
def test_missing_file_and_directory(tmp_path, reader):
    with pytest.raises(sparseir.InputError, match=r"nope.jsonl: no such file"):
        READERS[reader](tmp_path / "nope.jsonl")
    (tmp_path / "folder.jsonl").mkdir()
    with pytest.raises(sparseir.InputError, match=r"folder.jsonl: is a directory"):
        READERS[reader](tmp_path / "folder.jsonl")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.jsonl"
    path.write_text(GOOD_JSON)
    path.chmod(0)
    with pytest.raises(sparseir.InputError, match="permission denied"):
        sparseir.read_vectors(path)


VECTOR_CASES = [c for c in CATALOGUE if c[0] in ("vectors", "bert vectors") and c[3] is not None]


@pytest.mark.parametrize("reader, name, content, message", VECTOR_CASES, ids=[c[1] for c in VECTOR_CASES])
@pytest.mark.parametrize("command", ["index", "search"])
def test_cli_catalogue(tmp_path, command, reader, name, content, message):
    """Each bad vector file, as documents to `index` and as queries to `search`."""
    (tmp_path / "docs.jsonl").write_text(GOOD_JSON)
    runner = CliRunner()
    if command == "search":
        assert runner.invoke(cli, ["index", str(tmp_path / "docs.jsonl"), "-o", str(tmp_path / "ix")]).exit_code == 0
    (tmp_path / name).write_bytes(content)
    output = tmp_path / "out"
    vocab_option = ["--vocab", "bert"] if reader == "bert vectors" else []
    args = (["index", str(tmp_path / name), "-o", str(output), *vocab_option] if command == "index"
            else ["search", str(tmp_path / "ix"), str(tmp_path / name), "-k", "1", "-o", str(output)])
    before = sorted(p.name for p in tmp_path.iterdir())
    result = runner.invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: ") and re.search(message, lines[-1]), result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, not even a temp file


@pytest.mark.parametrize("args, extra", [
    (["encode", "COLLECTION", "-o", "OUT.jsonl"], "encode"),
    (["index", "COLLECTION", "-o", "OUT-index"], "encode"),  # raw text given to index needs the encoder
    (["encode-ray", "COLLECTION", "OUT-index"], "encode"),
    (["search", "INDEX", "COLLECTION", "-k", "1", "-o", "OUT.jsonl", "--query-encoder", "unicoil"], "encode"),
    (["eval", "RUN", "QRELS"], "eval"),
])
def test_a_missing_extra_is_one_line_naming_the_install_command(tmp_path, monkeypatch, args, extra):
    import sparseir.extras

    absent = {"encode": "transformers", "eval": "ir_measures"}[extra]
    real_find_spec = sparseir.extras.find_spec
    monkeypatch.setattr(sparseir.extras, "find_spec", lambda name: None if name == absent else real_find_spec(name))
    (tmp_path / "collection.tsv").write_text("d1\tsome text\n")
    (tmp_path / "run.trec").write_text("q1 Q0 d1 1 1.0 x\n")
    (tmp_path / "qrels.txt").write_text("q1 0 d1 1\n")
    (tmp_path / "docs.jsonl").write_text('{"id": "d1", "vector": {"text": 1.0}}\n')
    sparseir.build_index(sparseir.read_vectors(tmp_path / "docs.jsonl"), kind="exact").save(tmp_path / "index")
    paths = {"COLLECTION": "collection.tsv", "OUT.jsonl": "out.jsonl", "OUT-index": "out-index", "RUN": "run.trec",
             "QRELS": "qrels.txt", "INDEX": "index"}
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, [paths.get(arg, arg) for arg in args])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert f"{absent}" in result.output and f"pip install 'sparseir[{extra}]'" in result.output
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "out-index").exists()


@pytest.mark.skipif(not sparseir.extras.missing("encode"), reason="the encode extra is installed here; the core-only "
                                                                  "install of CI runs this test")
def test_encoding_without_the_encode_extra_installed(tmp_path):
    (tmp_path / "collection.tsv").write_text("d1\tsome text\n")
    result = CliRunner().invoke(cli, ["encode", str(tmp_path / "collection.tsv"), "-o", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "pip install 'sparseir[encode]'" in result.output and not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("device, message", [
    ("tpu", r"device must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
    ("cuda:7", r"device 'cuda:7' is not available"),  # no machine here has eight GPUs
])
def test_an_unknown_or_absent_device_is_one_line(tmp_path, device, message):
    pytest.importorskip("torch")
    (tmp_path / "collection.tsv").write_text("d1\tsome text\n")
    result = CliRunner().invoke(cli, ["encode", str(tmp_path / "collection.tsv"), "-o", str(tmp_path / "out.jsonl"),
                                      "--device", device])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "Traceback" not in result.output
    assert re.search(message, result.output) and not (tmp_path / "out.jsonl").exists()


def test_the_pyterrier_module_without_its_extra_names_the_install_command(monkeypatch):
    import importlib
    import sys

    real_find_spec = sparseir.extras.find_spec
    monkeypatch.setattr(sparseir.extras, "find_spec", lambda name: None if name == "pyterrier" else real_find_spec(name))
    monkeypatch.delitem(sys.modules, "sparseir.pyterrier", raising=False)
    with pytest.raises(sparseir.ParameterError, match=r"needs pyterrier.*pip install 'sparseir\[pyterrier\]'"):
        importlib.import_module("sparseir.pyterrier")
