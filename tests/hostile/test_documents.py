"""JSON that the parser takes but a reader must not: documents too big to read whole, text
that cannot be stored (U+0000, lone surrogates), a member named twice in a trace record,
numbers too long to print."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from trainmark.spec.validate import validate_bundle

from tests.bundles import copy_bundle, edit_manifest, reseal
from tests.registry_bundles import CPU, archive

REPO = Path(__file__).resolve().parents[2]
PEAK_RSS = r"""
import re, sys
from pathlib import Path
from trainmark.spec.validate import validate_bundle
report = validate_bundle(Path(sys.argv[1]))
print([finding.code for finding in report.findings][:3])
# VmHWM is this process's own peak; getrusage's ru_maxrss keeps the parent's peak across exec,
# so a child of a large pytest process would report the parent's size
print(int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024)
"""


def peak_rss_of_validating(bundle: Path) -> tuple[list[str], int]:
    """(first finding codes, peak resident bytes) of `trainmark validate` in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(bundle)], capture_output=True, text=True, cwd=REPO, timeout=300, check=True
    )
    codes, peak = done.stdout.splitlines()[-2:]
    return eval(codes), int(peak)  # noqa: S307 (our own child's repr of a list of str)


def test_a_1_gb_manifest_is_refused_without_being_read(tmp_path):
    bundle = copy_bundle(CPU, tmp_path / "big")
    with (bundle / "manifest.json").open("r+b") as handle:  # 1 GB, sparse: costs no disk, reads as zeros
        handle.truncate(1024**3)
    codes, peak = peak_rss_of_validating(bundle)
    assert codes[0] == "json-limit"
    assert peak < 150 * 1024 * 1024, f"peak RSS {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize(
    "escape, what",
    [("\\ud800", "lone UTF-16 surrogate"), ("\\udfff", "lone UTF-16 surrogate"), ("\\u0000", "U+0000")],
    ids=["high", "low", "nul"],
)
def test_text_that_cannot_be_stored_is_refused_with_a_pointer(tmp_path, escape, what):
    bundle = copy_bundle(CPU, tmp_path / "text")
    edit_manifest(bundle, lambda manifest: manifest.update(submitter={"name": "LAB"}))
    path = bundle / "manifest.json"
    path.write_text(path.read_text().replace('"LAB"', f'"Lab {escape} One"'))
    report = validate_bundle(bundle)
    assert not report.valid
    [finding] = [finding for finding in report.findings if finding.code == "text-invalid"]
    assert finding.pointer == "/submitter/name" and what in finding.message
    report = validate_bundle(archive(bundle, tmp_path / "text.tar.gz"))  # an archive, and the id: no traceback
    assert [finding.code for finding in report.findings] == ["text-invalid"]


def test_a_surrogate_pair_is_text_and_passes(tmp_path):
    bundle = copy_bundle(CPU, tmp_path / "pair")
    edit_manifest(bundle, lambda manifest: manifest.update(submitter={"name": "LAB"}))
    path = bundle / "manifest.json"
    path.write_text(path.read_text().replace('"LAB"', '"Lab \\ud83d\\ude00"'))
    report = validate_bundle(bundle)
    assert report.valid, report.findings[:3]


def test_a_trace_record_naming_a_member_twice_is_refused(tmp_path):
    bundle = copy_bundle(CPU, tmp_path / "twice")
    steps = bundle / "runs/run-1/steps.jsonl"
    lines = steps.read_text().splitlines()
    record = json.loads(lines[4])
    # the models would keep the last loss; the standard says a member appears once
    lines[4] = json.dumps(record, separators=(",", ":"))[:-1] + ',"loss":0.001}'
    steps.write_text("\n".join(lines) + "\n")
    reseal(bundle)
    report = validate_bundle(bundle, full_jsonschema=True)
    assert not report.valid
    [finding] = [finding for finding in report.findings if finding.line == 5]
    assert finding.file == "runs/run-1/steps.jsonl" and "duplicate key 'loss'" in finding.message


def test_records_written_with_spaces_and_escapes_are_not_taken_for_duplicates(tmp_path):
    bundle = copy_bundle(CPU, tmp_path / "spaced")
    steps = bundle / "runs/run-1/steps.jsonl"
    records = [json.loads(line) for line in steps.read_text().splitlines()]
    # ", " between members, and every name written with an escape: the precise parse runs, and passes
    steps.write_text(
        "".join(
            json.dumps(record, separators=(", ", ": ")).replace('"step"', '"\\u0073tep"') + "\n" for record in records
        )
    )
    reseal(bundle)
    report = validate_bundle(bundle, full_jsonschema=True)
    assert report.valid, report.findings[:3]


def test_a_huge_integer_gets_a_message_for_a_person(tmp_path):
    bundle = copy_bundle(CPU, tmp_path / "digits")
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["runs"][0]["seed"] = 12345
    path.write_text(json.dumps(manifest).replace('"seed": 12345', '"seed": ' + "9" * 5000))
    report = validate_bundle(bundle)
    [finding] = report.findings
    assert finding.code == "json-invalid"
    assert "set_int_max_str_digits" not in finding.message and "4300 digits" in finding.message
