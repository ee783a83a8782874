"""The fast vector readers give exactly what the line-by-line json reading gives.

`json_path` below is the JSONL reader as it was before the Numba parser (every line
through the json module); the fast reader must match it on every input -- ids, CSR
arrays, vocabulary, bad lines and error messages -- whatever the spelling of the JSON,
and however the file is cut into blocks. Then: Eisel-Lemire against float(), gzip and
blocks, directories and globs of parts, and Parquet streamed by row group.
"""

import functools
import gzip
import json
import threading
import zlib

import numpy as np
import pytest
from conftest import random_vectors, shared_vectors
from hypothesis import given
from hypothesis import strategies as st

import sparseir
from sparseir import BadLines, InputError, ParameterError, SparseVectors, Vocabulary
from sparseir.formats import fastjson, jsonl, lines, vector_parts
from sparseir.formats.lines import parse_lines
from sparseir.formats.vocabs import is_auto, resolve_vocab, unknown_term_hint
from sparseir.vectors import VectorBuilder

BERT_TERMS = list(dict.fromkeys(Vocabulary.default().terms[1000:1300] + ["cat", "##s", "paris", "0", "17", "\""]))
ODD_TERMS = ['"', "\\", "é", "naïve", "日本語", "😀", "a b", "tab\t", "new\nline", "\x00", "\u2028", "",
             "Grüezi", "70000", "CamelCase", "/", "\\u0041", "{}", "a:b,c", "\udc80"]


def json_path(path, vocab="auto", bad_lines=None) -> SparseVectors:
    """The JSONL reader before the fast path: each line through jsonl._parse and VectorBuilder.add."""
    builder = VectorBuilder(resolve_vocab(vocab), open_on_unknown_term=is_auto(vocab),
                            unknown_term_hint=unknown_term_hint(vocab))
    seen = set()

    def parse_and_add(line):
        vector_id, vector, _ = jsonl._parse(line)
        if vector_id in seen:
            raise ParameterError(f"duplicate id {vector_id!r}")
        builder.add(vector_id, vector)
        seen.add(vector_id)

    for _ in parse_lines(path, parse_and_add, bad_lines, what="JSON vector line"):
        pass
    return builder.build()


def outcome(read, path, vocab, skip):
    """(vectors, bad lines count and first) or the error message, for comparing readers."""
    bad_lines = BadLines(skip=skip)
    try:
        vectors = read(path, vocab, bad_lines)
    except InputError as e:
        return str(e)
    return vectors, bad_lines.count, bad_lines.first


def assert_same(fast, slow):
    if isinstance(slow, str) or isinstance(fast, str):
        assert fast == slow
        return
    (vectors, count, first), (want, want_count, want_first) = fast, slow
    assert (count, first) == (want_count, want_first)
    assert vectors.ids.tolist() == want.ids.tolist()
    np.testing.assert_array_equal(vectors.offsets, want.offsets)
    np.testing.assert_array_equal(vectors.terms, want.terms)
    np.testing.assert_array_equal(vectors.weights.view(np.uint32), want.weights.view(np.uint32))  # bit for bit
    assert vectors.vocab.terms == want.vocab.terms
    assert (vectors.vocab.name, vectors.vocab.open) == (want.vocab.name, want.vocab.open)
    assert vectors.terms.dtype == np.int32 and vectors.weights.dtype == np.float32


# --- random JSONL, spelt every way ---------------------------------------------------

def spell_string(rng, text: str) -> str:
    """A JSON string for `text`: raw UTF-8, ASCII escapes, or a first character as \\uXXXX."""
    choice = rng.integers(4)
    if choice == 0 or any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return json.dumps(text)
    if choice == 1 and text and ord(text[0]) < 0x10000:
        return '"' + f"\\u{ord(text[0]):04x}" + json.dumps(text[1:], ensure_ascii=False)[1:]
    return json.dumps(text, ensure_ascii=False)


def spell_weight(rng, weight: float) -> str:
    forms = [repr(weight), f"{weight:.4f}", f"{weight:e}", f"{weight:E}", f"{weight:.17g}", f"{weight:.20f}",
             str(int(weight)), repr(float(np.float32(weight))), f"{weight * 1e30:.6e}"[:-3] + "e-30"]
    if rng.random() < 0.03:  # what the fast path leaves to the json module, valid or not
        forms = ["-0.0", "-0", "1e-400", "0.0", "0", "1e400", "-1.5", "NaN", "Infinity", "true", "null", '"1"',
                 "01", "1.", ".5", "1e", "+1", "1.0000000000000000000000001", "123456789012345678901234"]
    return forms[rng.integers(len(forms))]


