"""CIFF export and import: what third-party readers and writers (ciff-toolkit) see and give,
search over an imported index, damaged files, and the command line."""

from __future__ import annotations

import gzip
import importlib.util
import re

import numpy as np
import pytest
from click.testing import CliRunner

import sparseir
from sparseir.cli import cli
from sparseir.errors import InputError, ParameterError
from sparseir.formats.ciff import Quantization, quantize_vectors, read_ciff, write_ciff
from sparseir.index import in_rows_of
from conftest import random_vectors, shared_vectors

pytest.importorskip("ciff_toolkit")
from ciff_toolkit.ciff_pb2 import DocRecord, Header, Posting, PostingsList  # noqa: E402
from ciff_toolkit.read import CiffReader  # noqa: E402
from ciff_toolkit.write import CiffWriter  # noqa: E402


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def toolkit_contents(path):
    """(header, {term: (df, cf, docids, impacts)}, [(docid, collection id, length)]) as ciff-toolkit reads them."""
    with CiffReader(path) as reader:
        header = reader.read_header()
        lists = {}
        for postings in reader.read_postings_lists():
            docids = np.cumsum([posting.docid for posting in postings.postings])
            lists[postings.term] = (postings.df, postings.cf, docids, np.array([p.tf for p in postings.postings]))
        records = [(record.docid, record.collection_docid, record.doclength) for record in reader.read_documents()]
    return header, lists, records


def expected_lists(quantized: sparseir.SparseVectors) -> dict:
    """{term: (df, cf, docids, impacts)} of the quantized vectors, inverted here by scipy."""
    columns = quantized.to_scipy().tocsc()
    lists = {}
    for term in range(len(quantized.vocab)):
        lo, hi = columns.indptr[term], columns.indptr[term + 1]
        if hi > lo:
            impacts = columns.data[lo:hi].astype(np.int64)
            lists[quantized.vocab.term(term)] = (hi - lo, int(impacts.sum()), columns.indices[lo:hi], impacts)
    return lists


def write_with_toolkit(vectors: sparseir.SparseVectors, path, lists=None, n_docs=None, tail: bytes = b""):
    """A CIFF file of integer-weighted vectors written by ciff-toolkit's CiffWriter (its own messages)."""
    lists = expected_lists(vectors) if lists is None else lists
    lengths = np.add.reduceat(vectors.weights, vectors.offsets[:-1]) if vectors.nnz else np.zeros(len(vectors))
    with CiffWriter(str(path)) as writer:
        writer.write_header(Header(version=1, num_postings_lists=len(lists), total_postings_lists=len(lists),
                                   num_docs=len(vectors) if n_docs is None else n_docs, total_docs=len(vectors),
                                   total_terms_in_collection=int(lengths.sum()), description="ciff-toolkit"))
        writer.write_postings_lists(
            PostingsList(term=term, df=int(df), cf=int(cf),
                         postings=[Posting(docid=int(gap), tf=int(tf)) for gap, tf in zip(np.diff(docids, prepend=0),
                                                                                         impacts)])
            for term, (df, cf, docids, impacts) in lists.items())
        writer.write_documents(DocRecord(docid=row, collection_docid=str(doc_id), doclength=int(length))
                               for row, (doc_id, length) in enumerate(zip(vectors.ids, lengths)))
    if tail:
        with open(path, "ab") as f:
            f.write(tail)


@pytest.fixture(scope="module")
def small():
    return random_vectors(np.random.default_rng(7), 120, 40, 6)


def assert_same_vectors(a: sparseir.SparseVectors, b: sparseir.SparseVectors):
    assert a.vocab == b.vocab and np.array_equal(a.ids, b.ids)
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.terms, b.terms)
    assert np.array_equal(a.weights, b.weights)


# --- what sparseir writes, as ciff-toolkit reads it ------------------------------------------


