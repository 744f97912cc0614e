"""Full JSON Schema conformance (`trainmark validate --jsonschema`).

Slower than the pydantic path by an order of magnitude, and independent of it: registries and
auditors run both, and the parity tests prove the two agree on every example. Patterns follow
ECMA-262 as JSON Schema requires, `format: date-time` is checked, and an integer is a number
written without fraction or exponent (the standard's definition, stricter than JSON Schema's).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from importlib import resources
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from spec.findings import Finding, Severity, json_pointer
from spec.layout import JSON_SCHEMA_FILES
from spec.rules import ecma_pattern

SCHEMA_FILES = JSON_SCHEMA_FILES


def schema_document(class_name: str) -> dict:
    """The published JSON Schema whose root is `class_name`."""
    text = resources.files("spec").joinpath("jsonschema", f"{SCHEMA_FILES[class_name]}.schema.json").read_text()
    return json.loads(text)


def _ecma_pattern_keyword(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not ecma_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _is_integer_token(checker, instance) -> bool:
    # The standard's integers are written without fraction or exponent (1.0 and 1e3 are not
    # integers), as the pydantic models read them; JSON Schema alone would accept 1.0.
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    Draft202012Validator,
    validators={"pattern": _ecma_pattern_keyword},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer_token),
)


@functools.cache
def validator_for(class_name: str):
    """A compiled validator for a class (cached: compiling costs milliseconds).

    Root classes use their published schema; any other class (e.g. Metric) its definition in
    the manifest schema.
    """
    if class_name in SCHEMA_FILES:
        document = schema_document(class_name)
    else:
        manifest = schema_document("Manifest")
        document = {"$schema": manifest["$schema"], "$defs": manifest["$defs"], "$ref": f"#/$defs/{class_name}"}
    return _Validator(document, format_checker=FormatChecker())


_CODES = {
    "required": "field-missing",
    "additionalProperties": "field-unknown",
    "type": "type-mismatch",
    "minimum": "value-out-of-range",
    "maximum": "value-out-of-range",
    "exclusiveMinimum": "value-out-of-range",
    "exclusiveMaximum": "value-out-of-range",
    "minItems": "value-out-of-range",
    "maxItems": "value-out-of-range",
    "enum": "value-not-allowed",
    "const": "rule-violation",
    "pattern": "value-not-allowed",
    "format": "value-not-allowed",
    "not": "rule-violation",
    "anyOf": "rule-violation",
}


def _findings_of(error: ValidationError, file: str | None, line: int | None) -> list[Finding]:
    path = tuple(error.absolute_path)
    code = _CODES.get(error.validator, "schema-violation")
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        return [Finding(code, Severity.ERROR, f"{name} is required", file=file, line=line,
                        pointer=json_pointer(path + (name,))) for name in missing]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        return [Finding(code, Severity.ERROR, f"unknown field {name!r}", file=file, line=line,
                        pointer=json_pointer(path + (name,))) for name in error.instance if name not in known]
    if error.validator == "type" and error.validator_value == "null":
        # A `then` branch that requires a field to be absent.
        return [Finding("rule-violation", Severity.ERROR, "must be null or absent here", file=file, line=line,
                        pointer=json_pointer(path))]
    return [Finding(code, Severity.ERROR, error.message[:300], file=file, line=line, pointer=json_pointer(path))]


# fastjsonschema takes a float with an integral value (1.0) for an integer; the standard does not.
_INTEGRAL_FLOAT = re.compile(r" and not \(isinstance\((\w+), float\) and \1\.is_integer\(\)\)")


@functools.cache
def _fast_validator(class_name: str) -> Callable[[Any], Any] | None:
    """The same schema compiled to Python code by fastjsonschema, or None where it is not installed.

    It only ever accepts: whatever it refuses goes to the reference validator for the findings.
    Its readings that are looser than the standard's are closed: `date-time` is checked by the
    RFC 3339 validator the reference uses, `$` in patterns already means end of input there, and
    the generated integer check is rewritten so that a float is never an integer. The code is
    generated as draft 7 (our schemas use no keyword that 2020-12 added).
    """
    try:
        import fastjsonschema
        from rfc3339_validator import validate_rfc3339
    except ImportError:
        return None
    document = dict(validator_for(class_name).schema)
    document["$schema"] = "http://json-schema.org/draft-07/schema#"
    document.pop("$id", None)
    code, rewritten = _INTEGRAL_FLOAT.subn("", fastjsonschema.compile_to_code(document, use_default=False))
    if rewritten == 0 and '"integer"' in json.dumps(document):
        return None  # a fastjsonschema whose integer check we do not recognise: use the reference only
    namespace: dict[str, Any] = {}
    exec(compile(code, f"<fastjsonschema {class_name}>", "exec"), namespace)  # noqa: S102 (our own schema)
    return functools.partial(namespace["validate"], custom_formats={"date-time": validate_rfc3339})


def conforms(instance: Any, class_name: str) -> bool:
    """Whether `instance` follows the class's JSON Schema (the fast compiled path when it can decide)."""
    fast = _fast_validator(class_name)
    if fast is not None:
        try:
            fast(instance)
            return True
        except Exception:  # noqa: BLE001 (any refusal is settled by the reference validator)
            pass
    return validator_for(class_name).is_valid(instance)


def conforms_text(data: bytes, class_name: str) -> bool:
    """The fast path alone, on a record's text that the models already read (so it is well-formed,
    finite and shallow): True when it conforms; False means "ask the reference validator"."""
    fast = _fast_validator(class_name)
    if fast is None:
        return False
    try:
        fast(json.loads(data))
        return True
    except Exception:  # noqa: BLE001
        return False


def jsonschema_findings(instance: Any, class_name: str, *, file: str | None,
                        line: int | None = None) -> list[Finding]:
    """Every JSON Schema violation of `instance` as findings with pointers."""
    if conforms(instance, class_name):
        return []
    found: list[Finding] = []
    for error in validator_for(class_name).iter_errors(instance):
        found.extend(_findings_of(error, file, line))
    return found
