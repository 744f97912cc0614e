"""Findings: what a check found wrong with a bundle, and where.

A finding points at a file (bundle-relative), a line (for JSON Lines) and a JSON pointer
inside the document or record, so that a person or a tool can go straight to the problem.
Everywhere a finding is shown or serialized (`trainmark validate` and `score`, their `--json`,
the HTTP API, the registry) it has one shape, `{code, severity, pointer, message}`, and its
pointer one format:

    FILE[:LINE][#JSON-POINTER]      runs/run-1/steps.rank0.jsonl:5#/loss, manifest.json#/runs/0

LINE only for JSON Lines files; no `#...` when the finding is about the file (or line) as a
whole. `location` writes it and `parse_location` reads it back.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Severity(str, enum.Enum):
    """How much a finding matters: errors make a bundle invalid; warnings and infos do not."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in a bundle."""

    code: str
    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None
    pointer: str = ""

    def as_dict(self) -> dict:
        """The JSON form everywhere: `{code, severity, pointer, message}`, pointer as `location()`."""
        return {"code": self.code, "severity": self.severity.value, "pointer": self.location(), "message": self.message}

    @classmethod
    def from_dict(cls, data: dict) -> Finding:
        """The finding `as_dict` wrote."""
        file, line, pointer = parse_location(data["pointer"])
        return cls(data["code"], Severity(data["severity"]), data["message"], file=file, line=line, pointer=pointer)

    def location(self) -> str:
        """`file[:line][#json-pointer]`, the one pointer format of findings."""
        return location(self.file, self.line, self.pointer)


def location(file: str | None, line: int | None = None, pointer: str = "") -> str:
    """`file[:line][#json-pointer]`, leaving out the parts that are not known."""
    where = file or ""
    if line is not None:
        where += f":{line}"
    if pointer:
        where += f"#{pointer}"
    return where


_LOCATION = re.compile(r"(?P<file>.*?)(?::(?P<line>[1-9][0-9]*))?(?:#(?P<pointer>/.*))?", re.DOTALL)


def parse_location(text: str) -> tuple[str | None, int | None, str]:
    """(file, line, JSON pointer) of a `location` text; ValueError when it is not one."""
    match = _LOCATION.fullmatch(text)
    if match is None or not text:
        raise ValueError(f"{text!r} is not a finding pointer (FILE[:LINE][#/json/pointer])")
    line = int(match["line"]) if match["line"] is not None else None
    return match["file"] or None, line, match["pointer"] or ""


def json_pointer(parts: tuple | list) -> str:
    """RFC 6901 pointer for a path of keys and indices: ('runs', 0, 'seed') -> '/runs/0/seed'."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


_PYDANTIC_CODES = {
    "missing": "field-missing",
    "extra_forbidden": "field-unknown",
    "json_invalid": "json-invalid",
    "json_type": "json-invalid",
    "recursion_loop": "json-limit",
    "finite_number": "non-finite-number",
    "enum": "value-not-allowed",
    "literal_error": "value-not-allowed",
    "string_pattern_mismatch": "value-not-allowed",
    "too_short": "value-out-of-range",
    "too_long": "value-out-of-range",
}


def _pydantic_code(error_type: str) -> str:
    if error_type in _PYDANTIC_CODES:
        return _PYDANTIC_CODES[error_type]
    if error_type.startswith(("greater_than", "less_than")):
        return "value-out-of-range"
    return "type-mismatch"


def _pydantic_message(error: dict) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field: the standard has no such field here; check the spelling or remove it"
    if kind == "finite_number":
        return "NaN and Infinity are not numbers in a bundle; write null and give an unavailable_reason"
    message = error["msg"]
    if "input" in error and kind not in ("json_invalid", "json_type"):
        shown = repr(error["input"])
        message += f" (got {shown[:60] + '...' if len(shown) > 60 else shown})"
    return message


def findings_from_pydantic(error, *, file: str | None, line: int | None = None) -> list[Finding]:
    """Translate a pydantic ValidationError into findings with JSON pointers."""
    return [
        Finding(
            _pydantic_code(item["type"]),
            Severity.ERROR,
            _pydantic_message(item),
            file=file,
            line=line,
            pointer=json_pointer(item["loc"]),
        )
        for item in error.errors(include_url=False)
    ]