@pytest.mark.parametrize("quantization", [Quantization(bits=8), Quantization(scale=100.0), Quantization(bits=3)])
def test_ciff_toolkit_reads_what_sparseir_writes(tmp_path, small, quantization):
    path = tmp_path / "small.ciff"
    described = write_ciff(small, path, quantization, "test")
    quantized, max_weight = quantize_vectors(small, quantization)
    header, lists, records = toolkit_contents(path)
    assert header.description == described and quantization.describe(max_weight) in described
    assert header.num_docs == header.total_docs == len(small)
    expected = expected_lists(quantized)
    assert header.num_postings_lists == len(expected) and list(lists) == list(expected)  # term-id order
    for term, (df, cf, docids, impacts) in expected.items():
        got = lists[term]
        assert (got[0], got[1]) == (df, cf) and np.array_equal(got[2], docids) and np.array_equal(got[3], impacts)
    lengths = np.add.reduceat(quantized.weights, quantized.offsets[:-1]).astype(np.int64)
    assert records == [(row, doc_id, int(length)) for row, (doc_id, length) in enumerate(zip(small.ids, lengths))]
    assert header.total_terms_in_collection == lengths.sum()
    assert quantized.weights.min() >= 1 and quantized.weights.max() <= quantization.top()


def test_the_round_trip_gives_the_quantized_vectors_back(tmp_path, small):
    quantization = Quantization(bits=8)
    write_ciff(small, tmp_path / "small.ciff.gz", quantization)
    assert gzip.open(tmp_path / "small.ciff.gz").read(1)  # compressed
    quantized, _ = quantize_vectors(small, quantization)
    back = sparseir.read_vectors(tmp_path / "small.ciff.gz", vocab="open")
    assert_same_vectors(back, sparseir.SparseVectors(quantized.offsets, quantized.terms, quantized.weights,
                                                     quantized.ids, sparseir.Vocabulary(small.vocab.terms, open=True)))


def test_quantization_rules():
    assert Quantization(bits=8).multiplier(2.0) == 255 / 2.0
    assert Quantization(scale=100).multiplier(2.0) == 100
    for bad in [{}, {"scale": 1, "bits": 8}, {"scale": 0}, {"scale": float("nan")}, {"bits": 0}, {"bits": 17}]:
        with pytest.raises(ParameterError):
            Quantization(**bad)
    with pytest.raises(ParameterError, match="int32"):
        write_ciff(random_vectors(np.random.default_rng(1), 3, 5, 2), "unused.ciff", Quantization(scale=1e12))


@pytest.mark.parametrize("kind", sparseir.KINDS)
def test_every_kind_reads_its_stored_vectors_back(small, kind):
    index = sparseir.build_index(small, kind=kind)
    stored, original = index.stored_vectors(), in_rows_of(small, index.doc_ids)
    assert np.array_equal(stored.offsets, original.offsets) and np.array_equal(stored.terms, original.terms)
    # Forward indexes keep float16 by default; a quantized kind gives what its impacts stand for.
    assert np.allclose(stored.weights, original.weights, rtol=0.05, atol=0.05)
    binary = small.binarized(3)
    stored = sparseir.build_index(binary, kind=kind).stored_vectors()
    assert np.array_equal(stored.weights, np.ones(binary.nnz, np.float32))


# --- what ciff-toolkit writes, as sparseir reads it ------------------------------------------