def space(rng) -> str:
    return ["", "", " ", "  ", "\t", " \r "][rng.integers(6)]


CONTENTS = 'text é " \\ \u2028 '


def random_record(rng, index: int, terms: list) -> str:
    def s():
        return space(rng)

    vector_id = [f"d{index}", f"d{index}", index, f"é\"{index}\\", f"d{index // 2}", -index, index + 0.5][
        rng.integers(7) if rng.random() < 0.3 else 0]
    id_text = spell_string(rng, vector_id) if isinstance(vector_id, str) else json.dumps(vector_id)
    n = int(rng.integers(0, 12))
    chosen = [terms[k] for k in rng.integers(len(terms), size=n)]  # repeats: repeated keys
    if rng.random() < 0.8:
        chosen = list(dict.fromkeys(chosen))
    pairs = [f"{s()}{spell_string(rng, term)}{s()}:{s()}{spell_weight(rng, float(rng.gamma(1.5, 1.0)))}{s()}"
             for term in chosen]
    fields = [f'"id"{s()}:{s()}{id_text}', f'"vector"{s()}:{s()}{{{",".join(pairs)}{s()}}}']
    if rng.random() < 0.5:
        fields.append(f'"contents":{s()}{spell_string(rng, CONTENTS * int(rng.integers(3)))}')
    if rng.random() < 0.1:
        fields.append(['"score": -1.5e3', '"flag": true', '"none": null', '"f": false', '"nested": {"a": [1, 2]}',
                       '"list": []', '"id": "again"', '"\\u0076ector": {}', '"bad": tru'][rng.integers(9)])
    if rng.random() < 0.05:
        fields = fields[1:] if rng.random() < 0.5 else fields[:1]
    rng.shuffle(fields)
    return f"{s()}{{{s()}{f',{s()}'.join(fields)}{s()}}}{s()}"


def random_jsonl(rng, n: int, terms: list) -> bytes:
    out = []
    for index in range(n):
        roll = rng.random()
        if roll < 0.03:
            out.append(["", "   ", "\t", "[1, 2]", '"text"', "{", "{}", '{"id": "x", "vector": {"a": 1}} tail',
                        '{"id": "y", "vector": {"a" 1}}'][rng.integers(9)])
        else:
            out.append(random_record(rng, index, terms))
    text = "\n".join(out) + ("\n" if rng.random() < 0.7 else "")
    return text.encode("utf-8", "surrogatepass")


VOCABS = {"auto": lambda: "auto", "open": lambda: "open", "bert": lambda: "bert",
          "fixed": lambda: Vocabulary(list(dict.fromkeys(BERT_TERMS + ODD_TERMS[:8]))),
          "grown": lambda: Vocabulary(ODD_TERMS[:3], open=True)}


