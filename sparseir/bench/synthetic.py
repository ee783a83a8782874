"""MS MARCO-shaped synthetic SPLADE vectors, streamed to Parquet parts (no model, no download).

``generate(OUT_DIR, n_docs, n_queries, seed, ...)`` (or ``python bench/msmarco_synthetic.py
OUT_DIR``, its command line) writes::

    OUT_DIR/collection/part-00000.parquet ...   id, terms, weights (sparseir's Parquet layout) + group, topic
    OUT_DIR/queries.parquet                      id, terms, weights + group, topic, source (its passage)
    OUT_DIR/qrels.txt                            TREC qrels: each query's source passage, relevance 1
    OUT_DIR/stats.json                           realised statistics, parameters, timing, peak memory

``sparseir.read_vectors`` reads every file (a part at a time). Term ids are those of the
BERT uncased WordPiece vocabulary (30,522 ids, ``sparseir.Vocabulary.default()``), named in
each file's schema metadata as sparseir's own Parquet writer names it.

Figures followed (SPLADE++ CoCondenser-EnsembleDistil, "SPLADE++ ED": Formal, Lassance,
Piwowarski and Clinchant, "From Distillation to Hard Negative Sampling", SIGIR 2022, arXiv
2205.04733; the model Seismic and most efficiency papers index MS MARCO with):

- Collection: 8,841,823 passages (MS MARCO v1 passage), 6,980 queries (dev/small). The
  passages are the Bing results of 1,010,916 queries, ~8.75 per query (Nguyen et al.,
  "MS MARCO", 2016): modelled as query groups, below.
- Non-zeros: 119 per passage and 43 per query on average, the figures of Bruch, Nardini,
  Rulli and Venturini, "Efficient Inverted Indexes for Approximate Retrieval over Learned
  Sparse Representations" (Seismic, SIGIR 2024, arXiv 2404.18812), Table 1, for Splade on
  MS MARCO (quoted from that table as we know it; not re-checked against the PDF here).
  119 x 8.84M = 1.05 billion non-zeros: the "about a billion" these papers work with.
- Weight mass: 59.2 per passage (mean weight 59.2 / 119 = 0.50). Anserini's regression for
  the pre-encoded SPLADE++ ED corpus (castorini/anserini,
  src/main/resources/regression/msmarco-passage-splade-pp-ed.yaml) counts 52,376,261,130
  "total terms" over 8,841,823 passages, its weights being stored as round(100 w).
  (DistilSPLADE-max, SPLADE v2, arXiv 2109.10086: 95,445,422,483, i.e. 107.9 per passage.)
- FLOPS between 1.14 and 3.82: FLOPS, the expected number of matching terms of a query and
  a passage, sum_j p_j(query) p_j(passage) (Formal et al., SPLADE, SIGIR 2021, and SPLADE
  v2), is 1.14 / 1.48 for SPLADE-max and 3.82 for DistilSPLADE-max on NAVER's SPLADE model
  page (europe.naverlabs.com, "SPLADE models"). stats.json reports the realised value.
- Effectiveness: SPLADE++ ED reaches MRR@10 0.383 and R@1000 0.983 on dev/small (NAVER's
  model card; Anserini's regression above: RR@10 0.3830, R@100 0.9095, R@1000 0.9831). The
  queries are tuned so that exact search over the full-size collection ranks each query's
  source passage about as well: MRR@10 ~0.37, R@100 ~0.82, R@1000 ~0.97, estimated on 300
  queries against all group members plus a 500,000-passage sample.
- Weight form: log(1 + ReLU(logit)) of max-pooled MLM logits (SPLADE v2). Mackenzie,
  Trotman and Lin, "Wacky Weights in Learned Sparse Representations and the Revenge of
  Score-at-a-Time Query Evaluation" (arXiv 2110.11540) show weights and posting lists
  unlike BM25's; Bruch et al. (Seismic) find "concentration of importance": a vector's
  few largest entries carry much of its L1 mass (stats.json: l1_mass_in_top10).

Assumed (nothing published pins these down; stats.json shows what they give):

- Non-zeros per passage log-normal around the mean, sigma 0.35, clipped to [8, 512]
  (5th-95th percentiles ~63-199); per query sigma 0.35, clipped to [4, 256].
- Three laws per passage, drawn from without replacement:
  - its group's (25% of draws): the passage's query group, one of 1,010,916 (uniformly; so
    a collection smaller than MS MARCO is a sample of it, with smaller groups; --n-groups
    changes this). A group has 12 terms, 30% from its topic's law and 70% from the
    content law (the global law flattened to p^0.6), with a Zipf law (slot + 1)^-0.8 over
    them. The first of them act as the group's query words.
  - its topic's (logistic-normal share around 45% of the other draws): 10,000 topics (a
    group's topic) of log-normal popularity (sigma 1), each of 256 terms drawn from the
    content law, with a Zipf law (slot + 3)^-0.9 over them;
  - the global law: Zipf-like over a fixed seeded random order of the ids,
    p(rank r) ~ (r + 30)^-1.15, over the 29,523 ids that are neither [unused*] nor [PAD],
    [UNK], [CLS], [SEP], [MASK] (which SPLADE does not activate in practice).
  Realised document frequencies are heavy-tailed: the head term in ~45% of passages, ~130
  terms in over 10%, ~1,600 in over 1%, a tail around 0.05%. Passages of one group share
  ~29 terms, of one topic ~21, two random passages ~8: BP reordering, block-max bounds and
  Seismic's clustering have structure to find. Groups and topics are drawn independently
  per passage, so the collection is in random order (see below); the `group` and `topic`
  columns expose them.
- Weights: w = log(1 + a), a log-normal (sigma 1) around a location that is highest for
  group terms, then topic terms (more for a topic's head terms), lowest for global terms,
  falling with a term's global frequency (the FLOPS regulariser pushes frequent dimensions
  down), moved by a per-passage offset (sigma 0.25). Tuned to the mean of 0.50 above;
  realised: median ~0.37, 99th percentile ~2.0, 99.9th ~2.8, capped at 5. float32.
- Queries like dev/small: each picks a source passage uniformly (qrels.txt names it) and
  is its group's query: 3-8 of the group's first terms (MS MARCO queries have ~6 words) at
  query-word weights (median ~1.3), the source's heaviest other term (0.6 x its weight),
  then expansions half from the topic, half from the global law at low weights, up to the
  query's length (weights capped at 4). A query's nearest passages are its group (the
  source among them), then its topic.

Determinism: passage i depends only on (seed, i) and the parameters: each passage has its
own counter-based random stream (SplitMix64 of (seed, i)), never --n-docs, --part-size,
--row-group or the order of generation; any chunk or single passage regenerates alone
(`generate_docs(model, indices)`). Query j depends on (seed, j, --n-docs), its source being
drawn in [0, n_docs). Same seed, same parameters: same arrays, and the same bytes under
the same pyarrow version.

Streaming: one row group (default 100,000 passages) is generated, written and dropped at a
time; a part (default 1,000,000 passages) goes to a hidden temporary file, fsynced and
renamed into place, so no half-written file ever has a part's name. Memory is one row
group (~100 MB of vectors at this shape, plus Parquet's encoding buffers) on top of the
interpreter, numba and pyarrow (~300 MB), whatever --n-docs: peak RSS ~0.7 GB.

Not modelled: MS MARCO's own order (its passage ids appear to run query by query, pids 0-9
all about the Manhattan Project, a head start for document reordering that the random
order written here does not give),
near-duplicate passages, any link between a passage's length and its weights, real token
strings (the head terms are random ids, not common English wordpieces).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist
from typing import NamedTuple

import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..fileio import atomic_file
from ..formats.parquet import VOCAB_KEY, vocab_metadata
from ..vectors import Vocabulary

MSMARCO_PASSAGES = 8_841_823
DEV_SMALL_QUERIES = 6_980
MSMARCO_QUERIES = 1_010_916  # the queries whose Bing results make up the passage collection
PART_SIZE = 1_000_000
ROW_GROUP = 100_000

# Figures from the literature (module docstring).
PUBLISHED = {
    "passages": MSMARCO_PASSAGES,
    "queries_dev_small": DEV_SMALL_QUERIES,
    "nnz_per_passage": 119.0,   # Seismic (SIGIR 2024) Table 1, Splade on MS MARCO
    "nnz_per_query": 43.0,      # idem
    "weight_sum_per_passage": 52_376_261_130 / MSMARCO_PASSAGES / 100,  # Anserini splade-pp-ed
    "flops_range": [1.14, 3.82],  # NAVER SPLADE models page: SPLADE-max .. DistilSPLADE-max
    # SPLADE++ ED on dev/small (Anserini regression): how well queries are tuned to rank their source
    "rr_at_10": 0.3830,
    "recall_at_100": 0.9095,
    "recall_at_1000": 0.9831,
}


@dataclass(frozen=True)
class Params:
    """The generator's parameters (recorded in stats.json); the docstring says which are assumed."""

    doc_nnz_mean: float = 119.0
    doc_nnz_sigma: float = 0.35
    doc_nnz_min: int = 8
    doc_nnz_max: int = 512
    query_nnz_mean: float = 43.0
    query_nnz_sigma: float = 0.35
    query_nnz_min: int = 4
    query_nnz_max: int = 256
    global_zipf: float = 1.15
    global_offset: float = 30.0
    n_groups: int = MSMARCO_QUERIES       # one per MS MARCO query, ~8.75 passages each at full size
    group_terms: int = 12
    group_zipf: float = 0.8
    group_offset: float = 1.0
    group_topic_frac: float = 0.3          # group terms from the topic's law, the rest from the content law
    group_share: float = 0.25              # of a passage's draws
    n_topics: int = 10_000
    topic_popularity_sigma: float = 1.0
    topic_terms: int = 256
    topic_term_bias: float = 0.6
    topic_zipf: float = 0.9
    topic_offset: float = 3.0
    topic_share: float = 0.45              # of the draws that are not the group's
    topic_share_sigma: float = 0.5
    # weights: w = log1p(exp(mu + doc_offset + sigma z))
    weight_sigma: float = 1.0
    weight_doc_sigma: float = 0.25
    weight_mu_group: float = -0.07
    weight_mu_topic: float = -0.45
    weight_mu_topic_slope: float = 0.5     # the topic's head terms are heavier
    weight_mu_global: float = -1.85        # the most frequent global term
    weight_mu_global_slope: float = 1.0    # ... rising to this much more for the rarest
    query_words: tuple = (3, 8)            # the group's first terms (MS MARCO queries: ~6 words)
    query_mu_word: float = 1.0
    query_source_terms: int = 1            # the source passage's heaviest other terms
    query_source_boost: float = 0.6        # their query weight ~ boost * passage weight
    query_topic_share: float = 0.5
    query_mu_topic: float = -0.6
    query_mu_global: float = -1.3
    query_weight_sigma: float = 0.8
    query_weight_max: float = 4.0
    weight_max: float = 5.0

    def __post_init__(self):
        checks = {"n_topics >= 1": self.n_topics >= 1,
                  "0 < topic_share < 1": 0 < self.topic_share < 1,
                  "0 < query_topic_share < 1": 0 < self.query_topic_share < 1,
                  "0 < group_share < 1, 0 < group_topic_frac < 1": 0 < self.group_share < 1
                  and 0 < self.group_topic_frac < 1,
                  "1 <= n_groups < 2^31, 1 <= group_terms <= 256": 1 <= self.n_groups < 2**31
                  and 1 <= self.group_terms <= 256,
                  "1 <= query_words[0] <= query_words[1]": 1 <= self.query_words[0] <= self.query_words[1],
                  "1 <= doc_nnz_min <= doc_nnz_max <= 4096": 1 <= self.doc_nnz_min <= self.doc_nnz_max <= 4096,
                  "1 <= query_nnz_min <= query_nnz_max <= 4096": 1 <= self.query_nnz_min <= self.query_nnz_max <= 4096,
                  "1 <= topic_terms <= 4096": 1 <= self.topic_terms <= 4096,
                  "doc_nnz_mean, query_nnz_mean > 0": self.doc_nnz_mean > 0 and self.query_nnz_mean > 0}
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"invalid parameters: {', '.join(failed)}")


