"""sparseir: learned sparse retrieval with block-skipping and score-at-a-time indexes.

    docs = sparseir.read_vectors("collection.jsonl.gz")
    index = sparseir.build_index(docs, kind="exact")
    index.save("index/")
    index = sparseir.load_index("index/")
    scores, rows = index.search(sparseir.read_vectors("queries.jsonl", vocab=index.vocab), k=10)
"""

__version__ = "0.1.0"

from .errors import IndexFormatError, InputError, ParameterError, SparseirError
from .formats import (BadLines, Qrel, ScoredDoc, TextRecord, read_documents, read_qrels, read_queries, read_run,
                      read_texts, read_vectors, write_run, write_texts, write_vectors)
from .fusion import fuse
from .index import KINDS, Index, build_index, build_index_from
from .loading import load_index
from .segments import create_segmented, make_segmented
from .searchable import Searchable
from .vectors import SparseVector, SparseVectors, Vocabulary

__all__ = ["__version__", "BadLines", "Index", "IndexFormatError", "InputError", "KINDS", "ParameterError", "Qrel",
           "ScoredDoc", "Searchable", "SparseVector", "SparseVectors", "SparseirError", "TextRecord", "Vocabulary",
           "build_index", "build_index_from", "create_segmented", "fuse", "load_index", "make_segmented", "read_documents", "read_qrels", "read_queries", "read_run", "read_texts",
           "read_vectors", "write_run", "write_texts", "write_vectors"]
