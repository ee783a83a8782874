"""Document attributes: reading them beside the vectors, storing them in an index, and filter
expressions over them checked against a row-by-row reference with SQL's three-valued logic."""

from __future__ import annotations

import gzip
import json
import operator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sparseir
from sparseir.attributes import load_attributes, predicate_mask, save_attributes
from sparseir.formats import attributes as attribute_reader
from sparseir.formats.attributes import read_attributes
from sparseir.errors import IndexFormatError, InputError, ParameterError

RECORDS = [
    {"id": "d1", "contents": "first", "vector": {"apple": 1.0}, "lang": "en", "year": 2019, "score": 0.5},
    {"id": "d2", "contents": "second", "vector": {"banana": 2.0}, "lang": "fr", "year": 2021},
    {"id": "d3", "contents": "third", "vector": {"apple": 0.5, "cherry": 1.5}, "year": 2022, "score": 1,
     "reviewed": True},
    {"id": "d4", "contents": "fourth", "vector": {"cherry": 3.0}, "lang": "en", "score": 2.5, "reviewed": False},
]
EXPECTED = {
    "lang": ["en", "fr", None, "en"],
    "year": [2019, 2021, 2022, None],
    "score": [0.5, None, 1.0, 2.5],  # 1 and 2.5 on other lines: a float column
    "reviewed": [None, None, True, False],
}


def write_jsonl(path, records, blank_lines=False):
    lines = [json.dumps(record) for record in records]
    if blank_lines:  # both readers skip blank lines: rows must stay aligned anyway
        lines = [line + "\n" for line in lines]
    text = "\n".join(lines) + "\n"
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.write(text)
    return path


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- JSONL


@pytest.mark.parametrize("name", ["docs.jsonl", "docs.jsonl.gz"])
def test_jsonl_attributes_are_aligned_with_the_vectors(tmp_path, name):
    path = write_jsonl(tmp_path / name, RECORDS, blank_lines=True)
    table = read_attributes(path)
    assert table.column_names == ["lang", "year", "score", "reviewed"]
    assert table.to_pydict() == EXPECTED
    assert table.schema.field("year").type == pa.int64()
    assert table.schema.field("score").type == pa.float64()
    assert table.schema.field("reviewed").type == pa.bool_()
    vectors = sparseir.read_vectors(path)
    assert list(vectors.ids) == read_attributes(path, fields=["id"]).column("id").to_pylist()
    assert table.num_rows == len(vectors)


def test_jsonl_named_fields_keep_their_order(tmp_path):
    path = write_jsonl(tmp_path / "docs.jsonl", RECORDS)
    table = read_attributes(path, fields=["year", "lang"])
    assert table.column_names == ["year", "lang"]
    assert table.to_pydict() == {"year": EXPECTED["year"], "lang": EXPECTED["lang"]}
    assert read_attributes(path, fields=[]).num_rows == len(RECORDS)


def test_jsonl_without_attributes_still_has_one_row_per_vector(tmp_path):
    records = [{"id": f"d{i}", "vector": {"a": 1.0}} for i in range(3)]
    table = read_attributes(write_jsonl(tmp_path / "docs.jsonl", records))
    assert table.num_rows == 3 and table.num_columns == 0


def test_jsonl_fields_appearing_late_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(attribute_reader, "CHUNK_ROWS", 2)  # flush often: padding and promotion across chunks
    records = [{"id": f"d{i}", "vector": {"a": 1.0}} for i in range(7)]
    records[3]["late"] = "x"
    records[6]["late"] = "y"
    records[0]["number"] = 1
    records[5]["number"] = 2.5
    records[4]["nothing"] = None
    table = read_attributes(write_jsonl(tmp_path / "docs.jsonl", records))
    assert table.to_pydict() == {
        "number": [1.0, None, None, None, None, 2.5, None],
        "nothing": [None] * 7,
        "late": [None, None, None, "x", None, None, "y"],
    }
    assert table.schema.field("nothing").type == pa.null()


@pytest.mark.parametrize("second, message", [
    (5, "field 'lang' mixes types: int here, string on earlier lines"),
    (True, "field 'lang' mixes types: bool here, string on earlier lines"),
    (["en"], "field 'lang' holds a list"),
    ({"code": "en"}, "field 'lang' holds a object"),
])
def test_jsonl_bad_values_name_file_line_and_field(tmp_path, second, message):
    records = [{"id": "d1", "vector": {}, "lang": "en"}, {"id": "d2", "vector": {}},
               {"id": "d3", "vector": {}, "lang": second}]
    path = write_jsonl(tmp_path / "docs.jsonl", records)
    with pytest.raises(InputError) as excinfo:
        read_attributes(path)
    assert one_line_error(excinfo).startswith(f"{path}:3: {message}")