def test_toy_ciff_three_documents_nine_postings_lists(tmp_path):
    """The shape of Anserini's toy-complete-20200309.ciff (no package ships it), written by ciff-toolkit:
    3 documents, 9 postings lists, terms in string order as Anserini writes them."""
    texts = ["here is a simple text", "now the text seems simple", "a simple text again and again"]
    counts = [{term: text.split().count(term) for term in text.split()} for text in texts]
    terms = sorted({term for text in texts for term in text.split()} - {"and"})
    toy = sparseir.SparseVectors.from_dicts([{t: n for t, n in c.items() if t in terms} for c in counts],
                                            ids=["doc1", "doc2", "doc3"], vocab=sparseir.Vocabulary(terms))
    write_with_toolkit(toy, tmp_path / "toy.ciff")
    header, lists, _ = toolkit_contents(tmp_path / "toy.ciff")
    assert (header.num_docs, header.num_postings_lists) == (3, 9) and len(lists) == 9
    imported = sparseir.read_vectors(tmp_path / "toy.ciff", vocab="open")
    assert len(imported) == 3 and len(imported.vocab) == 9 and list(imported.ids) == ["doc1", "doc2", "doc3"]
    assert imported[2].as_dict(imported.vocab) == {"a": 1, "simple": 1, "text": 1, "again": 2}
    assert_same_vectors(imported, sparseir.SparseVectors(toy.offsets, toy.terms, toy.weights, toy.ids,
                                                         sparseir.Vocabulary(terms, open=True)))
    assert sparseir.read_vectors(tmp_path / "toy.ciff").vocab == sparseir.Vocabulary.default()  # all BERT terms


def test_ciff_written_by_the_toolkit_imports_and_searches_as_the_quantized_vectors(tmp_path, small):
    quantized, _ = quantize_vectors(small, Quantization(bits=8))
    write_with_toolkit(quantized, tmp_path / "toolkit.ciff")
    imported = sparseir.read_vectors(tmp_path / "toolkit.ciff", vocab="open")
    queries = random_vectors(np.random.default_rng(3), 20, 40, 4, prefix="q")
    for index_kind in ("exact", "blockmax"):
        index = sparseir.build_index(imported, kind=index_kind, reorder="none")
        reference = sparseir.build_index(quantized, kind="exact")
        q = sparseir.SparseVectors(queries.offsets, queries.terms, queries.weights, queries.ids, index.vocab)
        scores, rows = index.search(q, k=10)
        ref_scores, ref_rows = reference.search(queries, k=10)
        assert np.array_equal(rows, ref_rows) and np.array_equal(scores, ref_scores)


def test_a_lexicographic_term_order_is_renumbered_into_bert_ids(tmp_path):
    """Anserini sorts its terms as strings: BERT's ids differ, and each document is sorted again."""
    bert = sparseir.Vocabulary.default()
    docs = sparseir.SparseVectors.from_dicts([{"zebra": 2, "apple": 1, "the": 3}, {"apple": 4, "music": 1}],
                                             ids=["a", "b"])
    lists = expected_lists(docs)
    write_with_toolkit(docs, tmp_path / "sorted.ciff", lists=dict(sorted(lists.items())))
    imported = sparseir.read_vectors(tmp_path / "sorted.ciff")
    assert imported.vocab == bert
    assert_same_vectors(imported, docs)


# --- damaged files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_ciff(tmp_path_factory, small):
    path = tmp_path_factory.mktemp("ciff") / "good.ciff"
    write_ciff(small, path, Quantization(bits=8))
    return path


@pytest.mark.parametrize("fraction", [0.0001, 0.01, 0.3, 0.77, 0.999])
def test_a_truncated_file_names_the_byte_offset(tmp_path, good_ciff, fraction):
    data = good_ciff.read_bytes()
    cut = tmp_path / "cut.ciff"
    cut.write_bytes(data[:max(1, int(len(data) * fraction))])
    with pytest.raises(InputError, match=r"byte \d+") as error:
        sparseir.read_vectors(cut)
    assert str(cut) in str(error.value) and "\n" not in str(error.value)


def header_with(path, **fields):
    """The file with its header's fields replaced."""
    with CiffReader(str(path)) as reader:
        header = reader.read_header()
        rest = reader.fp.read()
    for name, value in fields.items():
        setattr(header, name, value)
    from google.protobuf.internal.encoder import _VarintBytes

    data = header.SerializeToString()
    return _VarintBytes(len(data)) + data + rest


