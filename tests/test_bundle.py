"""Writing bundles, reading them back, and finalizing what a killed producer left."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trainmark.spec import models
from trainmark.spec.bundle import BundleWriter, bundle_id, finalize, read_manifest
from trainmark.spec.errors import BundleInvalid, TrainmarkError
from trainmark.spec.jsontext import canonical_json
from trainmark.spec.validate import validate_bundle

from tests.bundles import REPO, VALID_BUNDLES, manifest_blocks

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _run(run_id: str, started: datetime, ended: datetime, steps: int) -> dict:
    return {
        "run_id": run_id,
        "seed": 1,
        "started_at": _iso(started),
        "ended_at": _iso(ended),
        "status": "completed",
        "metrics": [
            {
                "name": "steps_completed",
                "scope": "global",
                "value": float(steps),
                "unit": "{step}",
                "method": "derived",
                "source": "count of step records",
                "tool": "test 1",
            }
        ],
    }


def test_create_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(TrainmarkError, match="not an empty directory"):
        BundleWriter.create(tmp_path)
    assert (tmp_path / "x").read_text() == "keep me"


def test_writer_produces_a_valid_bundle_whose_id_is_its_canonical_manifest(tmp_path):
    writer = BundleWriter.create(tmp_path / "b")
    with writer.open_trace("run-1", "step") as trace:
        for step in range(5):
            trace.append(
                models.StepRecord(
                    step=step,
                    rank=0,
                    start_unix_ns=1_796_000_000_000_000_000 + step * 10**8,
                    duration_s=0.1,
                    loss=2.0 - step / 10,
                )
            )
    writer.write_document("README.md", "# what was run\n")
    manifest, identity = writer.finish({**manifest_blocks(), "runs": [_run("run-1", T0, T0 + timedelta(seconds=1), 5)]})
    assert [entry.path for entry in manifest.files] == ["README.md", "runs/run-1/steps.jsonl"]
    assert manifest.files[1].record_count == 5 and manifest.files[0].record_count is None
    report = validate_bundle(tmp_path / "b")
    assert report.valid, report.findings
    document = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert identity == report.bundle_id == bundle_id(document)
    assert identity == hashlib.sha256(canonical_json(document)).hexdigest()


def test_bundle_id_ignores_formatting_but_not_content():
    document = json.loads((VALID_BUNDLES[0] / "manifest.json").read_text())
    compact = json.loads(json.dumps(document, separators=(",", ":"), sort_keys=True))
    assert bundle_id(document) == bundle_id(compact)
    document["description"] += "."
    assert bundle_id(document) != bundle_id(compact)


def test_finish_writes_nothing_when_the_manifest_would_be_invalid(tmp_path):
    writer = BundleWriter.create(tmp_path / "b")
    run = _run("run-1", T0, T0 - timedelta(seconds=1), 0)  # ends before it starts
    with pytest.raises(BundleInvalid, match="ends"):
        writer.finish({**manifest_blocks(), "runs": [run]})
    assert not (tmp_path / "b" / "manifest.json").exists()


def test_finish_refuses_files_outside_the_layout(tmp_path):
    writer = BundleWriter.create(tmp_path / "b")
    (tmp_path / "b" / "notes.txt").write_text("x")
    with pytest.raises(BundleInvalid, match="no place for this file") as error:
        writer.finish({**manifest_blocks(), "runs": [_run("run-1", T0, T0, 0)]})
    assert error.value.file == "notes.txt"


def test_trace_writer_takes_only_its_record_type(tmp_path):
    writer = BundleWriter.create(tmp_path / "b")
    with writer.open_trace("run-1", "step") as trace:
        with pytest.raises(TypeError, match="takes StepRecord, not PowerSample"):
            trace.append(models.PowerSample(time_unix_ns=1_796_000_000_000_000_000, channel="c", power_w=1.0))


step_records = st.builds(
    models.StepRecord,
    step=st.integers(0, 10**6),
    rank=st.just(0),
    epoch=st.none() | st.integers(0, 100),
    start_unix_ns=st.integers(1_700_000_000_000_000_000, 1_900_000_000_000_000_000),
    duration_s=st.floats(0, 1e4),
    forward_s=st.none() | st.floats(0, 100),
    loss=st.none() | st.floats(-1e6, 1e6),
    learning_rate=st.none() | st.floats(0, 1),
    warmup=st.none() | st.booleans(),
    tokens=st.none() | st.integers(0, 2**40),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(step_records, min_size=0, max_size=30))
def test_records_round_trip_through_disk(tmp_path_factory, records):
    root = tmp_path_factory.mktemp("round") / "b"
    writer = BundleWriter.create(root)
    with writer.open_trace("run-1", "step") as trace:
        for record in records:
            trace.append(record)
    writer.finish({**manifest_blocks(), "runs": [_run("run-1", T0, T0, len(records))]})
    assert validate_bundle(root).valid
    path = root / "runs" / "run-1" / "steps.jsonl"
    read_back = [models.StepRecord.model_validate_json(line) for line in path.read_bytes().splitlines()]
    assert read_back == records
    _, manifest = read_manifest(root)
    assert manifest.files[0].record_count == len(records)


# ---------------------------------------------------------------- finalize

PRODUCER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from trainmark.spec import models
    from trainmark.spec.bundle import BundleWriter

    root, draft_path = Path(sys.argv[1]), Path(sys.argv[2])
    writer = BundleWriter.create(root)
    draft = json.loads(draft_path.read_text())
    writer.write_draft(draft)
    steps = writer.open_trace("run-2", "step")
    memory = writer.open_trace("run-2", "memory_sample")
    step = 0
    while True:
        now = time.time_ns()
        steps.append(models.StepRecord(step=step, rank=0, start_unix_ns=now, duration_s=0.004,
                                       loss=4.0 - step / 1000, warmup=True if step < 3 else None))
        memory.append(models.MemorySample(time_unix_ns=now, channel="process_rss", device=0, rank=0,
                                          resident_bytes=400_000_000 + step))
        print(step, flush=True)
        step += 1
        time.sleep(0.004)
""")