def test_jsonl_bool_is_not_an_int(tmp_path):
    records = [{"id": "d1", "vector": {}, "flag": 1}, {"id": "d2", "vector": {}, "flag": False}]
    with pytest.raises(InputError, match=r"docs.jsonl:2: field 'flag' mixes types: bool here, int"):
        read_attributes(write_jsonl(tmp_path / "docs.jsonl", records))


def test_jsonl_input_errors(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": "d1", "vector": {}}\n{"id": "d2", vector}\n')
    with pytest.raises(InputError, match=r"docs.jsonl:2: invalid JSON"):
        read_attributes(path)
    path.write_text('{"id": "d1", "vector": {}, "n": 99999999999999999999}\n')
    with pytest.raises(InputError, match=r"docs.jsonl:1: field 'n': integer .* 64 bits"):
        read_attributes(path)
    path.write_text("\n\n")
    with pytest.raises(InputError, match="empty file"):
        read_attributes(path)
    write_jsonl(path, RECORDS)
    with pytest.raises(InputError, match=r"field\(s\) \['venue'\] not found on any line"):
        read_attributes(path, fields=["lang", "venue"])
    with pytest.raises(ParameterError, match="not the string"):
        read_attributes(path, fields="lang")
    with pytest.raises(ParameterError, match="listed twice"):
        read_attributes(path, fields=["lang", "lang"])
    with pytest.raises(ParameterError, match="JSONL or Parquet"):
        read_attributes(tmp_path / "docs.bin")


# --------------------------------------------------------------------------- Parquet


def write_parquet_with_attributes(tmp_path, columns: dict):
    vectors = sparseir.SparseVectors.from_dicts(
        [{"apple": 1.0}, {"banana": 2.0}, {"apple": 0.5, "cherry": 1.5}, {"cherry": 3.0}],
        ids=["d1", "d2", "d3", "d4"], vocab=sparseir.Vocabulary(["apple", "banana", "cherry"], name="fruit"))
    path = tmp_path / "docs.parquet"
    sparseir.write_vectors(vectors, path)
    table = pq.read_table(path)
    for name, column in columns.items():
        table = table.append_column(name, column)
    pq.write_table(table, path)  # the schema metadata (the vocabulary) travels with the table
    return path


def test_parquet_attributes_are_the_extra_columns(tmp_path):
    path = write_parquet_with_attributes(tmp_path, {
        "lang": pa.array(["en", "fr", None, "en"]).dictionary_encode(),
        "year": pa.array([2019, 2021, 2022, None], pa.int32()),
        "score": pa.array([0.5, None, 1.0, 2.5], pa.float32()),
        "contents": pa.array(["a", "b", "c", "d"]),
    })
    vectors = sparseir.read_vectors(path)
    assert list(vectors.ids) == ["d1", "d2", "d3", "d4"]
    assert vectors.vocab.terms == ["apple", "banana", "cherry"]
    table = read_attributes(path)
    assert table.column_names == ["lang", "year", "score"]
    assert table.schema.field("lang").type == pa.string()  # dictionary decoded
    assert table.to_pydict() == {"lang": EXPECTED["lang"], "year": EXPECTED["year"], "score": EXPECTED["score"]}
    assert read_attributes(path, fields=["id", "year"]).column("id").to_pylist() == list(vectors.ids)
    assert read_attributes(path, fields=[]).num_rows == 4
    mask = predicate_mask(table, "lang = 'en' and score > 1")
    assert mask.tolist() == [False, False, False, True]


def test_parquet_errors(tmp_path):
    path = write_parquet_with_attributes(tmp_path, {"tags": pa.array([["a"], [], None, ["b", "c"]])})
    with pytest.raises(InputError) as excinfo:
        read_attributes(path)
    assert "column 'tags' holds nested values" in one_line_error(excinfo)
    with pytest.raises(InputError, match=r"no column\(s\) \['venue'\]"):
        read_attributes(path, fields=["venue"])
    with pytest.raises(InputError, match="nested"):
        read_attributes(path, fields=["terms"])


# --------------------------------------------------------------------------- storage


def test_save_and_load_round_trip(tmp_path):
    path = write_jsonl(tmp_path / "docs.jsonl", RECORDS)
    table = read_attributes(path)
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    entry = save_attributes(table, index_dir)
    assert entry["file"] == "attributes.parquet" and entry["rows"] == 4
    assert entry["columns"] == [{"name": "lang", "type": "string"}, {"name": "year", "type": "int64"},
                                {"name": "score", "type": "double"}, {"name": "reviewed", "type": "bool"}]
    assert entry["sha256"] == sparseir.storage.sha256_file(index_dir / "attributes.parquet")
    json.dumps(entry)  # goes into the manifest as it is
    loaded = load_attributes(index_dir, entry, verify=True)
    assert loaded.equals(table)
    assert predicate_mask(loaded, "year >= 2020").tolist() == [False, True, True, False]

    empty = read_attributes(path, fields=[])
    empty_entry = save_attributes(empty, index_dir)
    assert load_attributes(index_dir, empty_entry).num_rows == 4


def test_load_detects_damage(tmp_path):
    table = pa.table({"lang": ["en", "fr"] * 50, "year": list(range(100))})
    entry = save_attributes(table, tmp_path)
    file = tmp_path / entry["file"]
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    file.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="checksum mismatch"):
        load_attributes(tmp_path, entry, verify=True)
    file.write_bytes(bytes(data[:-10]))
    with pytest.raises(IndexFormatError, match="truncated"):
        load_attributes(tmp_path, entry)
    entry = save_attributes(table, tmp_path)
    with pytest.raises(IndexFormatError, match="differ from the manifest"):
        load_attributes(tmp_path, {**entry, "rows": 99})
    with pytest.raises(IndexFormatError, match="differ from the manifest"):
        load_attributes(tmp_path, {**entry, "columns": entry["columns"][:1]})
    file.unlink()
    with pytest.raises(IndexFormatError, match="missing"):
        load_attributes(tmp_path, entry)


