"""The request and response schemas of ``sparseir serve``, declared once: requests are validated
against them (unknown fields and wrong types refused: strict, extra="forbid"), and
``/openapi.json`` and ``/docs`` are generated from them."""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .config import MAX_FILTER_LENGTH, MAX_K, MAX_TEXT

Weight = Annotated[float, Field(allow_inf_nan=False, ge=0)]
Id = Union[str, int]
Vector = dict[str, Weight]
Knob = Union[bool, int, float, str, None]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Query(Request):
    """A query: term weights, or text the server's query encoder turns into them."""

    id: Optional[Id] = Field(None, description="Echoed in the answer; default: the query's position.")
    vector: Optional[Vector] = Field(None, description="{term: weight}, weights finite and >= 0.",
                                     examples=[{"sparse": 1.2, "index": 0.8}])
    text: Optional[str] = Field(None, max_length=MAX_TEXT, description="Raw text (needs a query encoder).")

    @model_validator(mode="after")
    def one_form(self):
        if (self.vector is None) == (self.text is None):
            raise ValueError("give exactly one of vector and text")
        return self


class IdsFilter(Request):
    ids: list[Id] = Field(description="Only these documents (external ids).")


class SearchRequest(Request):
    queries: list[Query] = Field(min_length=1)
    k: int = Field(10, ge=1, le=MAX_K, description="Results per query.")
    params: dict[str, Knob] = Field(default_factory=dict, description="Query settings of the index's kind "
                                    "(e.g. n_candidate, query_prune_ratio); the server's defaults otherwise.")
    filter: Union[Annotated[str, Field(max_length=MAX_FILTER_LENGTH)], IdsFilter, None] = Field(
        None, description="An attribute expression (\"lang = 'en' and year >= 2020\") or {\"ids\": [...]}.")
    passages: bool = Field(False, description="Add each hit's passage text (servers given --collection).")


class Hit(BaseModel):
    id: str
    score: float
    rank: int
    text: Optional[str] = None


class QueryResult(BaseModel):
    id: Id
    hits: list[Hit]


class SearchResponse(BaseModel):
    results: list[QueryResult]
    generation: Optional[int] = Field(None, description="The generation searched (segmented indexes).")


class ExplainRequest(Request):
    query: Query
    id: Id = Field(description="The document to explain.")
    params: dict[str, Knob] = Field(default_factory=dict)


class TermContribution(BaseModel):
    term: str
    query_weight: float
    doc_weight: float
    contribution: float


class ExplainResponse(BaseModel):
    id: str
    score: Optional[float] = Field(description="The kind's score for the document with these settings "
                                   "(null: its search does not reach it).")
    exact_score: float = Field(description="The sum of the contributions.")
    weights: Literal["float32", "float16", "quantized"] = Field(
        description="What the document weights are: exact (float32, as indexed), float16, or dequantized impacts.")
    terms: list[TermContribution]


class Document(Request):
    id: Id
    vector: Optional[Vector] = None
    text: Optional[str] = Field(None, max_length=MAX_TEXT)

    @model_validator(mode="after")
    def one_form(self):
        if (self.vector is None) == (self.text is None):
            raise ValueError("give exactly one of vector and text")
        return self


class AddRequest(Request):
    documents: list[Document] = Field(min_length=1)
    upsert: bool = Field(False, description="Replace documents whose id is already in the index.")


class DeleteRequest(Request):
    ids: list[Id] = Field(min_length=1)


class WriteResponse(BaseModel):
    generation: int = Field(description="The generation committed: searches from now on see it.")
    documents: int = Field(description="Live documents.")
    segments: int


class Health(BaseModel):
    status: Literal["ok"]
    generation: Optional[int] = None


class Vocab(BaseModel):
    name: Optional[str]
    terms: int
    open: bool


class Info(BaseModel):
    version: str
    kind: str
    shape: Literal["index", "segmented", "sharded"]
    documents: int = Field(description="Live documents.")
    generation: Optional[int]
    vocabulary: Optional[Vocab]
    settings: dict = Field(description="search: the effective query settings; build: the build parameters.")
    writes: bool
    text_queries: bool
    passages: bool
    limits: dict
    batching: dict


class Error(BaseModel):
    error: str = Field(description="What was wrong, in one line.")
