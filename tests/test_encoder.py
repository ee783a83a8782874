"""Encoders: pooling against hand computations, order under length sorting, the embedded
model against the shared pre-encoded vectors, files, errors, and text-to-results search."""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import sparseir  # noqa: E402
from sparseir.encoder import (EncoderOptions, IdfQueryEncoder, batch_rows, load_encoder,  # noqa: E402
                              model_directory, sparsify)
from sparseir.encoder import splade as splade_module  # noqa: E402
from sparseir.encoder.unicoil import save_head  # noqa: E402
from sparseir.errors import InputError, ParameterError  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TEXTS = [
    "the capital of france is paris",
    "sparse retrieval",
    "a much longer text about learned sparse retrieval with inverted indexes, impacts and term expansion, "
    "repeated words repeated words",
    "bm25",
    "paris paris paris is the capital and the capital is paris",
]


def tiny_config():
    # The real WordPiece vocabulary (so the embedded tokenizer applies), a tiny network.
    return transformers.BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, max_position_embeddings=512)


def copy_tokenizer(directory: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(model_directory("default") / name, directory / name)


def save_tiny_model(tmp_path_factory, name: str, model_class, seed: int) -> Path:
    """A randomly initialised tiny BERT of model_class, with the embedded tokenizer."""
    directory = tmp_path_factory.mktemp(name)
    torch.manual_seed(seed)
    model_class(tiny_config()).eval().save_pretrained(directory)
    copy_tokenizer(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_splade(tmp_path_factory):
    return save_tiny_model(tmp_path_factory, "tiny-splade", transformers.BertForMaskedLM, 0)


@pytest.fixture(scope="module")
def tiny_unicoil(tmp_path_factory):
    directory = save_tiny_model(tmp_path_factory, "tiny-unicoil", transformers.BertModel, 1)
    save_head(directory, torch.randn(1, 16), torch.tensor([0.05]))
    return directory


@pytest.fixture(scope="module")
def small_vocab_model(tmp_path_factory):
    """A masked LM over its own 40-term WordPiece vocabulary (not BERT's)."""
    directory = tmp_path_factory.mktemp("small-vocab")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz", "cat", "dog", "sat",
             "on", "the", "mat", "##s", "run", "##ning"]
    transformers.BertTokenizerFast(vocab={word: i for i, word in enumerate(words)}).save_pretrained(directory)
    torch.manual_seed(2)
    config = transformers.BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32)
    transformers.BertForMaskedLM(config).eval().save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def embedded():
    return load_encoder("default", threads=1)


def dense(vectors) -> np.ndarray:
    return vectors.to_scipy().toarray()


def special_ids(tokenizer) -> list[int]:
    return sorted(set(tokenizer.all_special_ids))


def hand_splade(directory: Path, texts: list[str]) -> np.ndarray:
    """One text at a time (no padding at all), full MLM logits, then max log(1 + relu)."""
    model = transformers.BertForMaskedLM.from_pretrained(directory).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    rows = []
    with torch.no_grad():
        for text in texts:
            logits = model(**tokenizer(text, return_tensors="pt")).logits[0]
            weights = torch.log(1 + torch.clamp(logits, min=0)).max(dim=0).values
            weights[special_ids(tokenizer)] = 0
            rows.append(weights.numpy())
    return np.stack(rows)


def hand_unicoil(directory: Path, texts: list[str]) -> np.ndarray:
    from safetensors.torch import load_file

    model = transformers.BertModel.from_pretrained(directory).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    head = load_file(directory / "unicoil_head.safetensors")
    rows = np.zeros((len(texts), 30522), dtype=np.float32)
    with torch.no_grad():
        for row, text in enumerate(texts):
            encoded = tokenizer(text, return_tensors="pt")
            hidden = model(**encoded).last_hidden_state[0]
            token_weights = torch.relu(hidden @ head["weight"][0] + head["bias"][0]).numpy()
            for token, weight in zip(encoded["input_ids"][0].tolist(), token_weights):
                if token not in special_ids(tokenizer):
                    rows[row, token] = max(rows[row, token], weight)
    return rows


# --- pooling ----------------------------------------------------------------------------

