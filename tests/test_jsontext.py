"""Safe JSON reading and the RFC 8785 canonical form behind bundle ids."""

from __future__ import annotations

import json
import re
import struct
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from trainmark.spec.errors import BundleInvalid
from trainmark.spec.jsontext import _STRING, MAX_DEPTH, canonical_json, load_document, nesting_depth


def _double(bits: str) -> float:
    return struct.unpack(">d", bytes.fromhex(bits))[0]


# RFC 8785 appendix B: IEEE 754 bit patterns and their canonical text.
@pytest.mark.parametrize(
    "bits, text",
    [
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),
        ("0000000000000001", "5e-324"),
        ("8000000000000001", "-5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("ffefffffffffffff", "-1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("c340000000000000", "-9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af5", "9.999999999999997e+22"),
        ("44b52d02c7e14af6", "1e+23"),
        ("44b52d02c7e14af7", "1.0000000000000001e+23"),
        ("444b1ae4d6e2ef4e", "999999999999999700000"),
        ("444b1ae4d6e2ef4f", "999999999999999900000"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("41b3de4355555553", "333333333.3333332"),
        ("41b3de4355555554", "333333333.33333325"),
        ("41b3de4355555555", "333333333.3333333"),
        ("41b3de4355555556", "333333333.3333334"),
        ("41b3de4355555557", "333333333.33333343"),
        ("becbf647612f3696", "-0.0000033333333333333333"),
        ("43143ff3c1cb0959", "1424953923781206.2"),
    ],
)
def test_rfc8785_number_vectors(bits, text):
    assert canonical_json(_double(bits)).decode() == text


def test_rfc8785_example_document():
    document = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], '
        '"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", '
        '"literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(document).decode() == expected


def test_canonical_keys_sort_by_utf16_code_units():
    # U+1F600 (surrogate pair D83D...) sorts before U+FB33 in UTF-16, after it in code points.
    assert canonical_json({"\ufb33": 1, "\U0001f600": 2}).decode() == '{"\U0001f600":2,"\ufb33":1}'


def test_canonical_integers_and_floats_agree():
    assert canonical_json({"a": 1.0, "b": 10**3}) == canonical_json({"b": 1000.0, "a": 1}) == b'{"a":1,"b":1000}'


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_canonical_form_round_trips_and_is_stable(value):
    text = canonical_json(value)
    again = json.loads(text)
    assert canonical_json(again) == text


def test_load_refuses_nan_with_a_pointer():
    with pytest.raises(BundleInvalid) as error:
        load_document(b'{"runs": [{"metrics": [{"value": NaN}]}]}', file="manifest.json")
    assert error.value.pointer == "/runs/0/metrics/0/value"
    assert error.value.code == "non-finite-number"


@pytest.mark.parametrize("token", [b"Infinity", b"-Infinity", b"1e999", b"-1E400"])
def test_load_refuses_infinities(token):
    with pytest.raises(BundleInvalid) as error:
        load_document(b'{"a": [1, ' + token + b"]}", file="x.json")
    assert error.value.pointer == "/a/1"


def test_load_refuses_duplicate_keys():
    with pytest.raises(BundleInvalid, match="duplicate key 'a'"):
        load_document(b'{"a": 1, "b": {"a": 2}, "a": 3}', file="x.json")


def test_load_refuses_deep_nesting_without_recursing():
    deep = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)
    with pytest.raises(BundleInvalid, match="nested 65 levels") as error:
        load_document(deep, file="x.json")
    assert error.value.code == "json-limit"
    very_deep = b"[" * 1_000_000 + b"]" * 1_000_000  # would blow the recursion limit of json.loads
    with pytest.raises(BundleInvalid):
        load_document(very_deep, file="x.json")
    assert load_document(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, file="x.json") is not None


def test_depth_ignores_brackets_in_strings():
    assert nesting_depth('{"a": "[[[[{{{{", "b": ["\\"]]]"]}') == 2


def test_load_refuses_oversized_documents():
    with pytest.raises(BundleInvalid, match="over the limit of 10"):
        load_document(b'{"a": "0123456789"}', file="x.json", max_bytes=10)


def test_load_refuses_non_utf8_and_says_where():
    with pytest.raises(BundleInvalid, match=r"not UTF-8 \(byte 6\)"):
        load_document(b'{"a": \xff}', file="x.json")


def test_load_reports_line_and_column_of_syntax_errors():
    with pytest.raises(BundleInvalid, match="line 2 column 8"):
        load_document(b'{"a": 1,\n  "b": }', file="x.json")


@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_give_bundle_invalid(data):
    try:
        load_document(data, file="x.json")
    except BundleInvalid as error:
        assert error.message


def _ecmascript_number(number: float) -> str:
    """ECMAScript Number::toString from the shortest round-trip digits, by the spec's cases."""
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(number))).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    exponent += len(digit_tuple) - len(digits)
    k, n = len(digits), len(digits) + exponent
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    return sign + digits[0] + ("." + digits[1:] if k > 1 else "") + f"e{'+' if n - 1 > 0 else '-'}{abs(n - 1)}"


@given(st.floats(allow_nan=False, allow_infinity=False) | st.floats(min_value=1e-7, max_value=1e22))
def test_canonical_floats_follow_ecmascript(number):
    assert canonical_json(number).decode() == _ecmascript_number(number)


@given(st.text(alphabet='[]{}"\\ab,:\n', max_size=60))
def test_depth_reads_strings_as_the_plain_pattern_does(text):
    plain = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)  # the obvious pattern; the module's is unrolled
    assert _STRING.sub('""', text) == plain.sub('""', text)
