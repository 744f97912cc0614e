"""The compiled JSON Schema path (jsonschema-rs) must never let through, together with the models,
what the reference validator (jsonschema) refuses, and must accept what it accepts: on every
invalid example's document, every record of the valid examples, the places where the two
libraries' readings differ, and batches that are not one JSON value per line."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pydantic
import pytest
from trainmark.scorer.score import score_bundle
from trainmark.spec import conformance, models
from trainmark.spec.conformance import all_conform, compiled_accepts, compiled_validator, conforms_text, validator_for
from trainmark.spec.findings import Severity
from trainmark.spec.records import JSON_SCHEMA_FILES
from trainmark.spec.validate import compile_validators, validate_bundle

from tests.bundles import EXAMPLES, broken_document, class_of, copy_bundle, load_example, reseal

INVALID = sorted((EXAMPLES / "invalid").glob("*.json"))
CPU_TINY = EXAMPLES / "valid" / "cpu-tiny"
STEP_LINES = (CPU_TINY / "runs" / "run-1" / "steps.jsonl").read_bytes().splitlines()
STEP = json.loads(STEP_LINES[0])
MANIFEST = json.loads((CPU_TINY / "manifest.json").read_text())


def models_accept(instance, class_name: str) -> bool:
    try:
        getattr(models, class_name).model_validate_json(json.dumps(instance))
        return True
    except pydantic.ValidationError:
        return False


@pytest.mark.parametrize("class_name", sorted(JSON_SCHEMA_FILES))
def test_every_schema_compiles(class_name):
    assert compiled_validator(class_name) is not None
    assert compiled_validator(class_name, many=True) is not None


@pytest.mark.parametrize("path", INVALID, ids=lambda path: path.stem)
def test_the_compiled_path_agrees_on_every_invalid_example(path):
    example = load_example(path)
    _, text = broken_document(example)
    class_name = class_of(example["file"])
    try:
        instance = json.loads(text)
    except ValueError:
        pytest.skip("not JSON at all: neither path sees it")
    reference = validator_for(class_name).is_valid(instance)
    compiled = compiled_accepts(instance, class_name)
    # Sound: with the models, the compiled path lets through only what the reference accepts.
    assert reference or not (compiled and models_accept(instance, class_name))
    # Complete: what the reference accepts, the compiled path settles without it (NaN is not
    # JSON: the compiled path refuses it, and so does every reader of bundles before either).
    if "NaN" not in text and "Infinity" not in text:
        assert compiled or not reference


@pytest.mark.parametrize("bundle", sorted((EXAMPLES / "valid").iterdir()), ids=lambda path: path.name)
def test_the_compiled_path_accepts_every_valid_record(bundle: Path):
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert compiled_accepts(manifest, "Manifest")
    for entry in manifest["files"]:
        if entry["path"].endswith(".jsonl"):
            class_name = class_of(entry["path"])
            lines = (bundle / entry["path"]).read_bytes().splitlines()
            assert all_conform(lines, class_name), entry["path"]
            for line in lines:
                assert conforms_text(line, class_name), (entry["path"], line[:120])


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.update(step=3.0),  # an integral float is not an integer
        lambda r: r.update(samples=1e1),
        lambda r: r.update(rank=True),
        lambda r: r.update(duration_s=-1.0),
        lambda r: r.update(extra_field=1),
        lambda r: r.pop("step"),
    ],
)
def test_readings_where_the_libraries_differ_step(change):
    record = copy.deepcopy(STEP)
    change(record)
    assert not validator_for("StepRecord").is_valid(record)
    # jsonschema-rs takes 3.0 for an integer, as JSON Schema does; the strict models never do.
    assert not (compiled_accepts(record, "StepRecord") and models_accept(record, "StepRecord"))


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-02-30T10:00:00Z",
        "2026-11-02T09:00:00+0100",
        "2026-11-02 09:00:00Z",
        "2026-11-02T09:00:00Z\n",
        "2026-11-02T23:59:60Z",
    ],
)
def test_dates_are_read_as_rfc_3339(stamp):
    manifest = copy.deepcopy(MANIFEST)
    manifest["runs"][0]["started_at"] = stamp
    assert not validator_for("Manifest").is_valid(manifest)
    # A leap second is RFC 3339 (jsonschema-rs takes it); Python's datetime, so the models, cannot hold it.
    assert not (compiled_accepts(manifest, "Manifest") and models_accept(manifest, "Manifest"))


def test_a_trailing_newline_does_not_match_a_pattern():
    manifest = copy.deepcopy(MANIFEST)
    manifest["runs"][0]["run_id"] += "\n"
    assert not compiled_accepts(manifest, "Manifest")
    assert not validator_for("Manifest").is_valid(manifest)


def test_a_batch_is_refused_unless_every_line_is_one_conforming_record():
    assert all_conform(STEP_LINES, "StepRecord")
    broken = json.loads(STEP_LINES[1]) | {"duration_s": -1.0}
    assert not all_conform([STEP_LINES[0], json.dumps(broken).encode()], "StepRecord")
    assert not all_conform([STEP_LINES[0], b""], "StepRecord")
    assert not all_conform([STEP_LINES[0] + b" " + STEP_LINES[1]], "StepRecord")
    assert not all_conform([b"[" + STEP_LINES[0], STEP_LINES[1] + b"]"], "StepRecord")
    assert not all_conform([STEP_LINES[0], b'{"step": 18446744073709551616}'], "StepRecord")


def test_lines_that_are_records_only_when_joined_are_refused(tmp_path):
    """Split across lines, a record can read as valid JSON once the lines are joined into one
    array; the batch path parses every line on its own first, so each is reported."""
    root = copy_bundle(CPU_TINY, tmp_path / "bundle")
    steps = root / "runs" / "run-1" / "steps.jsonl"
    lines = steps.read_bytes().splitlines()
    first = lines[0].decode()
    cut = first.index('"') + 3  # inside the first key: joined with a comma, the halves are one string again
    lines[0:1] = [first[:cut].encode(), first[cut:].encode()]
    steps.write_bytes(b"\n".join(lines) + b"\n")
    reseal(root)
    report = validate_bundle(root, full_jsonschema=True)
    assert not report.valid
    assert {finding.line for finding in report.findings if finding.file == "runs/run-1/steps.jsonl"} >= {1, 2}


def test_an_integral_float_in_a_conforming_batch_is_found_by_the_models(tmp_path):
    """jsonschema-rs accepts the batch (3.0 is an integer to JSON Schema); the models refuse the
    record, and the pass falls back to reading the batch record by record."""
    root = copy_bundle(CPU_TINY, tmp_path / "bundle")
    steps = root / "runs" / "run-1" / "steps.jsonl"
    lines = steps.read_bytes().splitlines()
    record = json.loads(lines[4])
    assert isinstance(record["step"], int)
    lines[4] = json.dumps(record | {"step": float(record["step"])}).encode()
    assert all_conform(lines, "StepRecord")
    steps.write_bytes(b"\n".join(lines) + b"\n")
    reseal(root)
    report = validate_bundle(root, full_jsonschema=True)
    errors = [
        (finding.file, finding.line, finding.pointer)
        for finding in report.findings
        if finding.severity is Severity.ERROR
    ]
    assert errors and set(errors) == {("runs/run-1/steps.jsonl", 5, "/step")}, errors


def test_compile_validators_builds_every_one_the_full_pass_uses():
    conformance.compiled_validator.cache_clear()
    conformance.validator_for.cache_clear()
    compile_validators(full_jsonschema=True)
    # The manifest and every record class one at a time, and the record classes in batches.
    compiled = 2 * len(JSON_SCHEMA_FILES) - 1
    assert conformance.compiled_validator.cache_info().currsize == compiled
    assert conformance.validator_for.cache_info().currsize == len(JSON_SCHEMA_FILES)
    score_bundle(CPU_TINY, full_jsonschema=True)
    assert conformance.compiled_validator.cache_info().misses == compiled  # the pass compiled nothing more