# --------------------------------------------------------------------------- predicate_mask, by hand

TABLE = pa.table({
    "lang": ["en", "fr", None, "en", "it's"],
    "year": [2019, 2021, 2022, None, 2020],
    "score": [0.5, None, 1.0, 2.5, -1.5],
    "reviewed": [True, False, None, True, False],
    "pub-year": [1999, 2001, 2003, 2005, None],
    "nothing": pa.nulls(5),
})


@pytest.mark.parametrize("expression, expected", [
    ("lang = 'en'", [1, 0, 0, 1, 0]),
    ('lang == "en"', [1, 0, 0, 1, 0]),
    ("lang != 'en'", [0, 1, 0, 0, 1]),
    ("lang <> 'en'", [0, 1, 0, 0, 1]),
    ("lang = 'it''s'", [0, 0, 0, 0, 1]),
    ("lang = 'it\\'s'", [0, 0, 0, 0, 1]),
    ("lang < 'f'", [1, 0, 0, 1, 0]),
    ("lang = 'en' and year >= 2020", [0, 0, 0, 0, 0]),
    ("lang = 'en' or year >= 2022", [1, 0, 1, 1, 0]),
    ("lang = 'en' AND year >= 2019", [1, 0, 0, 0, 0]),  # keywords in any case
    ("2019 <= year < 2022", [1, 1, 0, 0, 1]),
    ("2019 < year <= 2022 != year", [0, 1, 0, 0, 1]),
    ("year > 2020.5", [0, 1, 1, 0, 0]),
    ("score >= 1", [0, 0, 1, 1, 0]),
    ("score < -1", [0, 0, 0, 0, 1]),
    ("score > -1e1", [1, 0, 1, 1, 1]),
    ("lang in ('en', 'fr')", [1, 1, 0, 1, 0]),
    ("lang in ('en')", [1, 0, 0, 1, 0]),
    ("lang in ['en']", [1, 0, 0, 1, 0]),
    ("lang not in ('en', 'fr')", [0, 0, 0, 0, 1]),  # a null lang is in neither
    ("not lang in ('en', 'fr')", [0, 0, 0, 0, 1]),
    ("year in (2019, 2020.0)", [1, 0, 0, 0, 1]),
    ("score in (1, 2.5)", [0, 0, 1, 1, 0]),
    ("lang is null", [0, 0, 1, 0, 0]),
    ("lang IS NOT NULL", [1, 1, 0, 1, 1]),
    ("not (year >= 2020)", [1, 0, 0, 0, 0]),  # a null year matches neither way
    ("year is null or not (year >= 2020)", [1, 0, 0, 1, 0]),
    ("not year = 2019", [0, 1, 1, 0, 1]),
    ("reviewed", [1, 0, 0, 1, 0]),
    ("not reviewed", [0, 1, 0, 0, 1]),
    ("reviewed = true", [1, 0, 0, 1, 0]),
    ("reviewed != TRUE", [0, 1, 0, 0, 1]),
    ("true", [1, 1, 1, 1, 1]),
    ("false or lang = 'fr'", [0, 1, 0, 0, 0]),
    ("`pub-year` > 2000", [0, 1, 1, 1, 0]),
    ("`year` = 2019", [1, 0, 0, 0, 0]),
    ("nothing = 3 or nothing = 'x'", [0, 0, 0, 0, 0]),
    ("nothing in (1, 2)", [0, 0, 0, 0, 0]),
    ("nothing is null", [1, 1, 1, 1, 1]),
    ("year > score", [1, 0, 1, 0, 1]),
    ("lang = 'en' or lang = 'fr' and year > 2020", [1, 1, 0, 1, 0]),  # and binds tighter
    ("(lang = 'en' or lang = 'fr') and year > 2020", [0, 1, 0, 0, 0]),
    ("  year\n>=\t2021  ", [0, 1, 1, 0, 0]),
])
def test_predicate_mask_by_hand(expression, expected):
    mask = predicate_mask(TABLE, expression)
    assert mask.dtype == np.bool_ and mask.shape == (TABLE.num_rows,)
    assert mask.astype(int).tolist() == expected


