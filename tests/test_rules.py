"""spec/rules.py mirrors the schema exactly: property tests compare it with the JSON Schema on
generated documents, beyond the curated examples."""

from __future__ import annotations

import json

import pydantic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trainmark.spec import models
from trainmark.spec.conformance import jsonschema_findings
from trainmark.spec.findings import findings_from_pydantic
from trainmark.spec.records import JSON_LINES_TYPES, RECORD_TYPES
from trainmark.spec.reference_doc import metric_units, schema
from trainmark.spec.rules import (
    RecordContext,
    ecma_pattern,
    has_schema_rules,
    schema_rule_findings,
)

from tests.bundles import EXAMPLES

CATALOG = metric_units(schema())
UNITS = sorted(schema()["enums"]["UcumUnit"]["permissible_values"])
ABSENT = object()


def _accepted_by_models(document: dict, class_name: str) -> bool:
    try:
        getattr(models, class_name).model_validate_json(json.dumps(document))
    except pydantic.ValidationError:
        return False
    return not schema_rule_findings(document, class_name, file=None)


def _accepted_by_jsonschema(document: dict, class_name: str) -> bool:
    return not jsonschema_findings(document, class_name, file=None)


def _optional(strategy):
    return st.one_of(st.just(ABSENT), st.none(), strategy)


@st.composite
def metric_documents(draw):
    fields = {
        "name": st.sampled_from(sorted(CATALOG) + ["not_a_metric"]),
        "scope": st.sampled_from(["device", "process", "node", "interconnect", "global"]),
        "unit": st.sampled_from(UNITS),
        "value": _optional(st.floats(-1e6, 1e6)),
        "method": _optional(st.sampled_from(["counter", "sampled", "derived", "modeled", "guessed"])),
        "source": _optional(st.sampled_from(["nvml", "", "  "])),
        "tool": _optional(st.just("nvidia-ml-py 12.570.86")),
        "unavailable_reason": _optional(st.sampled_from(["no sensor", ""])),
        "device": _optional(st.integers(0, 3)),
        "node": _optional(st.integers(0, 3)),
        "rank": _optional(st.integers(0, 3)),
    }
    document = {}
    for name, strategy in fields.items():
        value = draw(strategy)
        if value is not ABSENT:
            document[name] = value
    if draw(st.booleans()) and document.get("name") in CATALOG:
        document["unit"] = CATALOG[document["name"]]  # often make the unit right, so later rules get exercised
    return document


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(metric_documents())
def test_models_and_json_schema_agree_on_metrics(document):
    assert _accepted_by_models(document, "Metric") == _accepted_by_jsonschema(document, "Metric"), document


@st.composite
def power_samples(draw):
    document = {
        "time_unix_ns": draw(st.sampled_from([1_793_610_000_000_000_000, 1.7936e18, 5, True])),
        "channel": draw(st.sampled_from(["nvml_power", "nvml power", "x\n", "a" * 65])),
    }
    for name in ("power_w", "energy_j"):
        value = draw(_optional(st.floats(-10, 1e4)))
        if value is not ABSENT:
            document[name] = value
    for name in ("device", "node"):
        value = draw(_optional(st.integers(-1, 3)))
        if value is not ABSENT:
            document[name] = value
    return document


@settings(max_examples=300)
@given(power_samples())
def test_models_and_json_schema_agree_on_power_samples(document):
    assert _accepted_by_models(document, "PowerSample") == _accepted_by_jsonschema(document, "PowerSample"), document


def test_ecma_dollar_matches_only_at_the_end():
    pattern = ecma_pattern("^[a-z]+$")
    assert pattern.search("abc")
    assert not pattern.search("abc\n")
    assert ecma_pattern(r"^a\$").search("a$")


def test_rule_messages_name_the_rule():
    document = {
        "name": "total_energy",
        "scope": "global",
        "value": 1.0,
        "unit": "W",
        "method": "counter",
        "source": "nvml",
        "tool": "nvidia-ml-py 12",
    }
    [finding] = schema_rule_findings(document, "Metric", file="manifest.json")
    assert finding.pointer == "/unit"
    assert finding.message == "must be 'J' when name is 'total_energy', not 'W'"


def test_null_value_without_reason_is_reported_at_the_reason():
    [finding] = schema_rule_findings({"value": None, "unit": "J"}, "Measurement", file=None)
    assert finding.pointer == "/unavailable_reason"
    assert "A missing value needs a reason" in finding.message


def test_step_records_have_no_mirror_work_but_power_samples_do():
    assert not has_schema_rules("StepRecord")
    assert has_schema_rules("PowerSample")
    assert has_schema_rules("Manifest")


def test_pydantic_errors_become_pointed_findings():
    try:
        models.StepRecord.model_validate_json(
            b'{"step": -1, "rank": 0, "start_unix_ns": 1793610000000000000, "duration_s": 0.1, "extra": 1}'
        )
    except pydantic.ValidationError as error:
        findings = {(finding.code, finding.pointer) for finding in findings_from_pydantic(error, file="s.jsonl")}
    assert findings == {("value-out-of-range", "/step"), ("field-unknown", "/extra")}


GPU_BUNDLE = EXAMPLES / "valid" / "gpu-h100-gpt2"
GPU_MANIFEST = models.Manifest.model_validate_json((GPU_BUNDLE / "manifest.json").read_bytes())
FIRST_RECORDS = {  # record type -> (its first record in a rank-0 file, that file's rank)
    entry.record_type: (
        RECORD_TYPES[entry.record_type].model.model_validate_json(
            (GPU_BUNDLE / entry.path).read_bytes().split(b"\n", 1)[0]
        ),
        entry.rank,
    )
    for entry in reversed(GPU_MANIFEST.files)
    if entry.record_type in JSON_LINES_TYPES and entry.rank == 0
}
REFERENCE_VALUES = {  # in range and out of it, for the example's 2 ranks, 2 devices, 1 node, 3 channels
    "rank": st.sampled_from([None, 0, 1, 2, 7]),
    "device": st.sampled_from([None, 0, 1, 2]),
    "node": st.sampled_from([None, 0, 1]),
    "channel": st.sampled_from(["nvml_power", "nvml_energy", "cuda_memory", "rapl"]),
}


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_batch_finds_exactly_what_its_records_find_one_by_one(data):
    record_type = data.draw(st.sampled_from(sorted(FIRST_RECORDS)))
    base, file_rank = FIRST_RECORDS[record_type]
    fields = type(base).model_fields
    changes = st.fixed_dictionaries(
        {}, optional={name: values for name, values in REFERENCE_VALUES.items() if name in fields}
    )
    records = [base.model_copy(update=update) for update in data.draw(st.lists(changes, max_size=6))]
    lines = list(range(1, len(records) + 1))
    context = RecordContext(GPU_MANIFEST, record_type, file_rank)
    one_by_one = [
        (line, pointer, message)
        for record, line in zip(records, lines)
        for pointer, message in context.problems(record)
    ]
    assert context.problems_in(records, lines) == one_by_one