def small_blocks(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """Read in pieces of `size` bytes: lines cross pieces, blocks hold few lines."""
    monkeypatch.setattr(jsonl, "iter_blocks", functools.partial(lines.iter_blocks, size=size))


@pytest.mark.parametrize("vocab", sorted(VOCABS))
@given(seed=st.integers(0, 2**32 - 1), odd=st.sampled_from([0.0, 0.01, 0.2]), gz=st.booleans(),
       block=st.sampled_from([None, 64, 1000]))
def test_fast_path_equals_json_path_on_random_files(tmp_path_factory, vocab, seed, odd, gz, block):
    rng = np.random.default_rng(seed)
    terms = BERT_TERMS + (ODD_TERMS if odd else [])
    weights = np.where([term in ODD_TERMS for term in terms], odd, 1.0)
    terms = list(rng.choice(terms, size=60, p=weights / weights.sum()))
    path = tmp_path_factory.mktemp("random") / ("v.jsonl.gz" if gz else "v.jsonl")
    data = random_jsonl(rng, int(rng.integers(1, 80)), terms)
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.MonkeyPatch.context() as patch:
        if block:
            small_blocks(patch, block)
        for skip in (False, True):
            assert_same(outcome(jsonl.read_jsonl, path, VOCABS[vocab](), skip),
                        outcome(json_path, path, VOCABS[vocab](), skip))


def test_invalid_utf8_stops_the_read_even_when_skipping_bad_lines(tmp_path):
    path = tmp_path / "v.jsonl"
    path.write_bytes(b'{"id": "a", "vector": {"cat": 1}}\n\n{"id": "b\xff", "vector": {}}\n')
    for skip in (False, True):
        assert outcome(jsonl.read_jsonl, path, "auto", skip) == outcome(json_path, path, "auto", skip)
        assert "v.jsonl:3: invalid UTF-8 at byte 9" in outcome(jsonl.read_jsonl, path, "auto", skip)


def test_common_lines_take_the_fast_path(tmp_path, monkeypatch):
    """The lines encoders write never reach the json module."""
    docs = random_vectors(np.random.default_rng(1), 200, 50, 8)
    sparseir.write_vectors(docs, tmp_path / "v.jsonl.gz")
    (tmp_path / "anserini.jsonl").write_text("".join(
        json.dumps({"id": vector.id, "contents": "some text", "vector": {k: round(v, 4) for k, v in
                                                                        vector.as_dict(docs.vocab).items()}}) + "\n"
        for vector in docs))
    slow = []
    monkeypatch.setattr(jsonl._JsonlReader, "_add_slow", lambda self, path, parsed, row: slow.append(row) or 0)
    assert sparseir.read_vectors(tmp_path / "v.jsonl.gz", vocab=docs.vocab).equals(docs)
    assert len(sparseir.read_vectors(tmp_path / "anserini.jsonl", vocab=docs.vocab)) == len(docs)
    assert slow == []


def test_auto_vocabulary_switches_in_a_fast_run_and_in_a_slow_line(tmp_path):
    known = [{"cat": 1.0, "paris": 2.0}, {"zebra": 0.5, "##s": 0.25}]
    for foreign_line in ('{"id": "x", "vector": {"cat": 3, "Hund": 1}}',  # fast
                         '{"id": "x", "vector": {"cat": 3, "Hund": 1}, "nested": {"a": [1]}}'):  # slow
        text = "".join(json.dumps({"id": f"d{i}", "vector": v}) + "\n" for i, v in enumerate(known))
        path = tmp_path / "v.jsonl"
        path.write_text(text + foreign_line + "\n" + '{"id": "y", "vector": {"paris": 1, "Katze": 2, "zebra": 1}}\n')
        for vocab in ("auto", "bert", "open"):
            assert_same(outcome(jsonl.read_jsonl, path, vocab, True), outcome(json_path, path, vocab, True))
        # The terms used before the switch, in BERT's order, then the others as they come.
        bert_order = sorted(["cat", "paris", "##s", "zebra"], key=Vocabulary.default().get)
        assert jsonl.read_jsonl(path).vocab.terms == bert_order + ["Hund", "Katze"]


def test_many_distinct_terms_grow_the_spelling_table(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    words = [f"w{i}é" * int(rng.integers(1, 4)) for i in range(70_000)]
    path = tmp_path / "v.jsonl"
    path.write_text("".join(json.dumps({"id": str(row), "vector": {w: 1.5 for w in words[row::500]}}) + "\n"
                            for row in range(500)))
    small = fastjson.new_spellings
    monkeypatch.setattr(fastjson, "new_spellings", lambda slots=48, pool_bytes=1 << 8: small(slots, pool_bytes))
    assert_same(outcome(jsonl.read_jsonl, path, "open", False), outcome(json_path, path, "open", False))


def test_shared_collection_reads_as_the_json_path_does(tmp_path):
    path = shared_vectors("cisi") / "collection.jsonl.gz"
    assert_same(outcome(jsonl.read_jsonl, path, "auto", False), outcome(json_path, path, "auto", False))
    docs = sparseir.read_vectors(path)
    sparseir.write_vectors(docs, tmp_path / "ours.jsonl")  # 17-digit weights: Eisel-Lemire's work
    assert sparseir.read_vectors(tmp_path / "ours.jsonl").equals(docs)


# --- numbers --------------------------------------------------------------------------

def fast_floats(texts: list[str]) -> list[float | None]:
    """What the fast path makes of each number (None: left to the json module)."""
    data = "".join(f"{text},\n" for text in texts).encode()
    buf = np.frombuffer(data, np.uint8)
    out, at = [], 0
    for text in texts:
        end, value, exact = fastjson._weight(buf, at)
        out.append(value if exact and end == at + len(text) else None)
        at += len(text) + 2
    return out


def assert_exact(texts: list[str]) -> None:
    for text, value in zip(texts, fast_floats(texts)):
        if value is not None:
            assert struct_bits(value) == struct_bits(float(text)), text


def struct_bits(value: float) -> int:
    return int(np.float64(value).view(np.uint64))


@given(st.lists(st.floats(min_value=0.0, allow_nan=False, allow_infinity=False), min_size=1, max_size=50))
def test_shortest_reprs_convert_exactly(values):
    texts = [repr(value) for value in values] + [repr(float(np.float32(value))) for value in values if value < 3e38]
    assert_exact(texts)
    assert all(value is not None for value, text in zip(fast_floats(texts), texts) if float(text) > 2.3e-308)


@given(st.lists(st.tuples(st.integers(1, 10**19 - 1), st.integers(-360, 330)), min_size=1, max_size=50))
def test_decimal_mantissas_and_exponents_convert_exactly(pairs):
    assert_exact([f"{mantissa}e{exponent}" for mantissa, exponent in pairs])
    assert_exact([f"0.{mantissa:019d}E+{exponent % 30}" for mantissa, exponent in pairs])


def test_halfway_cases_round_to_even():
    texts = ["9007199254740993", "9007199254740995", "9007199254740993.0", "4503599627370496.5",
             "4503599627370497.5", "1.1819000244140625", "0.30000000000000004", "2.2250738585072014e-308",
             "1.7976931348623157e308", "5e-324", "1e23", "8.589973e9", "123456789012345678e-10"]
    assert_exact(texts)
    rng = np.random.default_rng(7)
    mantissas = rng.integers(2**52, 2**53, 2000, dtype=np.int64)
    # m + 1/2 at a scale where it has at most 19 digits: exactly half-way between two doubles.
    assert_exact([f"{m}5e-1" for m in mantissas.tolist()] + [f"{2 * m + 1}" for m in mantissas.tolist()])


# --- blocks and gzip ------------------------------------------------------------------

def test_gzip_and_plain_read_alike_whatever_the_blocks(tmp_path, monkeypatch):
    docs = random_vectors(np.random.default_rng(4), 300, 80, 10)
    sparseir.write_vectors(docs, tmp_path / "v.jsonl")
    sparseir.write_vectors(docs, tmp_path / "v.jsonl.gz")
    for size in (None, 100, 4096):
        with monkeypatch.context() as patch:
            if size:
                small_blocks(patch, size)
            assert sparseir.read_vectors(tmp_path / "v.jsonl", vocab=docs.vocab).equals(docs)
            assert sparseir.read_vectors(tmp_path / "v.jsonl.gz", vocab=docs.vocab).equals(docs)


def test_blocks_keep_line_numbers_across_members_and_long_lines(tmp_path):
    text = b"a\n\nbb\n" + b"c" * 1000 + b"\nd"
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(text[:7]) + gzip.compress(text[7:]))  # two members, like `cat a.gz b.gz`
    for size in (1, 3, 64, 1 << 20):
        blocks = list(lines.iter_blocks(path, size))
        assert b"".join(bytes(block.data) for block in blocks) == text + b"\n"
        assert [block.first_line for block in blocks] == list(np.cumsum([1] + [b.lines for b in blocks])[:-1])
        assert all(bytes(block.data).endswith(b"\n") and bytes(block.data).count(b"\n") == block.lines
                   for block in blocks)


def test_a_cut_or_corrupt_gzip_is_one_clear_error(tmp_path):
    data = gzip.compress(b"".join(b'{"id": "%d", "vector": {"cat": 1}}\n' % i for i in range(50_000)))
    for name, content in (("cut.jsonl.gz", data[:-100]), ("junk.jsonl.gz", data + b"junk")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(InputError, match=rf"{name}: cannot read: "):
            sparseir.read_vectors(tmp_path / name)
    assert zlib.decompress(data, wbits=31)  # the intact file is fine


# --- parts ----------------------------------------------------------------------------

def write_parts(vectors, directory, suffix, cuts):
    directory.mkdir()
    for number, (lo, hi) in enumerate(zip([0, *cuts], [*cuts, len(vectors)])):
        sparseir.write_vectors(vectors[lo:hi], directory / f"part-{number:05d}{suffix}")


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".parquet"])
def test_a_directory_or_glob_of_parts_reads_as_the_single_file(tmp_path, suffix):
    docs = random_vectors(np.random.default_rng(5), 120, 60, 7)
    sparseir.write_vectors(docs, tmp_path / f"all{suffix}")
    write_parts(docs, tmp_path / "parts", suffix, [40, 41, 100])
    (tmp_path / "parts" / "parts.json").write_text("{}")  # encode-ray's plan: not a part
    (tmp_path / "parts" / ".part-00009.parquet.123.abc.tmp").write_bytes(b"x")  # a writer's temporary
    single = sparseir.read_vectors(tmp_path / f"all{suffix}", vocab=docs.vocab)
    assert single.equals(docs)
    for source in (tmp_path / "parts", f"{tmp_path}/parts/", f"{tmp_path}/parts/part-*{suffix}"):
        assert sparseir.read_vectors(source, vocab=docs.vocab).equals(single)
    assert [p.name for p in vector_parts(tmp_path / "parts")] == [f"part-{n:05d}{suffix}" for n in range(4)]


