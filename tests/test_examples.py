"""The example bundles: valid ones pass everything, each invalid one fails where it says, and the
two validation pipelines (pydantic + spec/rules.py, and JSON Schema) agree on all of them."""

from __future__ import annotations

import filecmp
import json

import pydantic
import pytest
from trainmark.spec import SCHEMA_VERSION, models
from trainmark.spec.bundle import read_manifest
from trainmark.spec.conformance import jsonschema_findings
from trainmark.spec.errors import BundleInvalid
from trainmark.spec.examples.generate import write_examples
from trainmark.spec.findings import Severity, findings_from_pydantic
from trainmark.spec.jsontext import load_document
from trainmark.spec.layout import MANIFEST_NAME, role_of
from trainmark.spec.rules import RecordContext, manifest_semantic_findings, schema_rule_findings
from trainmark.spec.validate import validate_bundle

from tests.bundles import (
    EXAMPLES,
    INVALID_EXAMPLES,
    VALID_BUNDLES,
    broken_document,
    class_of,
    load_example,
    materialize,
)


def test_example_folders_are_not_empty():
    assert {path.name for path in VALID_BUNDLES} >= {"gpu-h100-gpt2", "cpu-tiny"}
    assert len(INVALID_EXAMPLES) >= 40


def test_examples_are_what_the_generator_writes(tmp_path):
    write_examples(tmp_path)
    for bundle in VALID_BUNDLES:
        comparison = filecmp.dircmp(bundle, tmp_path / bundle.name)
        pending = [comparison]
        while pending:
            current = pending.pop()
            assert not current.left_only and not current.right_only, (
                current.left,
                current.left_only,
                current.right_only,
            )
            _, mismatch, errors = filecmp.cmpfiles(current.left, current.right, current.common_files, shallow=False)
            assert not mismatch and not errors, f"{current.left}: {mismatch or errors} differ; run make examples"
            pending.extend(current.subdirs.values())


@pytest.mark.parametrize("bundle", VALID_BUNDLES, ids=lambda path: path.name)
def test_valid_example_has_no_findings_at_all(bundle):
    report = validate_bundle(bundle, full_jsonschema=True)
    assert report.valid
    assert [finding.as_dict() for finding in report.findings] == []
    assert report.schema_version == SCHEMA_VERSION


# ---------------------------------------------------------------- the two pipelines, one document at a time


def pipeline_pydantic(text: str, class_name: str) -> set[str]:
    """Pointers pipeline A (pydantic models + the rules mirror) reports for one document."""
    model = getattr(models, class_name)
    try:
        instance = model.model_validate_json(text)
    except pydantic.ValidationError as error:
        return {finding.pointer for finding in findings_from_pydantic(error, file=None)}
    subject = json.loads(text) if class_name == "Manifest" else instance
    return {finding.pointer for finding in schema_rule_findings(subject, class_name, file=None)}


def pipeline_jsonschema(text: str, class_name: str) -> set[str]:
    """Pointers pipeline B (the published JSON Schema) reports for one document."""
    return {finding.pointer for finding in jsonschema_findings(json.loads(text), class_name, file=None)}


def semantic_pointers(text: str, class_name: str, base_manifest: models.Manifest, file: str) -> set[str]:
    """Pointers of the cross-field checks both pipelines share."""
    if class_name == "Manifest":
        return {
            finding.pointer
            for finding in manifest_semantic_findings(models.Manifest.model_validate_json(text))
            if finding.severity is Severity.ERROR
        }
    record = getattr(models, class_name).model_validate_json(text)
    role = role_of(file)
    return {pointer for pointer, _ in RecordContext(base_manifest, role.record_type, role.rank).problems(record)}


