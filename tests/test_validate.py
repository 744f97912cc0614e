"""The validator on damaged bundles: integrity, limits, versions, caps, and arbitrary input."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trainmark.spec.bundle import read_manifest
from trainmark.spec.findings import Severity
from trainmark.spec.validate import MAX_LINE_BYTES, validate_bundle

from tests.bundles import VALID_BUNDLES, copy_bundle, reseal

CPU_BUNDLE = next(path for path in VALID_BUNDLES if path.name == "cpu-tiny")
TRACE_FILES = [(bundle, entry.path) for bundle in VALID_BUNDLES for entry in read_manifest(bundle)[1].files]


def _steps_file(root) -> str:
    return next(entry.path for entry in read_manifest(root)[1].files if entry.record_type == "step")


def _codes(report) -> list[tuple[str, str | None]]:
    return [(finding.code, finding.file) for finding in report.findings if finding.severity is Severity.ERROR]


def test_every_file_of_every_example_is_covered():
    on_disk = {
        (bundle, path.relative_to(bundle).as_posix())
        for bundle in VALID_BUNDLES
        for path in bundle.rglob("*")
        if path.is_file() and path.name != "manifest.json"
    }
    assert {bundle for bundle, _ in on_disk} == set(VALID_BUNDLES)
    assert set(TRACE_FILES) == on_disk and len(TRACE_FILES) == len(on_disk)


@pytest.mark.parametrize("bundle, relative", TRACE_FILES, ids=lambda item: getattr(item, "name", item))
def test_one_byte_changed_in_any_file_is_a_digest_mismatch_for_that_file(tmp_path, bundle, relative):
    root = copy_bundle(bundle, tmp_path / "b")
    path = root / relative
    data = bytearray(path.read_bytes())
    position = len(data) // 2
    data[position] = ord("7") if data[position] != ord("7") else ord("8")  # stays valid JSON most of the time
    path.write_bytes(bytes(data))
    report = validate_bundle(root)
    assert ("digest-mismatch", relative) in _codes(report)
    assert {file for _, file in _codes(report)} == {relative}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.floats(0, 1, exclude_max=True), value=st.integers(0, 255))
def test_any_byte_anywhere_in_a_trace_is_caught(tmp_path_factory, position, value):
    root = copy_bundle(VALID_BUNDLES[0], tmp_path_factory.mktemp("flip") / "b")
    relative = _steps_file(root)
    path = root / relative
    data = bytearray(path.read_bytes())
    index = int(position * len(data))
    if data[index] == value:
        value = (value + 1) % 256
    data[index] = value
    path.write_bytes(bytes(data))
    assert ("digest-mismatch", relative) in _codes(validate_bundle(root))


def test_grown_file_is_a_size_and_digest_mismatch(tmp_path):
    root = copy_bundle(CPU_BUNDLE, tmp_path / "b")
    with (root / "runs/run-1/kernels.json").open("a") as handle:
        handle.write("   ")
    codes = _codes(validate_bundle(root))
    assert ("size-mismatch", "runs/run-1/kernels.json") in codes
    assert ("digest-mismatch", "runs/run-1/kernels.json") in codes


def test_missing_and_unlisted_files(tmp_path):
    root = copy_bundle(VALID_BUNDLES[0], tmp_path / "b")
    victim = read_manifest(root)[1].files[2].path
    (root / victim).unlink()
    (root / "runs" / "run-1" / "notes.md").write_text("x")
    report = validate_bundle(root)
    assert ("file-missing", victim) in _codes(report)
    assert ("file-unlisted", "runs/run-1/notes.md") in _codes(report)


def test_record_count_mismatch(tmp_path):
    root = copy_bundle(VALID_BUNDLES[0], tmp_path / "b")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"][0]["record_count"] += 1
    (root / "manifest.json").write_text(json.dumps(manifest))
    report = validate_bundle(root)
    assert _codes(report) == [("record-count-mismatch", manifest["files"][0]["path"])]


def test_blank_and_overlong_lines(tmp_path):
    root = copy_bundle(VALID_BUNDLES[0], tmp_path / "b")
    relative = _steps_file(root)
    path = root / relative
    lines = path.read_bytes().splitlines()
    lines.insert(1, b"")
    lines.insert(3, b'{"step": 1, "pad": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}')
    lines.insert(4, b'{"unknown": 1}')  # read after the skipped rest of the long line: still counted right
    path.write_bytes(b"\n".join(lines) + b"\n")
    reseal(root)
    report = validate_bundle(root)
    located = {(finding.code, finding.line) for finding in report.findings}
    assert ("json-invalid", 2) in located
    assert ("json-limit", 4) in located
    assert ("field-unknown", 5) in located
    assert not any(line and line > 5 for _, line in located)
    assert ("record-count-mismatch", None) not in located  # the manifest was resealed with both lines counted


def test_findings_are_capped_but_counted(tmp_path):
    root = copy_bundle(VALID_BUNDLES[0], tmp_path / "b")
    relative = _steps_file(root)
    path = root / relative
    path.write_bytes(b"\n".join(b'{"bad": %d}' % index for index in range(500)) + b"\n")
    reseal(root)
    report = validate_bundle(root, max_findings=50)
    assert len(report.findings) == 50
    assert report.findings_total > 500  # each line lacks several required fields
    assert report.as_dict()["findings_cap"] == 50


@pytest.mark.parametrize(
    "version, message",
    [
        ("2.0.0", "reads 1.x"),
        ("1.9.0", "newer than this trainmark"),
        ("0.9.0", "reads 1.x"),
    ],
)
def test_schema_versions_this_trainmark_cannot_read(tmp_path, version, message):
    root = copy_bundle(VALID_BUNDLES[0], tmp_path / "b")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["schema_version"] = version
    (root / "manifest.json").write_text(json.dumps(manifest))
    report = validate_bundle(root)
    [finding] = report.findings
    assert finding.code == "schema-version-unsupported" and message in finding.message
    assert report.schema_version == version


def test_a_bundle_of_an_older_minor_version_is_read(tmp_path):
    root = copy_bundle(CPU_BUNDLE, tmp_path / "b")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["schema_version"] = "1.0.0"
    (root / "manifest.json").write_text(json.dumps(manifest))
    report = validate_bundle(root)
    assert report.valid and report.schema_version == "1.0.0"


def test_links_are_reported_and_never_followed(tmp_path):
    root = copy_bundle(VALID_BUNDLES[0], tmp_path / "b")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "steps.jsonl").write_text("secret\n")
    os.symlink(secret, root / "runs" / "linked")
    report = validate_bundle(root)
    assert ("file-unsafe", "runs/linked") in _codes(report)
    assert not any(finding.file and finding.file.startswith("runs/linked/") for finding in report.findings)


def test_missing_manifest_points_to_finalize_when_a_draft_exists(tmp_path):
    root = copy_bundle(VALID_BUNDLES[0], tmp_path / "b")
    shutil.move(root / "manifest.json", root / "manifest.draft.json")
    report = validate_bundle(root)
    assert report.findings[0].code == "file-missing"
    assert "trainmark bundle finalize" in report.findings[0].message


def test_manifest_that_is_not_json(tmp_path):
    root = copy_bundle(VALID_BUNDLES[0], tmp_path / "b")
    (root / "manifest.json").write_text("{ not json")
    report = validate_bundle(root)
    assert [(f.code, f.file) for f in report.findings] == [("json-invalid", "manifest.json")]
    assert report.bundle_id is None


def test_kernel_breakdown_with_nan_is_pointed_at(tmp_path):
    root = copy_bundle(VALID_BUNDLES[0], tmp_path / "b")
    relative = next(e.path for e in read_manifest(root)[1].files if e.record_type == "kernel_breakdown")
    document = json.loads((root / relative).read_text())
    text = json.dumps(document).replace(f'"total_time_s": {document["total_time_s"]}', '"total_time_s": NaN')
    (root / relative).write_text(text)
    reseal(root)
    report = validate_bundle(root)
    assert [(f.code, f.file, f.pointer) for f in report.findings] == [("non-finite-number", relative, "/total_time_s")]


json_scalars = st.none() | st.booleans() | st.integers(-5, 2**64) | st.floats(allow_nan=False) | st.text(max_size=12)


@st.composite
def mutated_manifests(draw):
    manifest = json.loads((CPU_BUNDLE / "manifest.json").read_text())
    for _ in range(draw(st.integers(1, 4))):
        node, key = manifest, None
        parent = None
        while isinstance(node, (dict, list)) and node and draw(st.booleans()):
            parent = node
            key = draw(st.sampled_from(sorted(node))) if isinstance(node, dict) else draw(st.integers(0, len(node) - 1))
            node = node[key]
        if parent is None:
            continue
        action = draw(st.sampled_from(["replace", "delete", "nest"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[key]
        elif action == "nest":
            parent[key] = [parent[key]]
        else:
            parent[key] = draw(json_scalars)
    return manifest


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(manifest=mutated_manifests())
def test_mutated_manifests_give_findings_never_exceptions(tmp_path_factory, manifest):
    root = copy_bundle(CPU_BUNDLE, tmp_path_factory.mktemp("mutated") / "b")
    (root / "manifest.json").write_text(json.dumps(manifest))
    report = validate_bundle(root)
    assert all(finding.code and finding.message for finding in report.findings)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_as_manifest_or_trace_give_findings(tmp_path_factory, data):
    root = copy_bundle(CPU_BUNDLE, tmp_path_factory.mktemp("bytes") / "b")
    (root / "runs/run-1/steps.jsonl").write_bytes(data)
    reseal(root)
    report = validate_bundle(root)
    assert all(finding.code and finding.message for finding in report.findings)
    (root / "manifest.json").write_bytes(data)
    report = validate_bundle(root)
    assert not report.valid


@pytest.mark.parametrize("record_type", [["epoch"], {"kind": "step"}, 3, None])
def test_a_file_entry_of_the_wrong_shape_is_a_finding(tmp_path, record_type):
    """Found by the mutation test above: a manifest the models refuse is read best effort, and a
    record_type that is not a string must not crash the walk over the files."""
    root = copy_bundle(CPU_BUNDLE, tmp_path / "b")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"][0]["record_type"] = record_type
    (root / "manifest.json").write_text(json.dumps(manifest))
    report = validate_bundle(root)
    assert not report.valid and any(finding.pointer.startswith("/files/0") for finding in report.findings)


@pytest.mark.parametrize("full_jsonschema", [False, True], ids=["plain", "full"])
def test_findings_follow_the_lines_across_batches(tmp_path, full_jsonschema):
    # 320 records: several batches; reference problems (found batch-wise) and model problems
    # (found record by record) must come out in line order, at their lines.
    root = copy_bundle(CPU_BUNDLE, tmp_path / "b")
    path = root / _steps_file(root)
    records = [json.loads(line) for line in path.read_text().splitlines()] * 4
    assert len(records) == 320
    for line in (2, 200):
        records[line - 1] = records[line - 1] | {"rank": 5}
    for line in (3, 300):
        records[line - 1] = records[line - 1] | {"unknown": 1}
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    reseal(root)
    report = validate_bundle(root, full_jsonschema=full_jsonschema)
    located = [(finding.line, finding.code) for finding in report.findings if finding.severity is Severity.ERROR]
    assert located == [
        (2, "reference-invalid"),
        (3, "field-unknown"),
        (200, "reference-invalid"),
        (300, "field-unknown"),
    ]