def test_parts_are_read_in_sorted_order_and_share_ids_and_vocabulary(tmp_path):
    docs = random_vectors(np.random.default_rng(6), 30, 20, 4)
    (tmp_path / "p").mkdir()
    sparseir.write_vectors(docs[20:], tmp_path / "p" / "b.jsonl")
    sparseir.write_vectors(docs[:20], tmp_path / "p" / "a.jsonl.gz")
    assert sparseir.read_vectors(tmp_path / "p", vocab=docs.vocab).equals(docs)
    sparseir.write_vectors(docs[:1], tmp_path / "p" / "c.jsonl")
    with pytest.raises(InputError, match=r"p/c.jsonl:1: duplicate id 'd0'"):
        sparseir.read_vectors(tmp_path / "p", vocab=docs.vocab)


def test_a_bad_line_in_a_gzip_part_names_the_part_and_line(tmp_path, monkeypatch):
    docs = random_vectors(np.random.default_rng(8), 3000, 50, 6)
    write_parts(docs, tmp_path / "parts", ".jsonl.gz", [1000, 2000])
    part = tmp_path / "parts" / "part-00001.jsonl.gz"
    text = gzip.decompress(part.read_bytes()).split(b"\n")
    text[736] = text[736].replace(b'"vector"', b'"vector" {', 1)
    part.write_bytes(gzip.compress(b"\n".join(text)))
    for size in (None, 5000):
        with monkeypatch.context() as patch:
            if size:
                small_blocks(patch, size)
            with pytest.raises(InputError, match=r"parts/part-00001.jsonl.gz:737: invalid JSON: Expecting ':'"):
                sparseir.read_vectors(tmp_path / "parts", vocab=docs.vocab)
            # The reading and parsing threads stopped with the read.
            assert not [t for t in threading.enumerate() if t.name.startswith("sparseir-read-ahead")]
            bad_lines = BadLines(skip=True)
            assert len(sparseir.read_vectors(tmp_path / "parts", vocab=docs.vocab, bad_lines=bad_lines)) == 2999
            assert bad_lines.count == 1 and "part-00001.jsonl.gz:737:" in bad_lines.first