def test_predicate_mask_takes_a_record_batch_and_empty_tables():
    batch = TABLE.to_batches()[0]
    assert predicate_mask(batch, "year = 2019").tolist() == [True, False, False, False, False]
    assert predicate_mask(TABLE.slice(0, 0), "year = 2019").shape == (0,)


@pytest.mark.parametrize("expression, message", [
    ("", "empty filter expression"),
    ("lang = ", "filter syntax error at the end of 'lang = '"),
    ("year = = 1", "filter syntax error at column 8 of 'year = = 1'"),
    ("(year > 1", "filter syntax error at column 1 of '(year > 1'"),
    ("lang = 'en", "filter syntax error at column 8 of \"lang = 'en\": unterminated string"),
    ("`pub-year > 1", "unterminated `quoted field name`"),
    ("venue = 'x'", "unknown field 'venue'; known fields: lang, year, score, reviewed, pub-year, nothing"),
    ("lower(lang) = 'en'", "unsupported function call: 'lower(lang)' at column 1"),
    ("year + 1 > 2020", "unsupported arithmetic: 'year + 1' at column 1"),
    ("lang.upper = 'x'", "unsupported attribute access"),
    ("lang[0] = 'e'", "unsupported indexing"),
    ("year < (1, 2)", "unsupported list (lists go after 'in')"),
    ("lang = 5", "type mismatch: compares string with int: 'lang = 5' at column 1"),
    ("2020 < lang", "type mismatch: compares int with string"),
    ("year = 'x'", "type mismatch: compares int with string"),
    ("reviewed = 1", "type mismatch: compares bool with int"),
    ("year in (2019, 'x')", "type mismatch: int field 'year' against string values"),
    ("year = null", "use 'is null' or 'is not null': 'null' at column 8"),
    ("year in (1, null)", "use 'is null'"),
    ("year is 5", "'is' takes null only"),
    ("year", "field 'year' holds int values, not booleans"),
    ("'en'", "a literal alone is not a condition"),
    ("1 = 1", "a comparison needs a field on one side"),
    ("year = b'x'", "unsupported literal (bytes)"),
    ("year = -'x'", "a sign applies to numbers only"),
    ("year == (year > 1)", "a comparison inside a comparison"),
    ("year > 1 if lang else 2", "unsupported conditional expression"),
])
def test_predicate_mask_errors_are_one_line(expression, message):
    with pytest.raises(ParameterError) as excinfo:
        predicate_mask(TABLE, expression)
    assert message in one_line_error(excinfo)