@pytest.mark.parametrize("change, message", [
    (lambda h: {"num_postings_lists": h.num_postings_lists + 1}, r"byte \d+"),
    (lambda h: {"num_postings_lists": h.num_postings_lists - 1}, r"doc record \d+ of \d+ \(?at byte \d+"),
    (lambda h: {"num_docs": h.num_docs + 1}, r"truncated.*byte \d+"),
    (lambda h: {"num_docs": h.num_docs - 1}, r"docid \d+ outside|more data follows at byte \d+"),
    (lambda h: {"num_docs": 0}, r"counts \d+ postings lists and 0 documents"),
])
def test_header_counts_that_lie(tmp_path, good_ciff, change, message):
    with CiffReader(str(good_ciff)) as reader:
        header = reader.read_header()
    lying = tmp_path / "lying.ciff"
    lying.write_bytes(header_with(good_ciff, **change(header)))
    with pytest.raises(InputError, match=message):
        read_ciff(lying)


def test_damaged_postings_are_refused(tmp_path, small):
    quantized, _ = quantize_vectors(small, Quantization(bits=8))
    lists = expected_lists(quantized)
    term = next(iter(lists))
    for damage, message in [((5, 0, np.array([3, 2, 4, 1, 0]), np.array([1, 1, 1, 1, 1])), "do not ascend"),
                            ((1, 0, np.array([len(small) + 4]), np.array([1])), "outside the 120 documents"),
                            ((2, 0, np.array([0, 1]), np.array([1])), r"df 2 but 1 postings"),
                            ((1, 0, np.array([0]), np.array([-3])), "negative impact")]:
        df, cf, docids, impacts = damage
        write_with_toolkit(quantized, tmp_path / "bad.ciff", lists={**lists, term: (df, cf, docids, impacts)})
        with pytest.raises(InputError, match=message):
            read_ciff(tmp_path / "bad.ciff")
    write_with_toolkit(quantized, tmp_path / "tail.ciff", tail=b"\x05junk!")
    with pytest.raises(InputError, match=r"more data follows at byte \d+"):
        read_ciff(tmp_path / "tail.ciff")


def test_a_bad_ciff_on_the_command_line_is_one_line_and_leaves_no_index(tmp_path, good_ciff):
    cut = tmp_path / "cut.ciff"
    cut.write_bytes(good_ciff.read_bytes()[:2000])
    for budget in ([], ["--memory-budget", "64K"]):
        before = sorted(p.name for p in tmp_path.iterdir())
        result = run("index", cut, "-o", tmp_path / "ix", "--kind", "sindi", *budget)
        # One line of error (after the progress bars that out-of-core phases draw).
        assert result.exit_code == 1 and (budget or result.output.count("\n") == 1), result.output
        assert re.search(r"^Error: .*cut\.ciff: truncated.*byte \d+", result.output.strip().splitlines()[-1])
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # no index, no scratch directory


# --- the command line ------------------------------------------------------------------------


def test_export_and_import_on_the_command_line(tmp_path, small):
    sparseir.build_index(small, kind="sindi").save(tmp_path / "ix")
    result = run("export-ciff", tmp_path / "ix", tmp_path / "out.ciff", "--bits", "8")
    assert result.exit_code == 0, result.output
    assert re.search(r"quantization: impact = clip\(rint\(weight \* [0-9.e+-]+\), 1, 255\) \(bits 8, global max", result.output)
    header, _, _ = toolkit_contents(tmp_path / "out.ciff")
    assert "bits 8" in header.description and "sindi index of 120 documents" in header.description
    for budget in ([], ["--memory-budget", "64K"]):
        target = tmp_path / f"back{len(budget)}"
        assert run("index", tmp_path / "out.ciff", "-o", target, "--kind", "exact", "--vocab", "open",
                   *budget).exit_code == 0
    in_memory, out_of_core = sparseir.load_index(tmp_path / "back0"), sparseir.load_index(tmp_path / "back2")
    assert_same_vectors(in_memory.stored_vectors(), out_of_core.stored_vectors())
    assert run("export-ciff", tmp_path / "ix", tmp_path / "out.ciff", "--bits", "8").exit_code == 1  # exists
    out_of_core_export = run("export-ciff", tmp_path / "ix", tmp_path / "out.ciff", "--bits", "8", "--overwrite",
                             "--memory-budget", "64K")
    assert out_of_core_export.exit_code == 0 and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    for bad, message in [([], "scale or bits"), (["--bits", "8", "--scale", "2"], "scale or bits"),
                         (["--bits", "40"], "bits must be"), (["--scale", "-1"], "scale must be")]:
        result = run("export-ciff", tmp_path / "ix", tmp_path / "other.ciff", *bad)
        assert result.exit_code == 1 and message in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "other.ciff").exists()


