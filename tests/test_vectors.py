import numpy as np
import pytest
import scipy.sparse

import sparseir
from sparseir import SparseVectors, Vocabulary


def small():
    vocab = Vocabulary(["a", "b", "c", "d"])
    return SparseVectors.from_dicts([{"b": 2.0, "a": 1.0}, {}, {"d": 0.5}], ids=["x", "y", "z"], vocab=vocab)


def test_from_dicts_sorts_terms_and_keeps_ids():
    vectors = small()
    assert vectors.offsets.tolist() == [0, 2, 2, 3]
    assert vectors.terms.tolist() == [0, 1, 3]
    assert vectors.weights.dtype == np.float32 and vectors.terms.dtype == np.int32
    assert vectors[0].as_dict(vectors.vocab) == {"a": 1.0, "b": 2.0}
    assert [v.id for v in vectors] == ["x", "y", "z"]


def test_slice_take_concatenate_scipy_round_trip():
    vectors = small()
    assert vectors[1:].equals(vectors.take([1, 2]))
    assert SparseVectors.concatenate([vectors[:1], vectors[1:]]).equals(vectors)
    assert vectors[::2].ids.tolist() == ["x", "z"]
    assert SparseVectors.from_scipy(vectors.to_scipy(), ids=vectors.ids, vocab=vectors.vocab).equals(vectors)


def test_from_scipy_merges_duplicates_and_drops_zeros():
    matrix = scipy.sparse.csr_matrix((np.array([1.0, 2.0, 0.0]), np.array([1, 1, 0]), np.array([0, 3])), shape=(1, 4))
    vectors = SparseVectors.from_scipy(matrix, vocab=Vocabulary(list("abcd")))
    assert vectors[0].as_dict() == {1: 3.0}


@pytest.mark.parametrize("vector, message", [
    ({"a": float("nan")}, "NaN"), ({"a": float("inf")}, "NaN or infinite"), ({"a": -1.0}, "negative"),
    ({"zzz": 1.0}, "unknown term 'zzz'"), ({7: 1.0}, "outside the vocabulary"),
])
def test_bad_vectors_are_refused(vector, message):
    with pytest.raises(sparseir.ParameterError, match=message):
        SparseVectors.from_dicts([vector], vocab=Vocabulary(["a"]))


def test_default_vocabulary_is_bert_wordpiece():
    vocab = Vocabulary.default()
    assert len(vocab) == 30522 and vocab.get("[CLS]") == 101 and vocab.get("paris") is not None


def test_open_vocabulary_grows():
    vectors = SparseVectors.from_dicts([{"new": 1.0}, {"word": 2.0, "new": 1.0}], vocab=Vocabulary.growing())
    assert vectors.vocab.terms == ["new", "word"]