def test_predicate_mask_rewords_pyarrow_errors():
    table = pa.table({"blob": pa.array([b"x", b"y"], pa.binary())})
    with pytest.raises(ParameterError) as excinfo:
        predicate_mask(table, "blob = 5")
    assert "filter 'blob = 5' cannot be evaluated:" in one_line_error(excinfo)


def test_predicate_mask_without_attributes_names_none():
    with pytest.raises(ParameterError, match="known fields: none"):
        predicate_mask(pa.table({"_": [1]}).select([]), "lang = 'en'")


# --------------------------------------------------------------------------- predicate_mask, random
# Each random expression comes with a row-by-row reference: True, False, or None for SQL's unknown.

N_ROWS = 12
STRINGS = ["en", "fr", "de", "it's", ""]
INTS = [-2, 0, 1, 3, 2020]
FLOATS = [-1.5, 0.0, 0.5, 1.0, 3.25]
OPS = {"=": operator.eq, "==": operator.eq, "!=": operator.ne, "<>": operator.ne, "<": operator.lt,
       "<=": operator.le, ">": operator.gt, ">=": operator.ge}
REVERSED = {"=": "=", "==": "==", "!=": "!=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def column(values):
    return st.lists(st.one_of(st.none(), st.sampled_from(values)), min_size=N_ROWS, max_size=N_ROWS)


def render(value) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def literal_for(name: str):
    if name == "s":
        return st.sampled_from(STRINGS)
    return st.one_of(st.sampled_from(INTS), st.sampled_from(FLOATS))  # ints and floats compare


@st.composite
def comparison(draw):
    name = draw(st.sampled_from(["s", "i", "f"]))
    op = draw(st.sampled_from(sorted(OPS)))
    value = draw(literal_for(name))
    if draw(st.booleans()):
        text = f"{name} {op} {render(value)}"
    else:
        text = f"{render(value)} {REVERSED[op]} {name}"
    return text, lambda row: None if row[name] is None else OPS[op](row[name], value)


@st.composite
def chained(draw):
    name = draw(st.sampled_from(["i", "f"]))
    low, high = draw(literal_for(name)), draw(literal_for(name))
    low_op, high_op = draw(st.sampled_from(["<", "<="])), draw(st.sampled_from(["<", "<="]))

    def holds(row):
        if row[name] is None:
            return None
        return OPS[low_op](low, row[name]) and OPS[high_op](row[name], high)
    return f"{render(low)} {low_op} {name} {high_op} {render(high)}", holds


@st.composite
def membership(draw):
    name = draw(st.sampled_from(["s", "i", "f"]))
    values = draw(st.lists(literal_for(name), min_size=1, max_size=3))
    negated = draw(st.booleans())
    text = f"{name} {'not in' if negated else 'in'} ({', '.join(render(v) for v in values)})"
    return text, lambda row: None if row[name] is None else (row[name] in values) != negated


@st.composite
def null_test(draw):
    name = draw(st.sampled_from(["s", "i", "f"]))
    negated = draw(st.booleans())
    return f"{name} is {'not ' if negated else ''}null", lambda row: (row[name] is None) != negated


def kleene_and(a, b):
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def kleene_or(a, b):
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def combine(children):
    def both(pair, keyword, logic):
        (left_text, left), (right_text, right) = pair
        return f"({left_text}) {keyword} ({right_text})", lambda row: logic(left(row), right(row))

    def negate(child):
        text, holds = child
        return f"not ({text})", lambda row: None if holds(row) is None else not holds(row)

    return st.one_of(
        st.tuples(children, children).map(lambda pair: both(pair, "and", kleene_and)),
        st.tuples(children, children).map(lambda pair: both(pair, "OR", kleene_or)),
        children.map(negate),
    )


expressions = st.recursive(st.one_of(comparison(), chained(), membership(), null_test()), combine, max_leaves=6)


@given(s=column(STRINGS), i=column(INTS), f=column(FLOATS), expression=expressions)
def test_predicate_mask_matches_three_valued_reference(s, i, f, expression):
    text, holds = expression
    table = pa.table({"s": pa.array(s, pa.string()), "i": pa.array(i, pa.int64()), "f": pa.array(f, pa.float64())})
    rows = [{"s": s[r], "i": i[r], "f": f[r]} for r in range(N_ROWS)]
    expected = [holds(row) is True for row in rows]  # unknown rows are left out
    assert predicate_mask(table, text).tolist() == expected, text
