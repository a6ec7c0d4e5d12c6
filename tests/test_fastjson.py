"""core.fastjson reads and writes what the stdlib does (orjson where it agrees)."""

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import fastjson

# JSON values as the stdlib writes them: the property says fastjson reads them the same.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_reads_and_writes_like_the_stdlib(value: object) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert fastjson.loads(text.encode()) == json.loads(text)
    assert json.loads(fastjson.dumps(value)) == value
    assert json.loads(fastjson.dumps_str(value)) == value


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'"\\ud800"', "\ud800"),  # a lone surrogate escape (orjson refuses it)
        (b"[1e400]", [math.inf]),  # past a double's range
        (b'{"a": NaN}', {"a": math.nan}),
    ],
)
def test_what_orjson_refuses_is_read_by_the_stdlib(data: bytes, expected: object) -> None:
    got = fastjson.loads(data)
    assert repr(got) == repr(expected)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"{", json.JSONDecodeError),
        (b'{"a": 1,}', json.JSONDecodeError),
        (b'"\xff"', UnicodeDecodeError),
    ],
)
def test_errors_are_the_stdlibs(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        fastjson.loads(data)
    try:
        json.loads(data)
    except error as stdlib:
        assert str(caught.value) == str(stdlib)


@pytest.mark.parametrize(
    "value",
    [{"text": "\ud800 cut emoji"}, {"seed": 2**70}, {1: "int key"}, ["é", {"ü": "∑"}]],
)
def test_writes_what_orjson_cannot_as_valid_utf8_json(value: object) -> None:
    data = fastjson.dumps(value)
    data.decode("utf-8")  # valid UTF-8 whatever the input
    expected = json.loads(json.dumps(value))
    assert json.loads(data) == expected
    assert json.loads(fastjson.dumps_str(value)) == expected


def test_writes_compact_with_non_ascii_as_is() -> None:
    assert fastjson.dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