def test_parts_that_do_not_fit_together_are_refused(tmp_path):
    docs = random_vectors(np.random.default_rng(9), 20, 20, 4)
    (tmp_path / "mixed").mkdir()
    sparseir.write_vectors(docs[:10], tmp_path / "mixed" / "a.jsonl")
    sparseir.write_vectors(docs[10:], tmp_path / "mixed" / "b.parquet")
    with pytest.raises(ParameterError, match="parts in several formats"):
        sparseir.read_vectors(tmp_path / "mixed")
    (tmp_path / "vocabs").mkdir()
    sparseir.write_vectors(docs[:10], tmp_path / "vocabs" / "a.parquet")
    other = SparseVectors(docs.offsets, docs.terms, docs.weights, [f"x{i}" for i in range(20)],
                          Vocabulary(docs.vocab.terms[::-1], name="reversed"))
    sparseir.write_vectors(other, tmp_path / "vocabs" / "b.parquet")
    with pytest.raises(InputError, match=r"b.parquet: its vocabulary differs from that of .*a.parquet"):
        sparseir.read_vectors(tmp_path / "vocabs")
    (tmp_path / "bins").mkdir()
    for name in ("a.bin", "b.bin"):
        sparseir.write_vectors(docs, tmp_path / "bins" / name)
    with pytest.raises(ParameterError, match="carry no ids"):
        sparseir.read_vectors(tmp_path / "bins")
    with pytest.raises(InputError, match="no file matches"):
        sparseir.read_vectors(tmp_path / "nothing-*.jsonl")


