"""Text -> sparse vectors: SPLADE, uniCOIL and inference-free (IDF) query encoders.

    encoder = sparseir.encoder.load_encoder("default")   # the embedded splade-tiny model
    docs = encoder.encode_documents(texts, ids=ids)
    queries = encoder.encode_queries(["what is a sparse index"])

A model is a local Hugging Face directory; nothing is ever downloaded. Every encoder
shares one pipeline: tokenize (truncating over-long texts), sort by length, pad each
batch only to its own longest text, weight the terms, restore the input order, prune or
quantise, and return `SparseVectors` over the tokenizer's vocabulary. A side (documents
or queries) is a `TermWeighter`; documents and queries may use different ones.
"""

from ._base import (DEFAULT_MODEL, DTYPES, EMBEDDED_MODEL, KINDS, MODEL_IDF_FILE, TOKENIZER_FILES, WEIGHT_FILES,
                    EncoderOptions, TermWeighter, TransformerWeighter, check_model_directory, load_tokenizer,
                    model_directory, resolve_device, special_token_ids, tokenizer_vocabulary)
from .idf import IdfQueryEncoder
from .load import load_encoder
from .output import vector_writer
from .pipeline import Encoder, batch_rows, batched, sparsify

__all__ = ["DEFAULT_MODEL", "DTYPES", "EMBEDDED_MODEL", "Encoder", "EncoderOptions", "IdfQueryEncoder", "KINDS",
           "MODEL_IDF_FILE", "TOKENIZER_FILES", "TermWeighter", "TransformerWeighter", "WEIGHT_FILES", "batch_rows",
           "batched", "check_model_directory", "load_encoder", "load_tokenizer", "model_directory", "resolve_device",
           "sparsify", "special_token_ids", "tokenizer_vocabulary", "vector_writer"]
