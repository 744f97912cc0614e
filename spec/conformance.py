"""Full JSON Schema conformance (`trainmark validate --jsonschema`, and every registry submission).

Independent of the pydantic path: registries and auditors run both, and the parity tests prove
the two agree on every example. Two validators read the same published schemas: the reference
(`jsonschema`, Python) reports every violation with its pointer; the compiled one (`jsonschema-rs`,
native code, a whole file's records in one call) only settles that what the models accepted
also conforms, and anything it refuses goes to the reference for the findings. Patterns follow
ECMA-262 as JSON Schema requires, `format: date-time` is checked, and an integer is a number
written without fraction or exponent (the standard's definition, stricter than JSON Schema's).
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jsonschema
import jsonschema_rs
import orjson
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from trainmark.spec.findings import Finding, Severity, json_pointer
from trainmark.spec.records import JSON_SCHEMA_FILES
from trainmark.spec.rules import ecma_pattern


def schema_document(class_name: str) -> dict:
    """The published JSON Schema whose root is `class_name`."""
    text = (
        resources.files("trainmark.spec")
        .joinpath("jsonschema", f"{JSON_SCHEMA_FILES[class_name]}.schema.json")
        .read_text()
    )
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
    if class_name in JSON_SCHEMA_FILES:
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
        return [
            Finding(
                code, Severity.ERROR, f"{name} is required", file=file, line=line, pointer=json_pointer(path + (name,))
            )
            for name in missing
        ]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        return [
            Finding(
                code,
                Severity.ERROR,
                f"unknown field {name!r}",
                file=file,
                line=line,
                pointer=json_pointer(path + (name,)),
            )
            for name in error.instance
            if name not in known
        ]
    if error.validator == "type" and error.validator_value == "null":
        # A `then` branch that requires a field to be absent.
        return [
            Finding(
                "rule-violation",
                Severity.ERROR,
                "must be null or absent here",
                file=file,
                line=line,
                pointer=json_pointer(path),
            )
        ]
    return [Finding(code, Severity.ERROR, error.message[:300], file=file, line=line, pointer=json_pointer(path))]


ARRAY_ROOT = "ArrayItem"
"""The $defs name the record class takes inside the array schema that checks a batch at once."""


@functools.cache
def compiled_validator(class_name: str, *, many: bool = False):
    """The same schema compiled by jsonschema-rs (native code): for one instance, or with `many`
    for a list of them in one call.

    Its readings are JSON Schema's, which are looser than the standard's in two places that the
    strict models already refuse: an integral float (1.0) passes as an integer, and a leap
    second (23:59:60) as a time. So it settles only instances the models accepted. Patterns are ECMA-262's there (`$` ends the input).
    """
    document = dict(validator_for(class_name).schema)
    if many:
        definitions = dict(document.pop("$defs", {}))
        schema = document.pop("$schema")
        document.pop("$id", None)  # an embedded $id would start a new base for the "#/$defs/..." references
        definitions[ARRAY_ROOT] = document
        document = {
            "$schema": schema,
            "$defs": definitions,
            "type": "array",
            "items": {"$ref": f"#/$defs/{ARRAY_ROOT}"},
        }
    return jsonschema_rs.validator_for(document, validate_formats=True)


def conforms_text(data: bytes, class_name: str) -> bool:
    """Whether a record's text that the models already read conforms (the compiled validator);
    False means "ask the reference validator for the findings"."""
    try:
        instance = orjson.loads(data)
    except ValueError:  # orjson refuses it (it also refuses integers beyond 64 bits): the reference decides
        return False
    return compiled_accepts(instance, class_name)


def compiled_accepts(instance: Any, class_name: str) -> bool:
    """Whether the compiled validator accepts a parsed instance (settles conformance only together
    with the models' acceptance)."""
    try:
        return compiled_validator(class_name).is_valid(instance)
    except ValueError:  # a value the native side cannot hold (an integer beyond 64 bits)
        return False


def all_conform(texts: list[bytes], class_name: str) -> bool:
    """Whether every one of these record texts is a single JSON value that conforms, in one
    native call. The models still read each text: this settles JSON Schema conformance only for
    the records they accept."""
    try:
        instances = [orjson.loads(text) for text in texts]
        return compiled_validator(class_name, many=True).is_valid(instances)
    except ValueError:
        return False  # not one JSON value per text (a blank line, two records on one line, ...)


def jsonschema_findings(instance: Any, class_name: str, *, file: str | None, line: int | None = None) -> list[Finding]:
    """Every JSON Schema violation of `instance` as findings with pointers (the reference validator;
    callers ask the compiled one first, with the models' verdict, and come here when it refuses)."""
    found: list[Finding] = []
    for error in validator_for(class_name).iter_errors(instance):
        found.extend(_findings_of(error, file, line))
    return found
