"""JSON in and out, safely: limits on untrusted documents, and the canonical form behind ids.

Bundles are untrusted input. `load_document` refuses what a hostile or broken producer could
send to hurt a reader or to make two readers disagree: non-UTF-8 text, NaN/Infinity (also
numbers that overflow to infinity, such as 1e999), duplicate keys, nesting deeper than a fixed
limit, and documents over a size limit. `canonical_json` is RFC 8785 (JSON Canonicalization
Scheme), so that a bundle id can be recomputed byte for byte in any language.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from trainmark.spec.errors import BundleInvalid
from trainmark.spec.findings import json_pointer

MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
"""Largest JSON document (manifest.json, kernels.json) read, in bytes."""

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted; the standard itself needs fewer than 10."""

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: 3 x faster than (?:[^"\\]|\\.)*
_BRACKET = re.compile(r"[\[\]{}]")


def nesting_depth(text: str) -> int:
    """Deepest nesting of arrays/objects in JSON text, ignoring brackets inside strings."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class _NonFinite:
    """Stands in for NaN/Infinity while parsing, so the error can point at where it was."""

    def __init__(self, text: str) -> None:
        self.text = text


def _non_finite_float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}; keep one")
        result[key] = value
    return result


def _first_non_finite(node: Any, path: tuple = ()) -> tuple[tuple, str] | None:
    if isinstance(node, _NonFinite):
        return path, node.text
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return None
    for key, value in items:
        found = _first_non_finite(value, path + (key,))
        if found:
            return found
    return None


_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
"""An escape that may stand for U+0000 or for half of a surrogate pair: only then are the
strings walked (the walk is the slow part, and real documents almost never need it)."""


def _bad_text(value: str) -> str | None:
    if "\x00" in value:
        return "holds the character U+0000 (NUL), which text in a bundle may not hold; remove it"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone UTF-16 surrogate (an escape such as \\ud800 without its pair); text must be valid Unicode"
    return None


def _first_bad_text(node: Any, path: tuple = ()) -> tuple[tuple, str] | None:
    if isinstance(node, str):
        problem = _bad_text(node)
        return (path, "a string " + problem) if problem else None
    if isinstance(node, dict):
        for key, value in node.items():
            problem = _bad_text(key)
            if problem:
                return path, "a member name " + problem  # the pointer stops at its object
            found = _first_bad_text(value, path + (key,))
            if found:
                return found
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found = _first_bad_text(value, path + (index,))
            if found:
                return found
    return None


def check_text(document: Any, text: str | bytes, *, file: str, line: int | None = None) -> None:
    """Refuse a parsed document whose strings hold U+0000 or a lone surrogate (JSON lets an escape
    write either; neither can be stored as text by PostgreSQL or encoded as UTF-8)."""
    if isinstance(text, bytes):
        if _SUSPECT_ESCAPE.search(text.decode("utf-8", "replace")) is None:
            return
    elif _SUSPECT_ESCAPE.search(text) is None:
        return
    found = _first_bad_text(document)
    if found:
        path, problem = found
        raise BundleInvalid(problem, file=file, line=line, pointer=json_pointer(path), code="text-invalid")


def read_bounded(path: Path, *, file: str, max_bytes: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The bytes of a JSON document on disk, refused before it is read when it is over
    `max_bytes` (and never more than `max_bytes` + 1 bytes read, should it grow meanwhile)."""
    size = path.stat().st_size
    if size > max_bytes:
        raise BundleInvalid(f"document is {size} bytes, over the limit of {max_bytes}", file=file, code="json-limit")
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise BundleInvalid(f"document is over the limit of {max_bytes} bytes", file=file, code="json-limit")
    return data


def load_document(data: bytes, *, file: str, max_bytes: int = MAX_DOCUMENT_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Parse one untrusted JSON document, or raise `BundleInvalid` saying where and why."""
    if len(data) > max_bytes:
        raise BundleInvalid(
            f"document is {len(data)} bytes, over the limit of {max_bytes}", file=file, code="json-limit"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BundleInvalid(
            f"not UTF-8 (byte {error.start}); save the file as UTF-8", file=file, code="json-invalid"
        ) from None
    depth = nesting_depth(text)
    if depth > max_depth:
        raise BundleInvalid(f"nested {depth} levels deep, over the limit of {max_depth}", file=file, code="json-limit")
    try:
        document = json.loads(
            text, parse_constant=_NonFinite, parse_float=_non_finite_float, object_pairs_hook=unique_keys
        )
    except json.JSONDecodeError as error:
        raise BundleInvalid(
            f"not valid JSON at line {error.lineno} column {error.colno}: {error.msg}", file=file, code="json-invalid"
        ) from None
    except ValueError as error:
        message = str(error)
        if "integer string conversion" in message:
            message = "an integer with more than 4300 digits; numbers in a bundle fit in 64 bits"
        raise BundleInvalid(message, file=file, code="json-invalid") from None
    except RecursionError:
        raise BundleInvalid("nested too deeply to read", file=file, code="json-limit") from None
    check_text(document, text, file=file)
    non_finite = _first_non_finite(document)
    if non_finite:
        path, literal = non_finite
        raise BundleInvalid(
            f"{literal} is not a finite number; a reading that does not exist is null with an unavailable_reason",
            file=file,
            pointer=json_pointer(path),
            code="non-finite-number",
        )
    return document


# ---------------------------------------------------------------- RFC 8785 canonical form


def _canonical_number(value: int | float) -> str:
    """ECMAScript Number-to-String of the IEEE 754 double nearest to `value` (RFC 8785 3.2.2.3)."""
    if isinstance(value, int) and abs(value) <= 2**53:
        return str(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("NaN and Infinity have no canonical JSON form")
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    # repr gives the shortest digits that round-trip, as ECMAScript requires.
    shortest = repr(abs(number))
    if "e" not in shortest:  # 1e-4 <= |value| < 1e16: both write it in fixed notation
        return sign + shortest.removesuffix(".0")
    _, digit_tuple, exponent = Decimal(shortest).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    exponent += len(digit_tuple) - len(digits)
    k = len(digits)
    n = k + exponent  # value = 0.digits x 10^n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
        text = f"{mantissa}e{'+' if n - 1 > 0 else '-'}{abs(n - 1)}"
    return sign + text


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def _canonical_string(value: str) -> str:
    if _NEEDS_ESCAPE.search(value) is None:
        return f'"{value}"'  # the common case: nothing to escape
    out = ['"']
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _canonical(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, (int, float)):
        out.append(_canonical_number(value))
    elif isinstance(value, str):
        out.append(_canonical_string(value))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _canonical(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        # RFC 8785 sorts member names by their UTF-16 code units (for ASCII names, their order as str).
        names = (
            sorted(value)
            if all(name.isascii() for name in value)
            else sorted(value, key=lambda name: name.encode("utf-16-be"))
        )
        for index, key in enumerate(names):
            if index:
                out.append(",")
            out.append(_canonical_string(key))
            out.append(":")
            _canonical(value[key], out)
        out.append("}")
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 form of a JSON value."""
    out: list[str] = []
    _canonical(value, out)
    return "".join(out).encode("utf-8")
