"""Findings: what a check found wrong with a bundle, and where.

A finding points at a file (bundle-relative), a line (for JSON Lines) and a JSON pointer
inside the document or record, so that a person or a tool can go straight to the problem.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass


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
        """The JSON form used by `trainmark validate --json` and the HTTP API."""
        data = asdict(self)
        data["severity"] = self.severity.value
        return {key: data[key] for key in ("code", "severity", "file", "line", "pointer", "message")}

    def location(self) -> str:
        """`file:line#pointer`, leaving out the parts that are not known."""
        where = self.file or "<bundle>"
        if self.line is not None:
            where += f":{self.line}"
        if self.pointer:
            where += f"#{self.pointer}"
        return where


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