def test_write_vectors_refuses_ciff_without_a_quantization(tmp_path, small):
    with pytest.raises(ParameterError, match="quantization"):
        sparseir.write_vectors(small, tmp_path / "x.ciff")


# --- scifact, and PISA -----------------------------------------------------------------------


@pytest.mark.slow
def test_scifact_through_ciff_toolkit_and_back(tmp_path):
    docs = sparseir.read_vectors(shared_vectors("scifact") / "collection.jsonl.gz")
    queries = sparseir.read_vectors(shared_vectors("scifact") / "queries.jsonl.gz", vocab=docs.vocab)
    sparseir.build_index(docs, kind="exact").to_ciff(tmp_path / "scifact.ciff", bits=8)
    quantized, _ = quantize_vectors(docs, Quantization(bits=8))
    header, lists, records = toolkit_contents(tmp_path / "scifact.ciff")
    expected = expected_lists(quantized)
    assert list(lists) == list(expected) and header.num_docs == len(docs)
    for term, (df, cf, docids, impacts) in expected.items():
        got = lists[term]
        assert (got[0], got[1]) == (df, cf) and np.array_equal(got[2], docids) and np.array_equal(got[3], impacts)
    assert [record[1] for record in records] == list(docs.ids)
    write_with_toolkit(quantized, tmp_path / "toolkit.ciff")
    imported = sparseir.read_vectors(tmp_path / "toolkit.ciff")
    assert_same_vectors(imported, quantized)
    ours, theirs = sparseir.build_index(quantized, kind="exact"), sparseir.build_index(imported, kind="exact")
    scores, rows = ours.search(queries, k=10)
    their_scores, their_rows = theirs.search(queries, k=10)
    assert np.array_equal(rows, their_rows) and np.array_equal(scores, their_scores)


@pytest.mark.slow
def test_pisa_exhaustive_top10_equals_exact_top10(tmp_path, small):
    if importlib.util.find_spec("pyciff") is None or importlib.util.find_spec("pyterrier_pisa") is None:
        pytest.skip("pyciff (CIFF to PISA) or pyterrier-pisa does not install here: pyciff ships no wheel for this "
                    "Python and builds from Rust sources that need a network")
    import pandas as pd
    from pyterrier_pisa import PisaIndex

    quantization = Quantization(bits=8)
    sparseir.build_index(small, kind="exact").to_ciff(tmp_path / "small.ciff", bits=8)
    pisa = PisaIndex.from_ciff(str(tmp_path / "small.ciff"), str(tmp_path / "pisa"), stemmer="none")
    quantized, _ = quantize_vectors(small, quantization)
    queries = random_vectors(np.random.default_rng(5), 10, 40, 3, prefix="q", integer_weights=True)
    scores, rows = sparseir.build_index(quantized, kind="exact").search(queries, k=10)
    topics = pd.DataFrame({"qid": list(queries.ids), "query_toks": [q.as_dict(small.vocab) for q in queries]})
    results = pisa.quantized(num_results=10).transform(topics)
    for q, query_id in enumerate(queries.ids):
        theirs = results[results.qid == query_id].sort_values("rank")
        assert list(theirs.docno) == [small.ids[row] for row in rows[q] if row >= 0]
