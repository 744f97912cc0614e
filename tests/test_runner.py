"""The reference runner for real: tiny trainings on this machine's CPUs, written as bundles that
validate and score. Includes two real torchrun processes, a SIGKILL mid-run and finalize, a
replayed GPU recording, and the same loss sequence under the same seed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from trainmark.reference_runner.config import build_config
from trainmark.reference_runner.launch import Topology, run_bundle
from trainmark.scorer.score import score_bundle
from trainmark.spec.bundle import finalize, read_manifest
from trainmark.spec.validate import validate_bundle

from tests.bundles import REPO
from tests.gpu_recording import write_recording

pytestmark = pytest.mark.training  # trains for real: left out of make test-fast

SHORT = {"max_steps": 24, "idle_seconds": 1.0}

# Every metric DESIGN section 1 names; each must be reported, measured or null with a reason.
REQUIRED_METRICS = {
    "steps_per_second",
    "time_per_step",
    "samples_per_second",
    "tokens_per_second",
    "time_per_epoch",
    "time_per_step_data_loading",
    "time_per_step_forward",
    "time_per_step_backward",
    "time_per_step_optimizer",
    "flops_per_step_analytical",
    "flops_per_step_counted",
    "flops_per_second",
    "compute_utilization",
    *(
        f"kernel_time_share_{c}"
        for c in (
            "matmul",
            "attention",
            "normalization",
            "elementwise",
            "optimizer",
            "data_movement",
            "communication",
            "other",
        )
    ),
    "peak_memory",
    "peak_memory_forward",
    "peak_memory_backward",
    "peak_memory_optimizer",
    "memory_bandwidth",
    "memory_bandwidth_forward",
    "memory_bandwidth_backward",
    "memory_bandwidth_optimizer",
    "allocations_per_step",
    "memory_fragmentation",
    "checkpoint_size",
    "checkpoint_interval",
    "checkpoint_time",
    "total_energy",
    "net_energy",
    "idle_power",
    "energy_per_step",
    "energy_per_update",
    "power_mean",
    "power_median",
    "power_peak",
    "power_data_loading",
    "power_forward",
    "power_backward",
    "power_optimizer",
    "flops_per_joule",
    "steps_per_kilojoule",
    "final_loss",
    "final_accuracy",
    "run_duration",
    "steps_completed",
}


def _metrics(manifest, run_index=0, scope="global"):
    return {m.name: m for m in manifest.runs[run_index].metrics if m.scope == scope}


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    """Three short tiny runs, one checkpoint each, as `trainmark run` writes them."""
    out = tmp_path_factory.mktemp("tiny") / "bundle"
    config = build_config("tiny", overrides={**SHORT, "checkpoint_every": 20})
    outcome = run_bundle(config, 3, out)
    assert outcome.statuses == {"run-1": "completed", "run-2": "completed", "run-3": "completed"}
    return out, outcome


def test_tiny_bundle_is_valid_and_scores(tiny_bundle):
    out, outcome = tiny_bundle
    report = validate_bundle(out, full_jsonschema=True)
    assert report.valid, report.findings[:5]
    assert report.bundle_id == outcome.bundle_id
    score = score_bundle(out)
    assert score.ranked, [gate for gate in score.gates if not gate.passed]
    steps = score.statistics["steps_per_second"]
    assert steps.n == 3 and steps.headline_method == "median" and 0.0 <= score.confidence <= 1.0
    # short runs on 2 shared cores vary by several percent; the scorer must say so when they do
    assert (steps.cv > 0.05) == any(
        f.code == "high-variance" and f.message.startswith("steps_per_second") for f in score.findings
    )
    assert "missing-sensor" in {finding.code for finding in score.findings}  # this machine has none


def test_every_metric_is_measured_or_null_with_a_reason(tiny_bundle):
    _, manifest = read_manifest(tiny_bundle[0])
    for run in manifest.runs:
        names = {metric.name for metric in run.metrics}
        assert REQUIRED_METRICS <= names, REQUIRED_METRICS - names
        for metric in run.metrics:
            assert metric.value is not None or metric.unavailable_reason
            assert metric.value != 0 or metric.name.startswith("kernel_time_share"), metric  # no zero for "missing"


def test_what_the_cpu_run_measures_and_what_it_cannot(tiny_bundle):
    _, manifest = read_manifest(tiny_bundle[0])
    metrics = _metrics(manifest)
    device = _metrics(manifest, scope="device")
    assert metrics["steps_completed"].value == 24 and metrics["steps_per_second"].value > 0
    assert device["peak_memory"].method == "counter" and "VmHWM" in device["peak_memory"].source
    assert device["peak_memory_forward"].value > 0
    assert metrics["total_energy"].value is None and "RAPL" in metrics["total_energy"].unavailable_reason
    assert metrics["compute_utilization"].value is None and "peak" in metrics["compute_utilization"].unavailable_reason
    assert metrics["checkpoint_size"].value > 1_000_000 and metrics["checkpoint_interval"].value == 20
    assert metrics["memory_bandwidth"].value is None
    assert 0 < metrics["final_accuracy"].value < 1
    shares = sum(
        metrics[f"kernel_time_share_{c}"].value
        for c in (
            "matmul",
            "attention",
            "normalization",
            "elementwise",
            "optimizer",
            "data_movement",
            "communication",
            "other",
        )
    )
    assert shares == pytest.approx(100.0)
    assert manifest.dataset.snapshot_id and manifest.code.commit or manifest.code.unavailable_reason
    assert [run.seed for run in manifest.runs] == [1234, 1235, 1236]
    assert manifest.methodology.channels[0].name == "process_rss"


def test_traces_and_flags(tiny_bundle):
    out, _ = tiny_bundle
    steps = [json.loads(line) for line in (out / "runs/run-2/steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(24))
    assert [s["step"] for s in steps if s.get("warmup")] == [0, 1, 2, 3, 4]
    assert [s["step"] for s in steps if s.get("profiled")] == [10, 11, 12, 13, 14]
    assert all(
        s["forward_s"] + s["backward_s"] + s["optimizer_s"] + s["data_loading_s"] <= s["duration_s"] for s in steps
    )
    assert steps[-1]["loss"] < steps[0]["loss"]  # it learns
    allocations = [json.loads(line) for line in (out / "runs/run-2/allocator.jsonl").read_text().splitlines()]
    steps_of_events = [event.get("step") for event in allocations]  # None: between two steps' clocks
    assert set(steps_of_events) <= {13, 14, None}
    assert steps_of_events.count(13) > len(allocations) / 3 and steps_of_events.count(14) > len(allocations) / 3
    kernels = json.loads((out / "runs/run-2/kernels.json").read_text())
    assert kernels["first_step"] == 10 and kernels["steps"] == 3 and kernels["time_basis"] == "cpu_self_time"
    memory = [json.loads(line) for line in (out / "runs/run-2/memory.jsonl").read_text().splitlines()]
    assert len(memory) > 10 and {m["phase"] for m in memory} & {"forward", "backward"}


def test_same_seed_same_losses_in_deterministic_mode(tmp_path):
    config = build_config(
        "tiny",
        overrides={
            "max_steps": 8,
            "idle_seconds": 0,
            "deterministic": True,
            "profile_steps": 0,
            "allocation_steps": 0,
            "warmup_steps": 2,
        },
    )
    losses = []
    for name in ("a", "b"):
        run_bundle(config, 1, tmp_path / name)
        steps = (tmp_path / name / "runs/run-1/steps.jsonl").read_text().splitlines()
        losses.append([json.loads(line)["loss"] for line in steps])
    assert losses[0] == losses[1]
    other = build_config("tiny", overrides={**config.as_dict(), "seed": 99})
    run_bundle(other, 1, tmp_path / "c")
    different = [json.loads(line)["loss"] for line in (tmp_path / "c/runs/run-1/steps.jsonl").read_text().splitlines()]
    assert different != losses[0]


def test_two_real_processes_with_torchrun(tmp_path):
    config = build_config(
        "tiny",
        overrides={
            "max_steps": 14,
            "idle_seconds": 0,
            "profile_first_step": 6,
            "profile_steps": 2,
            "allocation_steps": 1,
            "micro_batch_size": 8,
        },
    )
    outcome = run_bundle(config, 1, tmp_path / "ddp", Topology(processes_per_node=2))
    assert outcome.statuses == {"run-1": "completed"}
    report = validate_bundle(tmp_path / "ddp")
    assert report.valid, report.findings[:5]
    _, manifest = read_manifest(tmp_path / "ddp")
    training = manifest.training
    assert (training.world_size, training.global_batch_size, training.gradient_accumulation_steps) == (2, 16, 1)
    assert [(r.rank, r.device) for r in manifest.runs[0].ranks] == [(0, 0), (1, 0)]
    files = {entry.path for entry in manifest.files}
    assert {"runs/run-1/steps.rank0.jsonl", "runs/run-1/steps.rank1.jsonl", "runs/run-1/memory.rank1.jsonl"} <= files
    per_process = [m for m in manifest.runs[0].metrics if m.name == "peak_memory" and m.scope == "process"]
    assert sorted(m.rank for m in per_process) == [0, 1]  # two processes share the CPU device
    assert score_bundle(tmp_path / "ddp").ranked


def test_sigkill_mid_run_then_finalize(tmp_path):
    out = tmp_path / "killed"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from trainmark.cli import main; main()",
            "run",
            "--preset",
            "tiny",
            "--repeats",
            "2",
            "--set",
            "max_steps=400",
            "--set",
            "idle_seconds=0",
            "--out",
            str(out),
        ],
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    steps = out / "runs/run-1/steps.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if steps.exists() and len(steps.read_bytes().splitlines()) >= 12:
            break
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "manifest.json").exists()
    report = finalize(out)
    assert report.closed_runs == ["run-1"]
    validation = validate_bundle(out)
    assert validation.valid, validation.findings[:5]
    _, manifest = read_manifest(out)
    [run] = manifest.runs
    assert run.status == "interrupted"
    logged = len((out / "runs/run-1/steps.jsonl").read_bytes().splitlines())
    assert logged >= 12
    assert _metrics(manifest)["steps_completed"].value == logged
    assert score_bundle(out).ranked


def test_replayed_gpu_recording_end_to_end(tmp_path):
    recording = write_recording(tmp_path / "h100-synthetic.json")
    config = build_config("tiny", overrides={**SHORT, "max_steps": 16})
    outcome = run_bundle(config, 1, tmp_path / "replay", replay=recording)
    assert outcome.statuses == {"run-1": "completed"}
    report = validate_bundle(tmp_path / "replay", full_jsonschema=True)
    assert report.valid, report.findings[:5]
    _, manifest = read_manifest(tmp_path / "replay")
    assert "replayed from h100-synthetic.json" in manifest.description
    assert manifest.system.devices[0].model == "NVIDIA H100 80GB HBM3"
    assert manifest.software.cuda_version == "12.8"
    assert {c.name for c in manifest.methodology.channels} == {"nvml_power", "nvml_energy", "cuda_memory"}
    assert all("replay" in c.tool for c in manifest.methodology.channels)
    metrics, device = _metrics(manifest), _metrics(manifest, scope="device")
    assert metrics["total_energy"].method == "counter" and metrics["total_energy"].value > 0
    assert device["idle_power"].value == pytest.approx(70.0, abs=3.0) and device["idle_power"].method == "counter"
    assert metrics["net_energy"].value < metrics["total_energy"].value
    assert 450 < device["power_mean"].value < 700  # training power after the idle second
    assert device["peak_memory"].value == 16_000_000_000 and device["peak_memory"].method == "counter"
    assert metrics["energy_per_step"].value == pytest.approx(metrics["total_energy"].value / 16)
    assert device["compute_utilization"].value is not None  # the recording carries the device's fp32 peak
    score = score_bundle(tmp_path / "replay")
    assert score.ranked and score.components["fidelity"]["tier"] == 1.0
    assert not {"missing-sensor", "summary-mismatch"} & {finding.code for finding in score.findings}


def test_bad_knob_is_refused_before_anything_runs(tmp_path):
    process = subprocess.run(
        [
            sys.executable,
            "-c",
            "from trainmark.cli import main; main()",
            "run",
            "--preset",
            "tiny",
            "--set",
            "n_head=5",
            "--out",
            str(tmp_path / "x"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert process.returncode == 1
    assert process.stderr.startswith("error: n_embd (128) must be divisible by n_head (5)")
    assert not (tmp_path / "x").exists()


def test_calibrate_then_compare(tmp_path):
    from trainmark.reference_runner.launch import calibrate

    config = build_config(
        "tiny",
        overrides={"max_steps": 10, "idle_seconds": 0, "profile_steps": 0, "allocation_steps": 0, "warmup_steps": 2},
    )
    record = calibrate(config, 3, tmp_path / "calibration.json", tmp_path / "calibration.bundle")
    assert record["metrics"]["steps_per_second"]["n"] == 3
    assert json.loads((tmp_path / "calibration.json").read_text()) == record
    outcome = run_bundle(config, 2, tmp_path / "checked", calibration=tmp_path / "calibration.json")
    assert outcome.bundle_id
    _, manifest = read_manifest(tmp_path / "checked")
    deviations = {d.name: d for d in manifest.calibration.deviations}
    assert {"steps_per_second", "time_per_step", "peak_memory"} <= set(deviations)
    steps = deviations["steps_per_second"]
    assert steps.within_margin == (abs(steps.deviation_percent) <= steps.margin_percent)
    assert steps.margin_percent > 0
    score = score_bundle(tmp_path / "checked", "r1")  # r1 trusts the bundle's own comparison
    assert ("Calibrated" in score.badges) == all(d.within_margin for d in manifest.calibration.deviations)
    current = score_bundle(tmp_path / "checked")  # r2: only a calibration the registry holds counts
    assert "Calibrated" not in current.badges and "calibration-unverified" in {f.code for f in current.findings}

    other = build_config("tiny", overrides={**config.as_dict(), "learning_rate": 1e-3})
    with pytest.raises(Exception, match="configuration differs"):
        run_bundle(other, 2, tmp_path / "other", calibration=tmp_path / "calibration.json")
    assert not (tmp_path / "other").exists()