@pytest.mark.parametrize("head_tokens", [2048, 7])
def test_splade_pooling_equals_hand_computation(tiny_splade, monkeypatch, head_tokens):
    # 7 tokens per head slice forces several slices per batch (and rows longer than a slice).
    monkeypatch.setattr(splade_module, "HEAD_TOKENS", head_tokens)
    vectors = load_encoder(tiny_splade, threads=1).encode_documents(TEXTS, batch_size=3)
    np.testing.assert_allclose(dense(vectors), hand_splade(tiny_splade, TEXTS), rtol=1e-4, atol=1e-5)


def test_unicoil_pooling_equals_hand_computation(tiny_unicoil):
    vectors = load_encoder(tiny_unicoil, kind="unicoil", threads=1).encode_documents(TEXTS, batch_size=2)
    expected = hand_unicoil(tiny_unicoil, TEXTS)
    assert (expected > 0).sum() > 10  # the random head leaves something to compare
    np.testing.assert_allclose(dense(vectors), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch_tokens", [1, 12, 40, 10_000])
def test_token_budget_batches_give_the_vectors_of_count_batches(tiny_splade, batch_tokens):
    by_count = load_encoder(tiny_splade, threads=1).encode_documents(TEXTS, batch_size=2)
    by_tokens = load_encoder(tiny_splade, threads=1, batch_tokens=batch_tokens).encode_documents(TEXTS)
    assert np.array_equal(by_count.offsets, by_tokens.offsets) and np.array_equal(by_count.terms, by_tokens.terms)
    np.testing.assert_allclose(by_count.weights, by_tokens.weights, rtol=1e-5, atol=1e-6)


def test_token_budget_batches_are_full_and_within_budget():
    lengths = np.array([5, 9, 3, 9, 1, 4, 2, 7])
    order = np.argsort(-lengths, kind="stable")
    for budget in (1, 9, 10, 18, 27, 100):
        batches = list(batch_rows(order, lengths, 32, budget))
        assert np.array_equal(np.concatenate(batches), order)
        for number, rows in enumerate(batches):
            assert len(rows) == 1 or len(rows) * lengths[rows].max() <= budget
            if number < len(batches) - 1:  # one more text would have broken the budget
                assert (len(rows) + 1) * lengths[rows[0]] > budget


def test_ids_and_order_preserved_under_length_sorting(tiny_splade, monkeypatch):
    encoder = load_encoder(tiny_splade, threads=1)
    texts = [TEXTS[i % len(TEXTS)] + " extra" * (i % 4) for i in (7, 2, 9, 0, 5, 1, 8, 3, 6, 4)]
    ids = [f"doc-{i}" for i in range(len(texts))][::-1]
    one_by_one = sparseir.SparseVectors.concatenate([encoder.encode_documents([t], ids=[i])
                                                     for t, i in zip(texts, ids)])
    monkeypatch.setattr(sparseir.encoder.pipeline, "CHUNK_BATCHES", 2)  # several chunks, each sorted on its own
    batched = encoder.encode_documents(iter(texts), ids=ids, batch_size=2)
    assert list(batched.ids) == ids
    assert np.array_equal(batched.offsets, one_by_one.offsets)
    assert np.array_equal(batched.terms, one_by_one.terms)
    np.testing.assert_allclose(batched.weights, one_by_one.weights, rtol=1e-5, atol=1e-6)


def test_default_ids_are_positions(tiny_splade):
    vectors = load_encoder(tiny_splade).encode_queries(["a", "b c"])
    assert list(vectors.ids) == ["0", "1"]


# --- the embedded model -----------------------------------------------------------------

def shared(collection: str, name: str) -> Path:
    path = DATA / collection / name
    if not path.exists():
        pytest.skip(f"shared data {collection}/{name} not available")
    return path


def first_vectors(path: Path, n: int) -> sparseir.SparseVectors:
    """The first n records of a (large) JSONL vectors file, without reading the rest."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in itertools.islice(f, n)]
    return sparseir.SparseVectors.from_dicts([r["vector"] for r in records], ids=[r["id"] for r in records])


@pytest.mark.parametrize("collection, texts, vectors, query", [
    ("debian-pkgs", "collection.tsv", "vectors/collection.jsonl.gz", False),
    ("scifact", "collection.tsv", "vectors/collection.jsonl.gz", False),  # long abstracts: truncated at 256
    ("scifact", "queries.tsv", "vectors/queries.jsonl.gz", True),
])
def test_embedded_model_matches_preencoded_vectors(embedded, collection, texts, vectors, query):
    n = 6
    records = list(itertools.islice(sparseir.read_texts(shared(collection, texts)), n))
    reference = first_vectors(shared(collection, vectors), n)
    encode = embedded.encode_queries if query else embedded.encode_documents
    got = encode([r.text for r in records], ids=[r.id for r in records])
    assert list(got.ids) == list(reference.ids)
    # The reference is rounded to 4 decimals (and so drops weights below 5e-5).
    np.testing.assert_allclose(dense(got), dense(reference), atol=6e-5, rtol=0)


def test_embedded_vocabulary_is_the_default(embedded):
    assert embedded.vocab == sparseir.Vocabulary.default()


def test_other_tokenizers_get_their_own_vocabulary(small_vocab_model, embedded, tiny_splade):
    encoder = load_encoder(small_vocab_model)
    assert len(encoder.vocab) == 40 and encoder.vocab.name == small_vocab_model.name
    queries = encoder.encode_queries(["the cat sat on the mat"])
    assert {encoder.vocab.term(t) for t in queries[0].terms} <= set(encoder.vocab.terms[5:])
    index = sparseir.build_index(embedded.encode_documents(TEXTS))
    with pytest.raises(ParameterError, match="queries use"):
        index.search(queries)
    with pytest.raises(ParameterError, match="one tokenizer vocabulary"):
        load_encoder(tiny_splade, query_model=small_vocab_model)


def test_index_from_embedded_vectors_searchable_from_text(embedded):
    docs = ["Paris is the capital and largest city of France.",
            "The giant panda is a bear native to south central China.",
            "Python is a high-level, general-purpose programming language.",
            "Photosynthesis converts light energy into chemical energy in plants."]
    ids = ["paris", "panda", "python", "photosynthesis"]
    index = sparseir.build_index(embedded.encode_documents(docs, ids=ids), kind="exact")
    queries = embedded.encode_queries(["what is the capital of france", "programming language",
                                       "how do plants use sunlight", "bear species in china"])
    scores, rows = index.search(queries, k=2)
    assert [index.doc_ids[r] for r in rows[:, 0]] == ["paris", "python", "photosynthesis", "panda"]
    assert np.all(scores[:, 0] > scores[:, 1])


def test_known_items_found_from_text(embedded):
    # Three debian-pkgs queries, their relevant passages among 30 others.
    queries = list(itertools.islice(sparseir.read_texts(shared("debian-pkgs", "queries.tsv")), 3))
    relevant = {q.query_id: q.doc_id for q in sparseir.read_qrels(shared("debian-pkgs", "qrels.txt"))}
    wanted = {relevant[q.id] for q in queries}
    records = [r for r in itertools.islice(sparseir.read_texts(shared("debian-pkgs", "collection.tsv")), 400)
               if r.id in wanted or int(r.id) % 13 == 0][:40]
    assert wanted <= {r.id for r in records}
    index = sparseir.build_index(embedded.encode_documents([r.text for r in records], ids=[r.id for r in records]))
    _, rows = index.search(embedded.encode_queries([q.text for q in queries], ids=[q.id for q in queries]), k=3)
    found = [relevant[q.id] in {index.doc_ids[r] for r in row} for q, row in zip(queries, rows)]
    assert all(found)


# --- options ------------------------------------------------------------------------------

def test_top_k_threshold_and_quantize():
    weights = np.array([[0.0, 0.5, 2.0, 0.25, 1.0], [3.0, 0.0, 0.0, 0.004, 0.0]], dtype=np.float32)
    sizes, terms, values = sparsify(weights, EncoderOptions(top_k=2))
    assert sizes.tolist() == [2, 2] and terms.tolist() == [2, 4, 0, 3]
    sizes, terms, values = sparsify(weights, EncoderOptions(threshold=0.3))
    assert terms.tolist() == [1, 2, 4, 0]
    sizes, terms, values = sparsify(weights, EncoderOptions(quantize=100))
    assert values.tolist() == [50, 200, 25, 100, 300]  # 0.004 * 100 rounds to 0: dropped
    assert sizes.tolist() == [4, 1]


def test_pruned_vectors_keep_the_largest_weights(tiny_splade):
    full = load_encoder(tiny_splade).encode_documents(TEXTS[:2])
    pruned = load_encoder(tiny_splade, top_k=5).encode_documents(TEXTS[:2])
    for whole, kept in zip(full, pruned):
        assert np.allclose(np.sort(kept.weights), np.sort(whole.weights)[-5:])


@pytest.mark.parametrize("options", [{"top_k": 0}, {"threshold": -1.0}, {"quantize": 0}, {"dtype": "float8"},
                                     {"doc_max_length": 2}, {"threads": 0}, {"no_such_option": 1}])
def test_bad_options_name_the_parameter(options):
    with pytest.raises(ParameterError, match=next(iter(options))):
        load_encoder("default", **options)


def test_max_length_beyond_the_model_positions(tiny_splade):
    with pytest.raises(ParameterError, match="exceeds the model's 512 positions"):
        load_encoder(tiny_splade, doc_max_length=600).encode_documents(["text"])


def test_ids_must_match_texts(tiny_splade):
    with pytest.raises(ParameterError, match="2 ids for 1 texts"):
        load_encoder(tiny_splade).encode_documents(iter(["text"]), ids=["a", "b"])


def test_unknown_kind():
    with pytest.raises(ParameterError, match="kind"):
        load_encoder("default", kind="colbert")


# --- bad input ------------------------------------------------------------------------------

def test_empty_text_names_the_id(tiny_splade):
    with pytest.raises(ParameterError, match="'q2'"):
        load_encoder(tiny_splade).encode_queries(["fine", "   "], ids=["q1", "q2"])


def test_over_long_text_is_truncated_and_counted(tiny_splade, caplog):
    encoder = load_encoder(tiny_splade, doc_max_length=8)
    with caplog.at_level(logging.WARNING, logger="sparseir.encoder"):
        vectors = encoder.encode_documents([TEXTS[2], TEXTS[1], TEXTS[4]])
    assert "truncated 2 of 3 texts to 8 tokens" in caplog.text
    # Only the first 6 word pieces (plus [CLS], [SEP]) count.
    assert np.allclose(dense(vectors[:1]), dense(encoder.encode_documents([" ".join(TEXTS[2].split()[:6])])))


def test_missing_model_files(tmp_path, tiny_splade):
    with pytest.raises(InputError, match="model directory not found"):
        load_encoder(tmp_path / "nowhere")
    shutil.copy(tiny_splade / "config.json", tmp_path / "config.json")
    with pytest.raises(InputError, match="missing model.safetensors"):
        load_encoder(tmp_path)
    with pytest.raises(InputError, match="no uniCOIL head: missing unicoil_head.safetensors"):
        load_encoder(tiny_splade, kind="unicoil")


def test_bad_unicoil_head(tmp_path, tiny_unicoil):
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_unicoil / name, tmp_path / name)
    save_head(tmp_path, torch.randn(1, 8), torch.zeros(1))  # hidden size is 16
    with pytest.raises(InputError, match=r"weight` \[1, 16\]"):
        load_encoder(tmp_path, kind="unicoil").encode_documents(["text"])


# --- files and the command line -------------------------------------------------------------

def write_tsv(path: Path, texts: list[str]) -> list[str]:
    ids = [f"d{i}" for i in range(len(texts))]
    path.write_text("".join(f"{i}\t{t}\n" for i, t in zip(ids, texts)), encoding="utf-8")
    return ids


@pytest.mark.parametrize("name", ["vectors.jsonl", "vectors.jsonl.gz", "vectors.parquet"])
def test_encode_file_round_trip(tmp_path, tiny_splade, monkeypatch, name):
    monkeypatch.setattr(sparseir.encoder.pipeline, "CHUNK_BATCHES", 1)  # several chunks written one after another
    ids = write_tsv(tmp_path / "collection.tsv", TEXTS)
    encoder = load_encoder(tiny_splade)
    assert encoder.encode_file(tmp_path / "collection.tsv", tmp_path / name, batch_size=2) == len(TEXTS)
    expected = encoder.encode_documents(TEXTS, ids=ids)
    got = sparseir.read_vectors(tmp_path / name)
    assert list(got.ids) == ids
    assert np.array_equal(got.terms, expected.terms)
    np.testing.assert_allclose(got.weights, expected.weights, rtol=1e-5, atol=1e-6)  # batches differ


def test_encode_file_empty_text_leaves_nothing(tmp_path, tiny_splade):
    (tmp_path / "collection.tsv").write_text("a\tsome text\nb\t \nc\tmore\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"collection.tsv: empty text \(id 'b'\)"):
        load_encoder(tiny_splade).encode_file(tmp_path / "collection.tsv", tmp_path / "out.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["collection.tsv"]


def test_encode_file_refuses_unknown_extension(tmp_path, tiny_splade):
    write_tsv(tmp_path / "queries.tsv", TEXTS[:1])
    with pytest.raises(ParameterError, match="jsonl"):
        load_encoder(tiny_splade).encode_file(tmp_path / "queries.tsv", tmp_path / "out.csv", query=True)


def test_cli_encode(tmp_path, tiny_splade):
    from click.testing import CliRunner

    from sparseir.cli.encode import encode

    ids = write_tsv(tmp_path / "queries.tsv", TEXTS[:3])
    result = CliRunner().invoke(encode, ["--model", str(tiny_splade), "--query", "--top-k", "4",
                                         str(tmp_path / "queries.tsv"), "-o", str(tmp_path / "q.jsonl")])
    assert result.exit_code == 0, result.output
    vectors = sparseir.read_vectors(tmp_path / "q.jsonl")
    assert list(vectors.ids) == ids and np.all(np.diff(vectors.offsets) == 4)


# --- inference-free queries -------------------------------------------------------------------

def test_idf_query_weights(tmp_path, embedded):
    vocab = embedded.vocab
    paris, france, city = vocab.get("paris"), vocab.get("france"), vocab.get("city")
    docs = sparseir.SparseVectors.from_dicts([{"paris": 1.0, "france": 2.0}, {"paris": 0.5}, {"city": 1.0}],
                                             vocab=vocab)
    encoder = IdfQueryEncoder.from_collection(docs, tokenizer="default")
    queries = encoder.encode_queries(["Paris, paris FRANCE", "unseen words"])
    n = 3
    expected = {paris: np.log1p((n - 2 + 0.5) / 2.5), france: np.log1p((n - 1 + 0.5) / 1.5)}
    first = queries[0]
    assert dict(zip(first.terms.tolist(), first.weights.tolist())) == pytest.approx(expected)
    assert len(queries[1].terms) == 0  # no document has these terms
    assert city not in first.terms

    encoder.save(tmp_path / "idf.tsv")
    loaded = IdfQueryEncoder.load(tmp_path / "idf.tsv")
    assert np.allclose(loaded.idf, encoder.idf)
    with pytest.raises(ParameterError, match="only encodes queries"):
        loaded.encode_documents(["text"])


@pytest.mark.parametrize("line, message", [("paris\tlots", "not a number"), ("paris\t-1", "non-negative"),
                                           ("notaword!\t1.0", "not in the tokenizer"), ("paris", "2 tab")])
def test_idf_file_errors_name_the_line(tmp_path, line, message):
    (tmp_path / "idf.tsv").write_text(f"france\t1.5\n{line}\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"idf.tsv:2: .*{message}"):
        IdfQueryEncoder.load(tmp_path / "idf.tsv")


def test_load_encoder_idf_kind(tmp_path, embedded):
    docs = embedded.encode_documents(TEXTS)
    IdfQueryEncoder.from_collection(docs).save(tmp_path / "idf.tsv")
    encoder = load_encoder("default", kind="idf", idf=str(tmp_path / "idf.tsv"))
    assert encoder.encode_documents(TEXTS).equals(docs)
    index = sparseir.build_index(docs)
    _, rows = index.search(encoder.encode_queries(["bm25"]), k=1)
    assert rows[0, 0] == 3
    with pytest.raises(ParameterError, match="idf=PATH"):
        load_encoder("default", kind="idf")


# --- devices --------------------------------------------------------------------------------

def test_device_auto_falls_back_to_the_cpu_without_an_accelerator():
    from sparseir.encoder import resolve_device

    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has an accelerator, so auto does not fall back")
    assert resolve_device("auto").type == "cpu"
    assert load_encoder("default").documents.device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-4), ("float16", 2e-2), ("bfloat16", 6e-2)])
def test_gpu_vectors_equal_cpu_vectors(tiny_splade, dtype, tolerance):
    on_cpu = load_encoder(tiny_splade, device="cpu").encode_documents(TEXTS)
    on_gpu = load_encoder(tiny_splade, device="cuda", dtype=dtype).encode_documents(TEXTS)
    np.testing.assert_allclose(dense(on_gpu), dense(on_cpu), rtol=tolerance, atol=tolerance)
