"""load_encoder: an encoder of any kind from local model directories."""

from __future__ import annotations

import dataclasses
import os

from ..errors import ParameterError, require
from ._base import DEFAULT_MODEL, KINDS, MODEL_IDF_FILE, EncoderOptions
from .pipeline import Encoder


def load_encoder(model: str | os.PathLike = DEFAULT_MODEL, kind: str = "splade",
                 query_model: str | os.PathLike | None = None, **options) -> Encoder:
    """Load an encoder from local files only.

    model: "default" (the embedded splade-tiny) or a Hugging Face model directory.
    kind: "splade" (masked-LM), "unicoil" (encoder + linear head, see docs/encoders.md) or
    "idf" (documents with the SPLADE `model`, queries weighted by the IDF table `idf=`, by
    default the model directory's own idf.json as OpenSearch's inference-free models ship).
    query_model: a different model directory for queries (splade, unicoil).
    options: the fields of `EncoderOptions`.
    """
    from ..extras import require_extra

    require_extra("encode", "encoding text")
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(EncoderOptions)})
    if unknown:
        raise ParameterError(f"unknown encoder option(s) {', '.join(unknown)}")
    settings = EncoderOptions(**options)
    if kind == "idf":
        from .idf import IdfQueryEncoder
        from .splade import SpladeWeighter

        require(query_model is None, "query_model does not apply to kind 'idf' (queries are weighted by idf=)")
        documents = SpladeWeighter(model, settings)
        idf = settings.idf
        if idf is None and (documents.directory / MODEL_IDF_FILE).is_file():
            idf = documents.directory / MODEL_IDF_FILE
        require(idf is not None, f"kind 'idf' needs idf=PATH (a term<TAB>idf or .json file), or a model "
                                 f"directory with {MODEL_IDF_FILE}; {documents.directory} has none")
        return IdfQueryEncoder.load(idf, documents.tokenizer, documents, settings)
    if kind == "splade":
        from .splade import SpladeWeighter as weighter
    elif kind == "unicoil":
        from .unicoil import UnicoilWeighter as weighter
    else:
        raise ParameterError(f"unknown encoder kind {kind!r}; choose one of {', '.join(KINDS)}")
    documents = weighter(model, settings)
    queries = weighter(query_model, settings) if query_model is not None else None
    return Encoder(documents, queries, settings)
