"""Filter expressions mean all that was typed, or are refused in one short line.

Python's parser reads past a # comment, a backslash line continuation and the join of two
adjacent strings without a trace; such a filter would silently match more (or other)
documents than written, so it is refused. Expressions longer than MAX_FILTER_LENGTH or
nested deeper than MAX_FILTER_DEPTH are refused with a message that names the limit and
shows at most FILTER_SHOWN characters of the expression, whatever the parser would do.
"""

import ast

import pyarrow as pa
import pytest
from click.testing import CliRunner
from hypothesis import given, strategies as st

from sparseir import ParameterError
from sparseir.attributes import predicate_mask
from sparseir.cli import cli
from sparseir.expressions import FILTER_SHOWN, MAX_FILTER_DEPTH, MAX_FILTER_LENGTH

TABLE = pa.table({"lang": ["en", "fr", "en", "de"], "year": [2019, 2021, 3001, 2022],
                  "b": [True, False, True, False]})
DOCS = ('{"id": "d1", "vector": {"cat": 1.0}, "lang": "en", "year": 2019}\n'
        '{"id": "d2", "vector": {"cat": 2.0}, "lang": "fr", "year": 2021}\n'
        '{"id": "d3", "vector": {"cat": 0.5}, "lang": "en", "year": 3001}\n')


def one_line_error(expression: str) -> str:
    with pytest.raises(ParameterError) as excinfo:
        predicate_mask(TABLE, expression)
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def filtered_index(tmp_path):
    (tmp_path / "docs.jsonl").write_text(DOCS)
    (tmp_path / "q.jsonl").write_text('{"id": "q1", "vector": {"cat": 1.0}}\n')
    assert run("index", tmp_path / "docs.jsonl", "-o", tmp_path / "IDX", "--attributes", "lang,year").exit_code == 0
    return tmp_path


def test_a_comment_in_a_cli_filter_is_refused(filtered_index):
    tmp = filtered_index
    result = run("search", tmp / "IDX", tmp / "q.jsonl", "-k", 3, "-o", tmp / "run.trec",
                 "--filter", "lang = 'en' # and year > 3000")
    assert result.exit_code == 1 and result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "'#' starts a comment" in result.output and not (tmp / "run.trec").exists()
    # Written out, the condition it dropped applies.
    assert run("search", tmp / "IDX", tmp / "q.jsonl", "-k", 3, "-o", tmp / "run.trec",
               "--filter", "lang = 'en' and year > 3000").exit_code == 0
    assert [line.split()[2] for line in (tmp / "run.trec").read_text().splitlines()] == ["d3"]


@pytest.mark.parametrize("expression, message", [
    ("lang = 'en' # and year > 3000", "column 13 of \"lang = 'en' # and year > 3000\": '#' starts a comment"),
    ("lang = 'en' #", "'#' starts a comment"),
    ("lang = 'en' \\\n and year > 3000", "a backslash outside a string continues a line"),
    ("lang = 'en' \\", "a backslash outside a string"),
    ("lang = 'en'; year > 3000", "';' ends a statement"),
    ("lang = 'en'\nyear > 3000", "filter syntax error"),
    ("lang in ('en' 'fr')", "two strings in a row"),
    ("lang = 'e' \"n\"", "two strings in a row"),
    ("lang = 'e\\\nn'", "a backslash before a line break inside a string"),
])
def test_what_python_would_drop_is_refused(expression, message):
    assert message in one_line_error(expression)


@pytest.mark.parametrize("expression, expected", [
    ("lang = '#en'", [False] * 4),  # inside strings these characters are text
    ("lang in ('en', 'fr;')", [True, False, True, False]),
    ("lang = 'it''s'", [False] * 4),
    ("lang = 'en'\nand year > 3000", [False, False, True, False]),  # a line break is a space
    ("lang = 'en' and\tyear < 3000", [True, False, False, False]),
])
def test_the_same_characters_inside_strings_or_as_spaces_still_work(expression, expected):
    assert predicate_mask(TABLE, expression).tolist() == expected


@given(st.text(max_size=30))
def test_any_comment_is_refused(rest):
    assert "'#' starts a comment" in one_line_error("lang = 'en' #" + rest)


def nested(kind: str, levels: int) -> str:
    return {"not": "not " * levels + "b",
            "minus": "year = " + "-" * levels + "1",
            "or": "(b or " * levels + "b" + ")" * levels}[kind]


@pytest.mark.parametrize("kind", ["not", "minus", "or"])
def test_a_thousand_levels_say_so_name_the_limit_and_show_80_characters(kind):
    expression = nested(kind, 1000)
    assert len(expression) <= MAX_FILTER_LENGTH
    message = one_line_error(expression)
    assert f"nested more than {MAX_FILTER_DEPTH} levels deep" in message
    assert repr(expression[:FILTER_SHOWN]) in message and expression[:FILTER_SHOWN + 1] not in message
    assert len(message) < 250


@pytest.mark.parametrize("kind", ["not", "minus", "or"])
def test_nesting_up_to_the_limit_is_served(kind):
    # Each `not`, sign, comparison and `or` counts a level, and so does the field or value at the bottom.
    levels = {"not": MAX_FILTER_DEPTH - 1, "minus": MAX_FILTER_DEPTH - 2, "or": MAX_FILTER_DEPTH - 1}[kind]
    mask = predicate_mask(TABLE, nested(kind, levels)).tolist()
    assert mask == {"not": [levels % 2 == 0, levels % 2 == 1] * 2, "minus": [False] * 4,
                    "or": [True, False, True, False]}[kind]
    assert f"{MAX_FILTER_DEPTH} levels" in one_line_error(nested(kind, levels + 1))


def test_an_over_long_filter_says_so_and_names_the_limit():
    expression = "lang = 'en' or " * 700 + "lang = 'fr'"
    assert len(expression) > MAX_FILTER_LENGTH
    message = one_line_error(expression)
    assert f"{len(expression):,} characters long, more than the limit of {MAX_FILTER_LENGTH:,}" in message
    assert repr(expression[:FILTER_SHOWN]) in message and len(message) < 250


@pytest.mark.parametrize("error", [RecursionError, MemoryError])
def test_the_parsers_own_limits_are_the_same_one_line(monkeypatch, error):
    def parse(*args, **kwargs):
        raise error()

    monkeypatch.setattr(ast, "parse", parse)
    assert f"nested more than {MAX_FILTER_DEPTH} levels deep" in one_line_error("year > 1")


def test_other_messages_show_at_most_80_characters_of_a_long_filter():
    expression = "lang = 'en' and " * 20 + "venue = 'x'"
    message = one_line_error(expression)
    assert "unknown field 'venue'" in message and repr(expression[:FILTER_SHOWN]) in message
    assert expression[:FILTER_SHOWN + 1] not in message


def test_a_deep_cli_filter_is_one_short_line(filtered_index):
    tmp = filtered_index
    result = run("search", tmp / "IDX", tmp / "q.jsonl", "-k", 1, "-o", tmp / "run.trec",
                 "--filter", "not " * 1000 + "lang = 'en'")
    assert result.exit_code == 1 and result.output.count("\n") == 1 and len(result.output) < 250
    assert f"nested more than {MAX_FILTER_DEPTH} levels deep" in result.output