# --- counter-based random numbers (SplitMix64), usable from numba ------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2^-53
_NORMAL_TABLE_BITS = 14
# Standard normal quantiles at k / 2^14 (ends clamped at 1e-6): z by linear interpolation of a
# uniform, accurate to ~1e-4 in the body, tails cut at |z| = 4.75.
_NORMAL_TABLE = np.array([NormalDist().inv_cdf(min(max(k / (1 << _NORMAL_TABLE_BITS), 1e-6), 1 - 1e-6))
                          for k in range((1 << _NORMAL_TABLE_BITS) + 1)])

STREAM_MODEL, STREAM_DOCS, STREAM_QUERIES, STREAM_GROUPS = 1, 2, 3, 4


@numba.njit(cache=True)
def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@numba.njit(cache=True)
def _start(key, i):
    """The stream of item i under key: a state to pass to _next."""
    return _mix(np.uint64(key) ^ _mix(np.uint64(i) * _GOLDEN + _M2))


@numba.njit(cache=True)
def _next(state):
    """(new state, uniform in [0, 1))."""
    state = np.uint64(state) + _GOLDEN
    return state, float(_mix(state) >> _S11) * _TO_UNIT


@numba.njit(cache=True)
def _normal(u, table):
    x = u * (table.shape[0] - 1)
    k = int(x)
    return table[k] + (x - k) * (table[k + 1] - table[k])