def test_killed_producer_leaves_a_bundle_finalize_makes_valid(tmp_path):
    started = datetime.now(UTC)
    draft = {
        **manifest_blocks(),
        "created_at": _iso(started),
        "runs": [
            _run("run-1", started - timedelta(minutes=5), started - timedelta(minutes=4), 0),
            {"run_id": "run-2", "seed": 2, "started_at": _iso(started)},
        ],
    }
    (tmp_path / "draft.json").write_text(json.dumps(draft))
    root = tmp_path / "bundle"
    process = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, str(root), str(tmp_path / "draft.json")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    for line in process.stdout:
        if int(line) >= 40:
            break
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not validate_bundle(root).valid  # no manifest yet: the draft says what to do
    logged = len((root / "runs/run-2/steps.jsonl").read_bytes().splitlines())
    assert logged >= 41

    report = finalize(root)
    assert report.closed_runs == ["run-2"]
    validation = validate_bundle(root)
    assert validation.valid, validation.findings
    assert validation.bundle_id == report.bundle_id
    _, manifest = read_manifest(root)
    run_1, run_2 = manifest.runs
    assert run_1.status == "completed"
    assert run_2.status == "interrupted" and "finalize" in run_2.status_reason
    metrics = {metric.name: metric for metric in run_2.metrics}
    assert metrics["steps_completed"].value == logged - (1 if report.dropped_partial_lines else 0)
    assert metrics["steps_completed"].method == "derived"
    assert metrics["steps_per_second"].value is not None
    assert run_2.ended_at > run_2.started_at
    assert not (root / "manifest.draft.json").exists()


def test_finalize_drops_a_line_cut_off_mid_write(tmp_path):
    root = tmp_path / "bundle"
    writer = BundleWriter.create(root)
    writer.write_draft({**manifest_blocks(), "runs": [{"run_id": "run-1", "started_at": _iso(T0)}]})
    with writer.open_trace("run-1", "step") as trace:
        for step in range(3):
            trace.append(
                models.StepRecord(
                    step=step, rank=0, start_unix_ns=int(T0.timestamp() * 1e9) + step * 10**8, duration_s=0.1
                )
            )
    with (root / "runs/run-1/steps.jsonl").open("ab") as handle:
        handle.write(b'{"step":3,"rank":0,"start_unix_ns":17')
    writer.release()  # the producer is gone
    report = finalize(root)
    assert report.dropped_partial_lines == ["runs/run-1/steps.jsonl"]
    _, manifest = read_manifest(root)
    assert manifest.files[0].record_count == 3
    assert "dropped an incomplete last line" in manifest.runs[0].status_reason
    steps = {metric.name: metric for metric in manifest.runs[0].metrics}
    assert steps["steps_completed"].value == 3
    assert steps["time_per_step"].value == pytest.approx(0.1)
    assert manifest.runs[0].ended_at == T0 + timedelta(seconds=0.3)


def test_finalize_keeps_a_complete_record_that_only_lacks_its_newline(tmp_path):
    root = tmp_path / "bundle"
    writer = BundleWriter.create(root)
    writer.write_draft({**manifest_blocks(), "runs": [{"run_id": "run-1", "started_at": _iso(T0)}]})
    line = models.StepRecord(step=0, rank=0, start_unix_ns=int(T0.timestamp() * 1e9), duration_s=0.1)
    (root / "runs/run-1").mkdir(parents=True)
    (root / "runs/run-1/steps.jsonl").write_bytes(line.model_dump_json(exclude_none=True).encode())
    writer.release()  # the producer is gone
    report = finalize(root)
    assert report.dropped_partial_lines == []
    assert validate_bundle(root).valid


def test_finalize_with_no_steps_reports_nulls_with_reasons(tmp_path):
    root = tmp_path / "bundle"
    BundleWriter.create(root).write_draft({**manifest_blocks(), "runs": [{"run_id": "run-1", "started_at": _iso(T0)}]})
    finalize(root)
    _, manifest = read_manifest(root)
    metrics = {metric.name: metric for metric in manifest.runs[0].metrics}
    assert metrics["time_per_step"].value is None
    assert "no measured" in metrics["time_per_step"].unavailable_reason
    assert manifest.runs[0].ended_at == manifest.runs[0].started_at


def test_finalize_refuses_a_final_bundle_and_a_directory_without_draft(tmp_path):
    with pytest.raises(TrainmarkError, match="already has a manifest.json"):
        finalize(VALID_BUNDLES[0])
    with pytest.raises(TrainmarkError, match="no manifest.draft.json"):
        finalize(tmp_path)


def test_finalize_refuses_traces_of_a_run_the_draft_does_not_know(tmp_path):
    root = tmp_path / "bundle"
    writer = BundleWriter.create(root)
    writer.write_draft({**manifest_blocks(), "runs": [{"run_id": "run-1", "started_at": _iso(T0)}]})
    with writer.open_trace("run-7", "step") as trace:
        trace.append(models.StepRecord(step=0, rank=0, start_unix_ns=int(T0.timestamp() * 1e9), duration_s=0.1))
    writer.release()  # the producer is gone
    with pytest.raises(BundleInvalid, match="run 'run-7'"):
        finalize(root)
    assert not (root / "manifest.json").exists()
