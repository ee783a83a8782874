"""Which vocabulary a vector reader maps terms through: the caller's, or one chosen by name.

``"auto"`` (the default) takes the BERT uncased WordPiece vocabulary when every term of
the file is in it, else an open one; ``"bert"`` insists on BERT; ``"open"`` grows from
the terms read. A `Vocabulary` object (an index's, when reading its queries) is used as
it is.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ..vectors import Vocabulary

VOCAB_CHOICES = ("auto", "bert", "open")
OPEN_VOCAB_HINT = "pass vocab='open' / --vocab open for vectors over another vocabulary"


def check_vocab(vocab: Vocabulary | str | None) -> None:
    if not isinstance(vocab, Vocabulary) and vocab not in (None, *VOCAB_CHOICES):
        raise ParameterError(f"vocab must be a Vocabulary or one of {', '.join(VOCAB_CHOICES)}, got {vocab!r}")


def resolve_vocab(vocab: Vocabulary | str | None) -> Vocabulary:
    """The vocabulary a reader starts from ("auto" starts from BERT)."""
    check_vocab(vocab)
    if isinstance(vocab, Vocabulary):
        # Readers grow open vocabularies; never mutate the caller's (or an index's) copy.
        return Vocabulary(vocab.terms, vocab.name, vocab.open)
    return Vocabulary.growing() if vocab == "open" else Vocabulary.default()


def is_auto(vocab: Vocabulary | str | None) -> bool:
    return vocab is None or vocab == "auto"


def unknown_term_hint(vocab: Vocabulary | str | None) -> str:
    """The end of an unknown-term message: a suggestion only where BERT was chosen by name,
    as another choice exists there (an index's vocabulary, say, has none)."""
    return f"; {OPEN_VOCAB_HINT}" if vocab == "bert" else ""


def vocab_for_term_ids(terms: np.ndarray, offsets: np.ndarray,
                       vocab: Vocabulary | str | None) -> tuple[Vocabulary, np.ndarray]:
    """(vocabulary, term ids) for formats that store term ids and no vocabulary (.bin, a
    foreign Parquet file); raises ParameterError naming the first row with an id outside
    a fixed vocabulary.

    "auto" keeps the ids as BERT ids when they all fit, like "bert"; otherwise, and for
    "open", the ids used become the terms, named by their numbers ("17"), as JSONL integer
    dimensions are. Renumbering them in ascending order keeps every row sorted; np.unique
    costs O(non-zeros), however large the ids.
    """
    if len(terms) and int(terms.min()) < 0:  # Parquet's int32 lists can hold them
        raise ParameterError(f"term id {int(terms.min())} is negative")
    start = resolve_vocab(vocab)
    outside = len(terms) > 0 and int(terms.max()) >= len(start)
    if isinstance(vocab, Vocabulary) or vocab == "bert" or (is_auto(vocab) and not outside):
        if outside:
            row = int(np.searchsorted(offsets, np.argmax(terms >= len(start)), side="right") - 1)
            raise ParameterError(f"vector {row}: term id {int(terms.max())} outside the vocabulary "
                                 f"(size {len(start)}{unknown_term_hint(vocab)})")
        return start, terms
    used, renumbered = np.unique(terms, return_inverse=True)
    return Vocabulary([str(term_id) for term_id in used.tolist()], open=True), renumbered