@numba.njit(cache=True)
def _alias(u, prob, alias):
    """One draw from a Vose alias table, from one uniform (its integer and fractional parts)."""
    x = u * prob.shape[0]
    k = min(int(x), prob.shape[0] - 1)
    return k if x - k < prob[k] else alias[k]


def stream_key(seed: int, stream: int) -> np.uint64:
    """The key of one stream (model, passages, queries) under a seed."""
    # (np.uint64 again: numba returns a plain int, which it would type as int64 if below 2^63)
    return np.uint64(_stream_key(np.uint64(seed & 0xFFFFFFFFFFFFFFFF), np.uint64(stream)))


@numba.njit(cache=True)
def _stream_key(seed, stream):
    return _mix(_mix(seed * _GOLDEN + _M1) ^ _mix(stream))


def alias_table(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias method: (prob, alias) so that _alias draws index k with probability p[k]."""
    p = np.asarray(p, dtype=np.float64)
    return _alias_build(p / p.sum() * len(p))


@numba.njit(cache=True)
def _alias_build(scaled):
    n = scaled.shape[0]
    prob = np.ones(n)
    alias = np.arange(n).astype(np.int32)
    small = np.empty(n, np.int64)
    large = np.empty(n, np.int64)
    ns = nl = 0
    for k in range(n):
        if scaled[k] < 1.0:
            small[ns] = k
            ns += 1
        else:
            large[nl] = k
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        g = large[nl - 1]
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] = scaled[g] + scaled[s] - 1.0
        if scaled[g] < 1.0:
            nl -= 1
            small[ns] = g
            ns += 1
    return prob, alias


# --- the model: vocabulary order, global law, topics, groups ----------------------------------------------


class Tables(NamedTuple):
    """The model's arrays, as the kernels take them."""

    order: np.ndarray          # rank -> term id (the active ids in a seeded random order)
    global_prob: np.ndarray    # alias table of the global law over ranks
    global_alias: np.ndarray
    rank_mu: np.ndarray        # weight location of a global draw, per rank
    content_prob: np.ndarray   # alias table of the flattened global law topics and groups draw from
    content_alias: np.ndarray
    topic_prob: np.ndarray     # alias table of topic popularity
    topic_alias: np.ndarray
    topic_terms: np.ndarray    # (n_topics, topic_terms) term ids, slot order
    slot_prob: np.ndarray      # alias table of the within-topic law over slots
    slot_alias: np.ndarray
    slot_mu: np.ndarray        # weight location of a topic draw, per slot
    group_slot_prob: np.ndarray  # alias table of the within-group law over slots
    group_slot_alias: np.ndarray
    normal_table: np.ndarray
    softplus: np.ndarray


class Knobs(NamedTuple):
    """The scalars the kernels use (derived from Params)."""

    key_docs: np.uint64
    key_groups: np.uint64
    key_queries: np.uint64
    vocab_size: int
    n_groups: int
    group_terms: int
    group_topic_frac: float
    doc_nnz_mu: float
    doc_nnz_sigma: float
    doc_nnz_min: int
    doc_nnz_max: int
    group_share: float
    topic_share_logit: float
    topic_share_sigma: float
    weight_sigma: float
    weight_doc_sigma: float
    weight_mu_group: float
    weight_max: float
    query_nnz_mu: float
    query_nnz_sigma: float
    query_nnz_min: int
    query_nnz_max: int
    query_words_min: int
    query_words_max: int
    query_mu_word: float
    query_source_terms: int
    query_source_boost: float
    query_topic_share: float
    query_mu_topic: float
    query_mu_global: float
    query_weight_sigma: float
    query_weight_max: float


@dataclass
class Model:
    params: Params
    seed: int
    tables: Tables
    knobs: Knobs

    @property
    def order(self) -> np.ndarray:
        return self.tables.order

    @property
    def vocab_size(self) -> int:
        return self.knobs.vocab_size


def active_term_ids(vocab: Vocabulary) -> np.ndarray:
    """Ids SPLADE can activate: all but [unused*] and the special tokens."""
    special = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    return np.array([i for i, t in enumerate(vocab.terms) if not (t in special or t.startswith("[unused"))],
                    dtype=np.int32)


def _lognormal_mu(mean: float, sigma: float) -> float:
    """Location of a log-normal with this mean."""
    return math.log(mean) - sigma * sigma / 2


def build_model(seed: int, params: Params = Params(), vocab: Vocabulary | None = None) -> Model:
    vocab = vocab or Vocabulary.default()
    p = params
    key = stream_key(seed, STREAM_MODEL)
    order = _shuffled(active_term_ids(vocab), key)
    ranks = np.arange(len(order), dtype=np.float64)
    global_p = (ranks + p.global_offset) ** -p.global_zipf
    global_p /= global_p.sum()
    # Frequent terms weigh less: location rises linearly in log rank from the head to the tail.
    rank_mu = p.weight_mu_global + p.weight_mu_global_slope * np.log1p(ranks) / math.log(len(order))
    content = alias_table(global_p ** p.topic_term_bias)
    z = np.interp(_uniforms(key, 1, p.n_topics), np.linspace(0, 1, len(_NORMAL_TABLE)), _NORMAL_TABLE)
    topic_terms = _topic_terms(key, p.n_topics, p.topic_terms, order, *content, len(vocab))
    slots = np.arange(p.topic_terms, dtype=np.float64)
    slot_mu = p.weight_mu_topic + p.weight_mu_topic_slope * (1.0 - np.log1p(slots) / math.log(p.topic_terms))
    group_slots = np.arange(p.group_terms, dtype=np.float64)
    tables = Tables(order, *alias_table(global_p), rank_mu, *content,
                    *alias_table(np.exp(p.topic_popularity_sigma * z)), topic_terms,
                    *alias_table((slots + p.topic_offset) ** -p.topic_zipf), slot_mu,
                    *alias_table((group_slots + p.group_offset) ** -p.group_zipf), _NORMAL_TABLE, _SOFTPLUS)
    knobs = Knobs(
        stream_key(seed, STREAM_DOCS), stream_key(seed, STREAM_GROUPS), stream_key(seed, STREAM_QUERIES),
        len(vocab), p.n_groups, p.group_terms, p.group_topic_frac,
        _lognormal_mu(p.doc_nnz_mean, p.doc_nnz_sigma), p.doc_nnz_sigma, p.doc_nnz_min, p.doc_nnz_max,
        p.group_share, math.log(p.topic_share / (1 - p.topic_share)), p.topic_share_sigma,
        p.weight_sigma, p.weight_doc_sigma, p.weight_mu_group, p.weight_max,
        _lognormal_mu(p.query_nnz_mean, p.query_nnz_sigma), p.query_nnz_sigma, p.query_nnz_min, p.query_nnz_max,
        p.query_words[0], p.query_words[1], p.query_mu_word, p.query_source_terms, p.query_source_boost,
        p.query_topic_share, p.query_mu_topic, p.query_mu_global, p.query_weight_sigma, p.query_weight_max)
    return Model(p, seed, tables, knobs)


# Numba functions called from Python take stream keys (np.uint64), never states: a state
# returned to Python comes back as a plain int, which numba would type int64 below 2^63.


@numba.njit(cache=True)
def _shuffled(values, key):
    """A Fisher-Yates shuffle driven by item 0 of the stream `key`."""
    state = _start(key, 0)
    out = values.copy()
    for k in range(out.shape[0] - 1, 0, -1):
        state, u = _next(state)
        j = min(int(u * (k + 1)), k)
        out[k], out[j] = out[j], out[k]
    return out


@numba.njit(cache=True)
def _uniforms(key, item, n):
    state = _start(key, item)
    out = np.empty(n)
    for k in range(n):
        state, out[k] = _next(state)
    return out


@numba.njit(cache=True)
def _topic_terms(key, n_topics, size, order, prob, alias, vocab_size):
    """Each topic's `size` distinct terms, drawn from the content law (slot = draw order)."""
    out = np.empty((n_topics, size), np.int32)
    stamp = np.zeros(vocab_size, np.int64)
    for t in range(n_topics):
        state = _start(key, 1000 + t)
        k = 0
        while k < size:
            state, u = _next(state)
            term = order[_alias(u, prob, alias)]
            if stamp[term] != t + 1:
                stamp[term] = t + 1
                out[t, k] = term
                k += 1
    return out


@numba.njit(cache=True)
def _group(g, tb, kn, out):
    """Group g's topic; its terms go to `out` (slot order): mostly its topic's, some rarer content terms.

    A group stands for one MS MARCO query and the ~9 passages Bing returned for it: they share
    these terms (the query's words first), and dev queries are made from them."""
    state = _start(kn.key_groups, g)
    state, u = _next(state)
    topic = _alias(u, tb.topic_prob, tb.topic_alias)
    k = 0
    while k < kn.group_terms:
        state, u = _next(state)
        if u < kn.group_topic_frac:
            term = tb.topic_terms[topic, _alias(u / kn.group_topic_frac, tb.slot_prob, tb.slot_alias)]
        else:
            term = tb.order[_alias((u - kn.group_topic_frac) / (1.0 - kn.group_topic_frac), tb.content_prob,
                                   tb.content_alias)]
        repeated = False
        for j in range(k):
            repeated = repeated or out[j] == term
        if not repeated:
            out[k] = term
            k += 1
    return topic


# --- passages ---------------------------------------------------------------------------------------------


@numba.njit(cache=True)
def _doc_header(i, tb, kn):
    """(state after the header, group, nnz, topic share, weight offset) of passage i."""
    state = _start(kn.key_docs, i)
    state, u = _next(state)
    group = min(int(u * kn.n_groups), kn.n_groups - 1)
    state, u = _next(state)
    n = round(math.exp(kn.doc_nnz_mu + kn.doc_nnz_sigma * _normal(u, tb.normal_table)))
    n = min(max(n, kn.doc_nnz_min), kn.doc_nnz_max)
    state, u = _next(state)
    share = 1.0 / (1.0 + math.exp(-(kn.topic_share_logit + kn.topic_share_sigma * _normal(u, tb.normal_table))))
    state, u = _next(state)
    offset = kn.weight_doc_sigma * _normal(u, tb.normal_table)
    return state, group, n, share, offset


@numba.njit(cache=True, error_model="numpy")
def _generate_docs(docs, tb, kn):
    """CSR (offsets, terms, weights), groups and topics of the passages whose indices `docs` lists."""
    n_docs = docs.shape[0]
    offsets = np.zeros(n_docs + 1, np.int64)
    for r in range(n_docs):
        n = _doc_header(docs[r], tb, kn)[2]
        offsets[r + 1] = offsets[r] + n
    terms = np.empty(offsets[-1], np.int32)
    weights = np.empty(offsets[-1], np.float32)
    groups = np.empty(n_docs, np.int64)
    topics = np.empty(n_docs, np.int32)
    group_terms = np.empty(kn.group_terms, np.int32)
    bitmap = np.zeros((kn.vocab_size + 63) // 64, np.uint64)  # the row's terms: set bits, read back in id order
    row_weight = np.zeros(kn.vocab_size, np.float32)
    for r in range(n_docs):
        state, group, n, topic_share, offset = _doc_header(docs[r], tb, kn)
        topic = _group(group, tb, kn, group_terms)
        groups[r], topics[r] = group, topic
        with_topic = kn.group_share + (1.0 - kn.group_share) * topic_share
        count = 0
        while count < n:  # draws without replacement: repeats are skipped (the global law has ~29.5k terms)
            state, u = _next(state)
            if u < kn.group_share:
                term = group_terms[_alias(u / kn.group_share, tb.group_slot_prob, tb.group_slot_alias)]
                mu = kn.weight_mu_group
            elif u < with_topic:
                slot = _alias((u - kn.group_share) / (with_topic - kn.group_share), tb.slot_prob, tb.slot_alias)
                term = tb.topic_terms[topic, slot]
                mu = tb.slot_mu[slot]
            else:
                rank = _alias((u - with_topic) / (1.0 - with_topic), tb.global_prob, tb.global_alias)
                term = tb.order[rank]
                mu = tb.rank_mu[rank]
            word, bit = term >> 6, np.uint64(1) << np.uint64(term & 63)
            if bitmap[word] & bit:
                continue
            bitmap[word] |= bit
            state, u = _next(state)
            z = _normal(u, tb.normal_table)
            row_weight[term] = min(_softplus(mu + offset + kn.weight_sigma * z, tb.softplus), kn.weight_max)
            count += 1
        _drain(bitmap, row_weight, terms, weights, offsets[r])
    return offsets, terms, weights, groups, topics


_SOFTPLUS_LO, _SOFTPLUS_HI = -16.0, 16.0
# log(1 + e^x) on [-16, 16] in steps of 1/512, read by linear interpolation (error < 1e-6)
_SOFTPLUS = np.log1p(np.exp(np.linspace(_SOFTPLUS_LO, _SOFTPLUS_HI, 16385)))
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_INDEX = np.zeros(64, np.int64)
for _bit in range(64):
    _DEBRUIJN_INDEX[((_DEBRUIJN << np.uint64(_bit)) & np.uint64(0xFFFFFFFFFFFFFFFF)) >> np.uint64(58)] = _bit


@numba.njit(cache=True)
def _softplus(x, table):
    """log(1 + e^x) from the table (x clamped to its range)."""
    x = min(max(x, _SOFTPLUS_LO), _SOFTPLUS_HI)
    f = (x - _SOFTPLUS_LO) * ((table.shape[0] - 1) / (_SOFTPLUS_HI - _SOFTPLUS_LO))
    k = min(int(f), table.shape[0] - 2)
    return table[k] + (f - k) * (table[k + 1] - table[k])


@numba.njit(cache=True)
def _drain(bitmap, row_weight, terms, weights, pos):
    """Write the row's terms (set bits, ascending) and weights from `pos`; clear the bitmap."""
    for word in range(bitmap.shape[0]):
        bits = bitmap[word]
        if bits == 0:
            continue
        bitmap[word] = 0
        while bits:
            low = bits & (~bits + np.uint64(1))
            term = (word << 6) + _DEBRUIJN_INDEX[(low * _DEBRUIJN) >> np.uint64(58)]
            terms[pos] = term
            weights[pos] = row_weight[term]
            pos += 1
            bits ^= low
    return pos


# --- queries ---------------------------------------------------------------------------------------------


@numba.njit(cache=True)
def _generate_queries(n_queries, src_offsets, src_terms, src_weights, src_groups, tb, kn):
    """CSR of the queries; query j's source passage is row j of src_* (chosen by _query_sources).

    A query is its group's query: the group's first terms (the query words, the terms its
    passages share most), its source passage's heaviest other terms, then expansions from its
    topic and the global law."""
    lengths = np.empty(n_queries, np.int64)
    for j in range(n_queries):
        state = _start(kn.key_queries, j)
        state, _ = _next(state)  # the source passage (_query_sources)
        state, u = _next(state)
        n = round(math.exp(kn.query_nnz_mu + kn.query_nnz_sigma * _normal(u, tb.normal_table)))
        lengths[j] = min(max(n, kn.query_nnz_min), kn.query_nnz_max)
    offsets = np.zeros(n_queries + 1, np.int64)
    offsets[1:] = np.cumsum(lengths)
    terms = np.empty(offsets[-1], np.int32)
    weights = np.empty(offsets[-1], np.float32)
    stamp = np.full(kn.vocab_size, -1, np.int64)
    group_terms = np.empty(kn.group_terms, np.int32)
    row_terms = np.empty(kn.query_nnz_max, np.int32)
    row_weights = np.empty(kn.query_nnz_max, np.float32)
    for j in range(n_queries):
        state = _start(kn.key_queries, j)
        state, _ = _next(state)
        state, _ = _next(state)
        n = lengths[j]
        topic = _group(src_groups[j], tb, kn, group_terms)
        count = 0
        state, u = _next(state)
        n_words = min(kn.query_words_min + int(u * (kn.query_words_max - kn.query_words_min + 1)), n,
                      kn.group_terms)
        for k in range(n_words):
            state, u = _next(state)
            term = group_terms[k]
            stamp[term] = j
            row_terms[count] = term
            w = _softplus(kn.query_mu_word + kn.query_weight_sigma * _normal(u, tb.normal_table), tb.softplus)
            row_weights[count] = min(w, kn.query_weight_max)
            count += 1
        lo, hi = src_offsets[j], src_offsets[j + 1]
        heaviest = np.argsort(-src_weights[lo:hi])
        added = 0
        for k in heaviest:
            if count >= n or added >= kn.query_source_terms:
                break
            term = src_terms[lo + k]
            if stamp[term] == j:
                continue
            state, u = _next(state)
            stamp[term] = j
            row_terms[count] = term
            w = kn.query_source_boost * src_weights[lo + k] * math.exp(0.3 * _normal(u, tb.normal_table))
            row_weights[count] = min(w, kn.query_weight_max)
            count += 1
            added += 1
        while count < n:
            state, u = _next(state)
            if u < kn.query_topic_share:
                slot = _alias(u / kn.query_topic_share, tb.slot_prob, tb.slot_alias)
                term = tb.topic_terms[topic, slot]
                mu = kn.query_mu_topic
            else:
                rank = _alias((u - kn.query_topic_share) / (1.0 - kn.query_topic_share), tb.global_prob,
                              tb.global_alias)
                term = tb.order[rank]
                mu = kn.query_mu_global
            if stamp[term] == j:
                continue
            stamp[term] = j
            state, u = _next(state)
            row_terms[count] = term
            w = _softplus(mu + kn.query_weight_sigma * _normal(u, tb.normal_table), tb.softplus)
            row_weights[count] = min(w, kn.query_weight_max)
            count += 1
        sort = np.argsort(row_terms[:n])
        for k in range(n):
            terms[offsets[j] + k] = row_terms[sort[k]]
            weights[offsets[j] + k] = row_weights[sort[k]]
    return offsets, terms, weights


@numba.njit(cache=True)
def _query_sources(key, n_queries, n_docs):
    out = np.empty(n_queries, np.int64)
    for j in range(n_queries):
        _, u = _next(_start(key, j))
        out[j] = min(int(u * n_docs), n_docs - 1)
    return out


def generate_docs(model: Model, docs: np.ndarray):
    """(offsets, terms, weights, groups, topics) of passages `docs` (indices; each depends only on (seed, index))."""
    return _generate_docs(np.asarray(docs, dtype=np.int64), model.tables, model.knobs)


def generate_queries(model: Model, n_queries: int, n_docs: int):
    """(offsets, terms, weights, groups, topics, sources) of the queries."""
    sources = _query_sources(model.knobs.key_queries, n_queries, n_docs)
    src_offsets, src_terms, src_weights, src_groups, src_topics = generate_docs(model, sources)
    offsets, terms, weights = _generate_queries(n_queries, src_offsets, src_terms, src_weights, src_groups,
                                                model.tables, model.knobs)
    return offsets, terms, weights, src_groups, src_topics, sources


# --- writing ---------------------------------------------------------------------------------------------


def _schema(vocab: Vocabulary, extra: dict):
    """sparseir's Parquet layout (vocabulary in the metadata) plus `extra` columns."""
    fields = [("id", pa.string()), ("terms", pa.large_list(pa.int32())), ("weights", pa.large_list(pa.float32()))]
    return pa.schema(fields + list(extra.items()), metadata={VOCAB_KEY: vocab_metadata(vocab)})


def _table(schema, ids: np.ndarray, offsets, terms, weights, **extra):
    arrow_offsets = pa.array(offsets, type=pa.int64())
    id_offsets, id_bytes = _decimal_strings(np.asarray(ids, dtype=np.int64))
    columns = {
        "id": pa.StringArray.from_buffers(len(ids), pa.py_buffer(id_offsets), pa.py_buffer(id_bytes)),
        "terms": pa.LargeListArray.from_arrays(arrow_offsets, pa.array(terms, type=pa.int32())),
        "weights": pa.LargeListArray.from_arrays(arrow_offsets, pa.array(weights, type=pa.float32())),
    }
    columns.update({name: pa.array(values, type=schema.field(name).type) for name, values in extra.items()})
    return pa.table(columns, schema=schema)


@numba.njit(cache=True)
def _decimal_strings(values):
    """Arrow string buffers (int32 offsets, UTF-8 bytes) of non-negative integers in decimal."""
    offsets = np.zeros(values.shape[0] + 1, np.int32)
    for k in range(values.shape[0]):
        digits, v = 1, values[k]
        while v >= 10:
            v //= 10
            digits += 1
        offsets[k + 1] = offsets[k] + digits
    data = np.empty(offsets[-1], np.uint8)
    for k in range(values.shape[0]):
        v = values[k]
        for pos in range(offsets[k + 1] - 1, offsets[k] - 1, -1):
            data[pos] = 48 + v % 10
            v //= 10
    return offsets, data


def _write_options():
    # Dictionary-encoding the term ids (~30k values) saves a fifth of the file; weights are
    # near-random floats, and min/max statistics of list columns serve no reader.
    return {"compression": "snappy", "use_dictionary": ["terms.list.element"], "write_statistics": False}


class Stats:
    """Running statistics of a stream of CSR batches (memory: O(vocabulary + histogram bins))."""

    WEIGHT_BINS = 1 << 13  # weight histogram: bins of 1/1024 up to 8

    def __init__(self, vocab_size: int, max_nnz: int):
        self.df = np.zeros(vocab_size, np.int64)
        self.lengths = np.zeros(max_nnz + 1, np.int64)
        self.weight_hist = np.zeros(self.WEIGHT_BINS, np.int64)
        self.sums = np.zeros(5)  # weight sum, weight max, sampled rows, their top-10 and top-quarter L1 shares
        self.rows = 0

    def add(self, offsets, terms, weights, sample_every: int = 97) -> None:
        self.rows += len(offsets) - 1
        _accumulate(offsets, terms, weights, sample_every, self.df, self.lengths, self.weight_hist, self.sums)

    @staticmethod
    def _percentiles(hist, scale=1.0, qs=(1, 5, 25, 50, 75, 95, 99, 99.9)):
        cdf = np.cumsum(hist) / max(1, hist.sum())
        return {f"p{q:g}": round(float(np.searchsorted(cdf, q / 100)) * scale, 4) for q in qs}

    def summary(self, vocab: Vocabulary) -> dict:
        nnz = int(self.df.sum())
        lengths = np.flatnonzero(self.lengths)
        by_df = np.argsort(-self.df, kind="stable")
        df_sorted = self.df[by_df]
        n = max(1, self.rows)
        weight_sum, weight_max, sampled, top10, top_quarter = self.sums.tolist()
        return {
            "count": self.rows,
            "nnz": nnz,
            "nnz_per_vector": {"mean": round(nnz / n, 3), "min": int(lengths[0]) if len(lengths) else 0,
                               "max": int(lengths[-1]) if len(lengths) else 0, **self._percentiles(self.lengths)},
            "weights": {"mean": round(weight_sum / max(1, nnz), 4), "max": round(weight_max, 4),
                        **self._percentiles(self.weight_hist, 1 / 1024)},
            "weight_sum_per_vector": round(weight_sum / n, 3),
            "l1_mass_in_top10": round(top10 / max(1, sampled), 4),
            "l1_mass_in_top_quarter": round(top_quarter / max(1, sampled), 4),
            "terms_used": int((self.df > 0).sum()),
            "df_fraction_at_rank": {str(r): round(float(df_sorted[r - 1]) / n, 5)
                                    for r in (1, 10, 100, 1000, 3000, 10000, 20000, 29000) if r <= len(df_sorted)},
            "terms_with_df_fraction_at_least": {f"{f:g}": int((self.df >= f * n).sum())
                                                for f in (0.5, 0.1, 0.01, 0.001, 0.0001, 0.00001)},
            "top_terms": [{"id": int(t), "term": vocab.term(int(t)), "df": int(self.df[t]),
                           "df_fraction": round(float(self.df[t]) / n, 4)} for t in by_df[:20]],
        }


@numba.njit(cache=True)
def _accumulate(offsets, terms, weights, sample_every, df, lengths, weight_hist, sums):
    for k in range(terms.shape[0]):
        df[terms[k]] += 1
        w = weights[k]
        weight_hist[min(int(w * 1024), weight_hist.shape[0] - 1)] += 1
        sums[0] += w
        sums[1] = max(sums[1], w)
    for r in range(offsets.shape[0] - 1):
        lo, hi = offsets[r], offsets[r + 1]
        lengths[hi - lo] += 1
        if r % sample_every == 0 and hi > lo:
            w = np.sort(weights[lo:hi])[::-1]
            total = w.sum()
            sums[2] += 1
            sums[3] += w[:10].sum() / total
            sums[4] += w[:max(1, (hi - lo) // 4)].sum() / total


def _clusterability(model: Model, n_docs: int, pairs: int = 2000) -> dict:
    """Mean shared terms of same-group, same-topic and random passage pairs, on a sample of the collection."""
    rng = np.random.default_rng(model.seed)
    sample = np.sort(rng.choice(n_docs, size=min(n_docs, 50_000), replace=False))
    offsets, terms, _, groups, topics = generate_docs(model, sample)
    rows = [terms[offsets[r]:offsets[r + 1]] for r in range(len(sample))]

    def same(labels):
        order = np.argsort(labels, kind="stable")
        return [(a, b) for a, b in itertools.pairwise(order) if labels[a] == labels[b]][:pairs]

    def shared(pair_list):
        counts = [len(np.intersect1d(rows[a], rows[b], assume_unique=True)) for a, b in pair_list if a != b]
        return round(float(np.mean(counts)), 3) if counts else None

    same_group = same(groups)
    same_topic = [(a, b) for a, b in same(topics) if groups[a] != groups[b]]
    return {"sample_docs": len(sample), "same_group_pairs": len(same_group), "same_topic_pairs": len(same_topic),
            "shared_terms_same_group": shared(same_group), "shared_terms_same_topic": shared(same_topic),
            "shared_terms_random_pair": shared(rng.integers(0, len(sample), size=(pairs, 2)))}


OUTPUTS = ("queries.parquet", "qrels.txt", "stats.json")


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def generate(out_dir: str | os.PathLike, n_docs: int = MSMARCO_PASSAGES, n_queries: int = DEV_SMALL_QUERIES,
             seed: int = 0, part_size: int = PART_SIZE, row_group: int = ROW_GROUP, params: Params = Params(),
             overwrite: bool = False, log=print) -> dict:
    """Write the collection parts, the queries, qrels and stats.json under out_dir; return the stats."""
    if n_docs < 1 or n_queries < 0 or part_size < 1 or row_group < 1:
        raise ValueError("n_docs, part_size and row_group must be positive, n_queries not negative")
    started = time.perf_counter()
    out = Path(out_dir)
    collection = out / "collection"
    n_parts = -(-n_docs // part_size)
    existing = sorted(collection.glob("part-*.parquet")) + [out / name for name in OUTPUTS if (out / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{out} already holds outputs ({existing[0].name}, ...); pass overwrite=True / "
                              f"--overwrite to replace them")
    for stale in existing:  # with overwrite: parts beyond this run's count must not survive
        if stale.parent == collection and stale.name >= part_name(n_parts):
            stale.unlink()
    collection.mkdir(parents=True, exist_ok=True)
    vocab = Vocabulary.default()
    model = build_model(seed, params, vocab)
    log(f"model: {len(model.order)} active terms, {params.n_topics} topics, {params.n_groups} groups "
        f"({time.perf_counter() - started:.1f}s)")

    q_offsets, q_terms, q_weights, q_groups, q_topics, q_sources = generate_queries(model, n_queries, n_docs)
    q_schema = _schema(vocab, {"group": pa.int32(), "topic": pa.int32(), "source": pa.string()})
    q_ids = np.arange(n_queries)
    with atomic_file(out / "queries.parquet", "wb", overwrite) as f, \
            pq.ParquetWriter(f, q_schema, **_write_options()) as writer:
        writer.write_table(_table(q_schema, q_ids, q_offsets, q_terms, q_weights, group=q_groups, topic=q_topics,
                                  source=q_sources.astype(str).astype(object)))
    with atomic_file(out / "qrels.txt", "w", overwrite) as f:
        f.writelines(f"{j} 0 {s} 1\n" for j, s in enumerate(q_sources.tolist()))
    query_stats = Stats(model.vocab_size, params.query_nnz_max)
    query_stats.add(q_offsets, q_terms, q_weights, sample_every=1)

    doc_stats = Stats(model.vocab_size, params.doc_nnz_max)
    d_schema = _schema(vocab, {"group": pa.int32(), "topic": pa.int32()})
    gen_started, cpu_started = time.perf_counter(), time.process_time()
    for part in range(n_parts):
        lo, hi = part * part_size, min(n_docs, (part + 1) * part_size)
        with atomic_file(collection / part_name(part), "wb", overwrite) as f, \
                pq.ParquetWriter(f, d_schema, **_write_options()) as writer:
            for start in range(lo, hi, row_group):
                stop = min(hi, start + row_group)
                offsets, terms, weights, groups, topics = generate_docs(model, np.arange(start, stop))
                table = _table(d_schema, np.arange(start, stop), offsets, terms, weights, group=groups, topic=topics)
                writer.write_table(table, row_group_size=stop - start)
                doc_stats.add(offsets, terms, weights)
        elapsed, cpu = time.perf_counter() - gen_started, time.process_time() - cpu_started
        rate = hi / elapsed
        log(f"part {part + 1}/{n_parts}: {hi:,}/{n_docs:,} passages, {rate:,.0f}/s ({hi / cpu:,.0f} per CPU "
            f"second), ETA {(n_docs - hi) / rate:,.0f}s, peak RSS {_peak_rss_mib():,.0f} MiB")
    gen_seconds, gen_cpu = time.perf_counter() - gen_started, time.process_time() - cpu_started

    docs_summary = doc_stats.summary(vocab)
    stats = {
        "seed": seed,
        "n_docs": n_docs,
        "n_queries": n_queries,
        "parts": n_parts,
        "part_size": part_size,
        "row_group": row_group,
        "vocab": vocab.name,
        "vocab_size": model.vocab_size,
        "active_terms": len(model.order),
        "docs": docs_summary,
        "queries": query_stats.summary(vocab),
        "flops": round(float((doc_stats.df / n_docs) @ (query_stats.df / max(1, n_queries))), 4),
        "clusterability": _clusterability(model, n_docs),
        "published": PUBLISHED,
        "params": asdict(params),
        "collection_seconds": round(gen_seconds, 2),
        "collection_cpu_seconds": round(gen_cpu, 2),
        "docs_per_second": round(n_docs / gen_seconds, 1),
        "docs_per_cpu_second": round(n_docs / max(gen_cpu, 1e-9), 1),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
    }
    seconds = stats["seconds"] = round(time.perf_counter() - started, 2)
    with atomic_file(out / "stats.json", "w", overwrite) as f:
        json.dump(stats, f, indent=1)
    log(f"done: {n_docs:,} passages ({docs_summary['nnz']:,} non-zeros), {n_queries:,} queries in {seconds:,.0f}s; "
        f"peak RSS {stats['peak_rss_mib']:,.0f} MiB")
    return stats


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
