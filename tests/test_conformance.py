"""The compiled JSON Schema path (fastjsonschema) must never accept what the reference validator
(jsonschema) refuses, and must accept what it accepts: on every invalid example's document, every
record of the valid examples, and the places where the two libraries' readings differ."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from spec.conformance import _fast_validator, conforms, conforms_text, validator_for
from spec.layout import JSON_SCHEMA_FILES
from tests.bundles import EXAMPLES, broken_document, class_of, load_example

INVALID = sorted((EXAMPLES / "invalid").glob("*.json"))
STEP = json.loads((EXAMPLES / "valid" / "cpu-tiny" / "runs" / "run-1" / "steps.jsonl").read_text().splitlines()[0])
MANIFEST = json.loads((EXAMPLES / "valid" / "cpu-tiny" / "manifest.json").read_text())


def fast_accepts(instance, class_name: str) -> bool:
    try:
        _fast_validator(class_name)(instance)
        return True
    except Exception:  # noqa: BLE001
        return False


def test_every_schema_compiles_to_the_fast_path():
    assert all(_fast_validator(name) is not None for name in JSON_SCHEMA_FILES)


@pytest.mark.parametrize("path", INVALID, ids=lambda path: path.stem)
def test_the_fast_path_agrees_on_every_invalid_example(path):
    example = load_example(path)
    _, text = broken_document(example)
    class_name = class_of(example["file"])
    try:
        instance = json.loads(text)
    except ValueError:
        pytest.skip("not JSON at all: neither path sees it")
    assert fast_accepts(instance, class_name) == validator_for(class_name).is_valid(instance)


@pytest.mark.parametrize("bundle", sorted((EXAMPLES / "valid").iterdir()), ids=lambda path: path.name)
def test_the_fast_path_accepts_every_valid_record(bundle: Path):
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert fast_accepts(manifest, "Manifest")
    for entry in manifest["files"]:
        if entry["path"].endswith(".jsonl"):
            class_name = class_of(entry["path"])
            for line in (bundle / entry["path"]).read_bytes().splitlines():
                assert conforms_text(line, class_name), (entry["path"], line[:120])


@pytest.mark.parametrize("change", [
    lambda r: r.update(step=3.0),                      # an integral float is not an integer
    lambda r: r.update(samples=1e1),
    lambda r: r.update(rank=True),
    lambda r: r.update(duration_s=-1.0),
    lambda r: r.update(extra_field=1),
    lambda r: r.pop("step"),
])
def test_readings_where_the_libraries_differ_step(change):
    record = copy.deepcopy(STEP)
    change(record)
    assert not fast_accepts(record, "StepRecord")
    assert not validator_for("StepRecord").is_valid(record)
    assert not conforms(record, "StepRecord")


@pytest.mark.parametrize("stamp", ["2026-02-30T10:00:00Z", "2026-11-02T09:00:00+0100", "2026-11-02 09:00:00Z",
                                   "2026-11-02T09:00:00Z\n"])
def test_dates_are_read_as_rfc_3339(stamp):
    manifest = copy.deepcopy(MANIFEST)
    manifest["runs"][0]["started_at"] = stamp
    assert not fast_accepts(manifest, "Manifest")
    assert not validator_for("Manifest").is_valid(manifest)


def test_a_trailing_newline_does_not_match_a_pattern():
    manifest = copy.deepcopy(MANIFEST)
    manifest["runs"][0]["run_id"] += "\n"
    assert not fast_accepts(manifest, "Manifest")
    assert not validator_for("Manifest").is_valid(manifest)
