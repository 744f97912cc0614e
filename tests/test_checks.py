"""Checks are named functions in lists, and every finding has one shape with one pointer format."""

from __future__ import annotations

import json
import shutil

import pytest
from trainmark.scorer import fidelity
from trainmark.scorer.report import bundle_report_html
from trainmark.scorer.score import score_bundle
from trainmark.spec import models
from trainmark.spec.findings import Finding, Severity, parse_location
from trainmark.spec.rules import MANIFEST_CHECKS, manifest_semantic_findings

from tests.bundles import EXAMPLES

GPU = EXAMPLES / "valid" / "gpu-h100-gpt2"
GPU_DOCUMENT = json.loads((GPU / "manifest.json").read_text())


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("runs/run-1/steps.rank0.jsonl:5#/loss", ("runs/run-1/steps.rank0.jsonl", 5, "/loss")),
        ("manifest.json#/runs/0/metrics/3/value", ("manifest.json", None, "/runs/0/metrics/3/value")),
        ("runs/run-1/power.rank0.jsonl", ("runs/run-1/power.rank0.jsonl", None, "")),
        ("runs/run-1/memory.rank0.jsonl:11", ("runs/run-1/memory.rank0.jsonl", 11, "")),
        ("manifest.json#/a~1b/c~0d", ("manifest.json", None, "/a~1b/c~0d")),
    ],
)
def test_a_pointer_reads_back_into_its_parts(text, parts):
    assert parse_location(text) == parts
    finding = Finding("rule-violation", Severity.WARNING, "m", file=parts[0], line=parts[1], pointer=parts[2])
    assert finding.location() == text
    assert finding.as_dict() == {"code": "rule-violation", "severity": "warning", "pointer": text, "message": "m"}
    assert Finding.from_dict(finding.as_dict()) == finding


def test_score_and_validate_findings_have_the_one_shape(tmp_path):
    document = json.loads(json.dumps(GPU_DOCUMENT))
    document["runs"][0]["metrics"][0]["value"] *= 2  # a summary the traces contradict
    bundle = tmp_path / "b"
    shutil.copytree(GPU, bundle)
    (bundle / "manifest.json").write_text(json.dumps(document))
    report = score_bundle(bundle).as_dict()
    assert report["findings"]
    for finding in report["findings"]:
        assert set(finding) == {"code", "severity", "pointer", "message"}
        parse_location(finding["pointer"])
    assert any(f["pointer"] == "manifest.json#/runs/0/metrics/0/value" for f in report["findings"])
    html, _ = bundle_report_html(bundle)
    assert "<td>manifest.json#/runs/0/metrics/0/value</td>" in html  # the report page shows the same pointer


def test_manifest_checks_have_unique_names_and_say_what_they_check():
    names = [check.name for check in MANIFEST_CHECKS]
    assert len(set(names)) == len(names)
    assert all(check.function.__doc__ for check in MANIFEST_CHECKS)


def _manifest(**changes) -> models.Manifest:
    document = json.loads(json.dumps(GPU_DOCUMENT))
    for path, value in changes.items():
        node = document
        *parents, last = path.split("/")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = value
    return models.Manifest.model_validate_json(json.dumps(document))


def test_a_single_document_file_holds_one_record_by_the_table():
    index = next(i for i, entry in enumerate(GPU_DOCUMENT["files"]) if entry["record_type"] == "kernel_breakdown")
    found = manifest_semantic_findings(_manifest(**{f"files/{index}/record_count": 2}))
    assert [(f.code, f.location(), f.message) for f in found] == [
        (
            "rule-violation",
            f"manifest.json#/files/{index}/record_count",
            "a kernel_breakdown file holds exactly one document",
        )
    ]


def test_only_channel_fed_record_types_take_channels():
    found = manifest_semantic_findings(_manifest(**{"methodology/channels/0/record_type": "step"}))
    assert (
        "manifest.json#/methodology/channels/0/record_type",
        "channels feed power_sample or memory_sample records, not step",
    ) in {(f.location(), f.message) for f in found}


def test_a_warning_check_reports_with_its_own_severity():
    document = json.loads(json.dumps(GPU_DOCUMENT))
    world_size = document["training"]["world_size"]
    document["training"]["parallelism"] = {"data_parallel": world_size + 1}
    found = manifest_semantic_findings(models.Manifest.model_validate_json(json.dumps(document)))
    assert [(f.code, f.severity, f.location()) for f in found] == [
        ("rule-violation", Severity.WARNING, "manifest.json#/training/parallelism"),
        ("rule-violation", Severity.WARNING, "manifest.json#/training/global_batch_size"),
    ]


def test_every_f1_check_is_a_named_function_with_a_docstring():
    checks = fidelity.STREAM_CHECKS + fidelity.STEP_CHECKS + fidelity.RUN_CHECKS + fidelity.BUNDLE_CHECKS
    assert len({check.__name__ for check in checks}) == len(checks)
    assert all(check.__doc__ for check in checks)