@pytest.mark.parametrize("bundle", VALID_BUNDLES, ids=lambda path: path.name)
def test_pipelines_accept_every_document_of_valid_examples(bundle):
    _, manifest = read_manifest(bundle)
    documents = [(MANIFEST_NAME, (bundle / MANIFEST_NAME).read_text())]
    for entry in manifest.files:
        text = (bundle / entry.path).read_text()
        if entry.record_type == "kernel_breakdown":
            documents.append((entry.path, text))
        else:
            documents += [(entry.path, line) for line in text.splitlines()]
    assert len(documents) > 500
    for file, text in documents:
        class_name = class_of(file)
        assert pipeline_pydantic(text, class_name) == set(), (file, text[:200])
        assert pipeline_jsonschema(text, class_name) == set(), (file, text[:200])
        assert semantic_pointers(text, class_name, manifest, file) == set(), (file, text[:200])


@pytest.mark.parametrize("path", INVALID_EXAMPLES, ids=lambda path: path.stem)
def test_pipelines_agree_on_invalid_example(path):
    example = load_example(path)
    pointer, layer = example["expect"]["pointer"], example["layer"]
    _, text = broken_document(example)
    class_name = class_of(example["file"])
    if layer == "parse":
        with pytest.raises(BundleInvalid) as refused:
            load_document(text.encode(), file=example["file"])
        assert refused.value.pointer == pointer
        assert pointer in pipeline_pydantic(text, class_name)  # pydantic's own parser refuses it too
        return
    a, b = pipeline_pydantic(text, class_name), pipeline_jsonschema(text, class_name)
    if layer == "schema":
        assert pointer in a, f"pydantic + rules did not flag {pointer}: {a}"
        assert pointer in b, f"JSON Schema did not flag {pointer}: {b}"
    else:
        assert a == set() and b == set(), "a semantic example must be schema-valid"
        _, base_manifest = read_manifest(EXAMPLES / "valid" / example["base"])
        assert pointer in semantic_pointers(text, class_name, base_manifest, example["file"])


@pytest.mark.parametrize("path", INVALID_EXAMPLES, ids=lambda path: path.stem)
def test_validator_rejects_invalid_example_at_its_pointer(path, tmp_path):
    example = load_example(path)
    root = materialize(example, tmp_path / "bundle")
    for full_jsonschema in (False, True):
        report = validate_bundle(root, full_jsonschema=full_jsonschema, max_findings=10_000)
        assert not report.valid
        located = [
            (finding.file, finding.line, finding.pointer)
            for finding in report.findings
            if finding.severity is Severity.ERROR
        ]
        assert (example["file"], example["line"], example["expect"]["pointer"]) in located, located


def test_invalid_examples_name_files_that_exist():
    for path in INVALID_EXAMPLES:
        example = load_example(path)
        assert set(example) == {"description", "base", "file", "line", "patch", "layer", "expect"}, path.name
        assert example["layer"] in {"parse", "schema", "semantic"}
        assert (EXAMPLES / "valid" / example["base"] / example["file"]).is_file(), path.name
        assert (example["line"] is None) == (example["file"].endswith(".json")), path.name


def test_examples_are_documented():
    readme = (EXAMPLES / "README.md").read_text()
    for bundle in VALID_BUNDLES:
        assert f"`{bundle.name}/`" in readme


def test_generated_bundle_overview_is_complete():
    from trainmark.overview import bundle_overview

    document, manifest = read_manifest(EXAMPLES / "valid" / "gpu-h100-gpt2")
    overview = bundle_overview(manifest, "x")
    assert overview["system"]["devices"] == ["2 x NVIDIA H100 80GB HBM3 (gpu)"]
    assert [run["run_id"] for run in overview["runs"]] == ["run-1", "run-2", "run-3"]
    assert overview["runs"][0]["metrics"]["total_energy"]["method"] == "counter"
    root = EXAMPLES / "valid" / "gpu-h100-gpt2"
    on_disk = [path for path in root.rglob("*") if path.is_file() and path.name != "manifest.json"]
    assert overview["files"] == len(document["files"]) == len(on_disk) > 0
