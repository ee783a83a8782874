"""The architecture matrix: sparseir's encoders on tiny random models of every supported
layout (BERT, DistilBERT, RoBERTa, XLM-RoBERTa and ModernBERT masked LMs, castorini's
uniCOIL checkpoints, OpenSearch's inference-free models with idf.json), each compared with
the plain PyTorch computation of tests/tiny_models.py."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from sparseir.encoder import load_encoder  # noqa: E402
from sparseir.errors import SparseirError  # noqa: E402

from tiny_models import (DOC_MAX_LENGTH, MASKED_LMS, QUERY_MAX_LENGTH, TEST_TEXTS, dense_weights,  # noqa: E402
                         idf_query_reference, save_castorini_unicoil, save_tiny_masked_lm, splade_reference,
                         unicoil_reference, vocabulary_terms, write_opensearch_idf)

# The comparisons are float32 with different summation orders.
ATOL = 1e-5
# side -> sparseir's default truncation for it
MAX_LENGTHS = {"documents": DOC_MAX_LENGTH, "queries": QUERY_MAX_LENGTH}


@pytest.fixture(scope="module", params=sorted(MASKED_LMS))
def masked_lm(request, tmp_path_factory):
    return save_tiny_masked_lm(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module", params=["pytorch_model.bin", "model.safetensors"])
def castorini_unicoil(request, tmp_path_factory):
    return save_castorini_unicoil(tmp_path_factory.mktemp("unicoil"), request.param)


@pytest.fixture(scope="module")
def opensearch_model(tmp_path_factory):
    """A DistilBERT masked LM with idf.json beside it, and the idf table."""
    directory = save_tiny_masked_lm("distilbert", tmp_path_factory.mktemp("opensearch"))
    return directory, write_opensearch_idf(directory)


def encode(encoder, side: str):
    if side == "documents":
        return encoder.encode_documents(TEST_TEXTS)
    return encoder.encode_queries(TEST_TEXTS)


def assert_matches(vectors, directory, reference: np.ndarray, atol: float = ATOL) -> None:
    """sparseir's vectors equal the reference, over the tokenizer's vocabulary."""
    assert vectors.vocab.terms == vocabulary_terms(directory)
    np.testing.assert_allclose(dense_weights(vectors), reference, rtol=0, atol=atol)


def assert_not_vacuous(reference: np.ndarray) -> None:
    """Every text has weights to compare, so an encoder cannot pass by returning nothing."""
    assert (reference > 0).sum(axis=1).min() > 0


def test_reference_does_not_depend_on_padding(masked_lm):
    # sparseir pads differently from the reference (its own batches); both are valid only
    # because the masked positions change nothing.
    one_at_a_time = np.concatenate([splade_reference(masked_lm, [text], DOC_MAX_LENGTH) for text in TEST_TEXTS])
    np.testing.assert_allclose(splade_reference(masked_lm, TEST_TEXTS, DOC_MAX_LENGTH), one_at_a_time,
                               rtol=0, atol=ATOL)


def assert_encoder_matches(directory, kind: str, reference_function, side: str) -> None:
    reference = reference_function(directory, TEST_TEXTS, MAX_LENGTHS[side])
    assert_not_vacuous(reference)
    assert_matches(encode(load_encoder(str(directory), kind=kind), side), directory, reference)


@pytest.mark.parametrize("side", MAX_LENGTHS)
def test_splade_matches_the_masked_lm(masked_lm, side):
    assert_encoder_matches(masked_lm, "splade", splade_reference, side)


@pytest.mark.parametrize("side", MAX_LENGTHS)
def test_castorini_unicoil_matches_bert_and_tok_proj(castorini_unicoil, side):
    assert_encoder_matches(castorini_unicoil, "unicoil", unicoil_reference, side)


def test_opensearch_documents_use_the_masked_lm(opensearch_model):
    directory, _ = opensearch_model
    reference = splade_reference(directory, TEST_TEXTS, DOC_MAX_LENGTH)
    assert_not_vacuous(reference)
    assert_matches(load_encoder(str(directory), kind="idf").encode_documents(TEST_TEXTS), directory, reference)


def test_opensearch_queries_weigh_idf_json(opensearch_model):
    directory, idf = opensearch_model
    reference = idf_query_reference(directory, idf, TEST_TEXTS, QUERY_MAX_LENGTH)
    assert_not_vacuous(reference)
    # No model runs: each weight is a number read from idf.json, so they must be equal.
    assert_matches(load_encoder(str(directory), kind="idf").encode_queries(TEST_TEXTS), directory, reference, atol=0)


def test_idf_kind_without_idf_json_or_option_is_refused(tmp_path):
    directory = save_tiny_masked_lm("distilbert", tmp_path)
    with pytest.raises(SparseirError, match="idf"):
        load_encoder(str(directory), kind="idf")


def test_command_line_weighs_raw_text_queries_with_the_model_idf_json(opensearch_model, tmp_path):
    """`search --query-encoder idf --model DIR` takes DIR's idf.json: the run equals a search
    with the idf kind's query vectors."""
    import sparseir
    from click.testing import CliRunner
    from sparseir.cli import cli

    directory, _ = opensearch_model
    (tmp_path / "collection.tsv").write_text("".join(f"d{row}\t{text}\n" for row, text in enumerate(TEST_TEXTS)))
    (tmp_path / "queries.tsv").write_text("".join(f"q{row}\t{text}\n" for row, text in enumerate(TEST_TEXTS)))
    runner = CliRunner()
    built = runner.invoke(cli, ["index", str(tmp_path / "collection.tsv"), "-o", str(tmp_path / "index"),
                                "--kind", "exact", "--model", str(directory)])
    assert built.exit_code == 0, built.output
    searched = runner.invoke(cli, ["search", str(tmp_path / "index"), str(tmp_path / "queries.tsv"), "-k", "3",
                                   "-o", str(tmp_path / "run.trec"), "--query-encoder", "idf",
                                   "--model", str(directory)])
    assert searched.exit_code == 0, searched.output

    index = sparseir.load_index(tmp_path / "index")
    queries = load_encoder(str(directory), kind="idf").encode_queries(TEST_TEXTS, ids=[f"q{row}" for row in
                                                                                       range(len(TEST_TEXTS))])
    scores, rows = index.search(queries, k=3)
    expected = {(str(qid), str(index.doc_ids[row])): float(score)
                for qid, row_list, score_list in zip(queries.ids, rows, scores)
                for row, score in zip(row_list, score_list) if row >= 0}
    run = {(r.query_id, r.doc_id): r.score for r in sparseir.read_run(tmp_path / "run.trec")}
    assert run.keys() == expected.keys() and max(expected.values()) > 0
    assert run == pytest.approx(expected, rel=1e-5)  # scores differ if another IDF table weighed the queries