# --- Parquet --------------------------------------------------------------------------

def test_parquet_row_groups_stream_into_the_same_arrays(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = random_vectors(np.random.default_rng(10), 500, 70, 9)
    sparseir.write_vectors(docs, tmp_path / "one.parquet")
    table = pq.read_table(tmp_path / "one.parquet")
    pq.write_table(table, tmp_path / "groups.parquet", row_group_size=37)
    assert pq.ParquetFile(tmp_path / "groups.parquet").num_row_groups > 10
    assert sparseir.read_vectors(tmp_path / "groups.parquet").equals(sparseir.read_vectors(tmp_path / "one.parquet"))
    # A foreign file (no vocabulary, int64 ids past BERT's) in two parts: one renumbering over both.
    rows = [{4: 2.0, 70000: 1.0}, {17: 0.5}, {}, {9: 1.0, 2**40: 3.0}]
    for name, part in (("f-0.parquet", rows[:2]), ("f-1.parquet", rows[2:])):
        pq.write_table(pa.table({"id": [name + str(i) for i in range(len(part))],
                                 "terms": pa.array([list(row) for row in part], pa.list_(pa.int64())),
                                 "weights": [list(row.values()) for row in part]}), tmp_path / name)
    foreign = sparseir.read_vectors(tmp_path / "f-*.parquet")
    assert foreign.vocab.terms == ["4", "9", "17", "70000", str(2**40)]
    assert [row.as_dict(foreign.vocab) for row in foreign] == [{"4": 2.0, "70000": 1.0}, {"17": 0.5}, {},
                                                               {"9": 1.0, str(2**40): 3.0}]


def test_parquet_columns_of_the_wrong_kind_are_clear_errors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["a"], "terms": [["x"]], "weights": [[1.0]]}), tmp_path / "s.parquet")
    with pytest.raises(InputError, match=r"s.parquet: column 'terms' is list<.*string>, expected lists of integers"):
        sparseir.read_vectors(tmp_path / "s.parquet")
    pq.write_table(pa.table({"id": ["a"], "terms": [[1, None]], "weights": [[1.0, 2.0]]}), tmp_path / "n.parquet")
    with pytest.raises(InputError, match=r"n.parquet: null term id or weight in a list"):
        sparseir.read_vectors(tmp_path / "n.parquet")
    pq.write_table(pa.table({"id": ["a", "b"], "terms": [[1], [2]], "weights": [[1.0], [2.0]]}), tmp_path / "d.parquet")
    pq.write_table(pa.table({"id": ["b"], "terms": [[3]], "weights": [[1.0]]}), tmp_path / "e.parquet")
    with pytest.raises(InputError, match=r"e.parquet: duplicate ids"):
        sparseir.read_vectors(f"{tmp_path}/[de].parquet")


def test_the_cli_indexes_a_directory_of_parts_with_their_attributes(tmp_path):
    from click.testing import CliRunner

    from sparseir.cli import cli

    docs = random_vectors(np.random.default_rng(9), 50, 30, 5)
    (tmp_path / "parts").mkdir()
    for number, (lo, hi) in enumerate([(0, 20), (20, 50)]):
        with open(tmp_path / "parts" / f"part-{number:05d}.jsonl", "w") as out:
            for row in range(lo, hi):
                vector = docs[row:row + 1]
                terms = [docs.vocab.terms[t] for t in vector.terms]
                out.write(json.dumps({"id": vector.ids[0], "vector": dict(zip(terms, vector.weights.tolist())),
                                      "year": row}) + "\n")
    result = CliRunner().invoke(cli, ["index", str(tmp_path / "parts"), "-o", str(tmp_path / "index"),
                                      "--attributes", "year"])
    assert result.exit_code == 0, result.output
    index = sparseir.load_index(tmp_path / "index")
    assert list(index.doc_ids) == list(docs.ids)
    assert np.array_equal(np.flatnonzero(index.prepare_filter("year >= 20").mask), np.arange(20, 50))
