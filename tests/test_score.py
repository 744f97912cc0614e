"""The scorer on the examples and on hand-damaged bundles: every finding code is triggered from
data, at its pointer, with its effect on the score."""

from __future__ import annotations

import json
import shutil

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from trainmark.scorer.completeness import REPORTING_FIELDS, completeness, field_present
from trainmark.scorer.score import score_bundle as _score_bundle
from trainmark.scorer.traces import TraceDigest
from trainmark.spec import models
from trainmark.spec.archive import pack
from trainmark.spec.validate import validate_bundle

from tests.bundles import EXAMPLES, copy_bundle, edit_manifest, edit_trace, find_metric, metric_pointer, reseal


def score_bundle(path, rubric_version="r1", **options):
    """These are rubric r1's tests: r1 must keep reproducing every r1 score (r2: tests/test_adversarial.py)."""
    return _score_bundle(path, rubric_version, **options)


GPU = EXAMPLES / "valid" / "gpu-h100-gpt2"
CPU = EXAMPLES / "valid" / "cpu-tiny"


@pytest.fixture(scope="module")
def gpu_score():
    return score_bundle(GPU)


@pytest.fixture(scope="module")
def cpu_score():
    return score_bundle(CPU)


def _codes(report) -> set[str]:
    return {finding.code for finding in report.findings}


def _find(report, code: str):
    found = [finding for finding in report.findings if finding.code == code]
    assert found, f"no {code} in {sorted(_codes(report))}"
    return found


def _gpu(tmp_path):
    return copy_bundle(GPU, tmp_path / "gpu")


# ---------------------------------------------------------------- the examples


def test_clean_gpu_bundle_is_ranked_complete_and_has_no_problems(gpu_score):
    assert gpu_score.ranked and all(gate.passed for gate in gpu_score.gates)
    assert [f.as_dict() for f in gpu_score.findings if f.severity.value in ("error", "warning")] == []
    assert gpu_score.fidelity == 1.0
    assert gpu_score.completeness > 0.99
    assert gpu_score.badges == ["Complete", "Reproduced"]
    assert 0.0 < gpu_score.confidence < 1.0  # three runs 2 % apart cannot pin steps/s to 10 %


def test_cpu_bundle_without_sensor_is_ranked_but_pays_for_it(cpu_score, gpu_score):
    assert cpu_score.ranked
    assert cpu_score.components["fidelity"]["tier"] == 0.0
    assert {"missing-sensor", "channel-absent"} <= _codes(cpu_score)
    assert [f.location() for f in _find(cpu_score, "missing-sensor")] == [
        metric_pointer(CPU, index, "total_energy") for index in range(3)
    ]
    assert "no energy sensor" in _find(cpu_score, "missing-sensor")[0].message
    assert cpu_score.score < gpu_score.score
    assert "energy_per_step" not in cpu_score.statistics  # C over the key metrics it has
    absent = {f.location() for f in _find(cpu_score, "reporting-field-absent")}
    assert absent == {
        "manifest.json#/system/devices/0/memory_bytes",
        "manifest.json#/system/devices/0/peak_flops",
        "manifest.json#/environment/ambient_temperature/value",
        "manifest.json#/environment/cooling_method",
        "manifest.json#/methodology/clock/synchronization",
    }
    assert cpu_score.components["completeness"]["fields"] == pytest.approx(31 / 36, abs=1e-6)


def test_score_json_has_exactly_the_documented_shape(gpu_score):
    document = gpu_score.as_dict()
    assert list(document) == [
        "bundle_id",
        "rubric_version",
        "ranked",
        "score",
        "fidelity",
        "completeness",
        "confidence",
        "badges",
        "gates",
        "statistics",
        "findings",
    ]
    assert set(document["statistics"]["steps_per_second"]) == {
        "unit",
        "n",
        "mean",
        "std",
        "cv",
        "ci95_low",
        "ci95_high",
        "headline",
        "headline_method",
    }
    assert [gate["code"] for gate in document["gates"]] == ["integrity", "validity", "finite", "summary"]
    json.dumps(document, allow_nan=False)


def test_score_formula(gpu_score):
    fidelity, completeness_value, confidence = gpu_score.fidelity, gpu_score.completeness, gpu_score.confidence
    assert gpu_score.score == pytest.approx(0.35 * fidelity + 0.30 * completeness_value + 0.35 * confidence, abs=2e-6)


def test_scoring_is_deterministic_and_archive_equals_directory(tmp_path, gpu_score):
    pack(GPU, tmp_path / "gpu.tar.gz")
    assert score_bundle(tmp_path / "gpu.tar.gz").as_dict() == gpu_score.as_dict() == score_bundle(GPU).as_dict()


def test_statistics_use_the_olympic_headline(gpu_score):
    steps = gpu_score.statistics["steps_per_second"]
    assert steps.n == 3 and steps.headline_method == "median"
    manifest = models.Manifest.model_validate_json((GPU / "manifest.json").read_bytes())
    values = sorted(
        next(m.value for m in run.metrics if m.name == "steps_per_second" and m.scope == "global")
        for run in manifest.runs
    )
    assert steps.headline == values[1]


def test_minimal_bundle_with_one_trace_per_run_scores(tmp_path):
    from trainmark.spec.bundle import BundleWriter

    from tests.bundles import manifest_blocks

    writer = BundleWriter.create(tmp_path / "b")
    runs = []
    for index in range(3):
        start_ns = 1_796_000_000_000_000_000 + index * 10**12
        with writer.open_trace(f"run-{index}", "step") as trace:
            for step in range(10):
                trace.append(
                    models.StepRecord(step=step, rank=0, start_unix_ns=start_ns + step * 10**8, duration_s=0.1)
                )
        started = f"2026-11-29T{12 + index}:00:00Z"
        runs.append(
            {
                "run_id": f"run-{index}",
                "seed": index,
                "started_at": started,
                "ended_at": f"2026-11-29T{12 + index}:00:01Z",
                "status": "completed",
                "metrics": [],
            }
        )
    writer.finish({**manifest_blocks(), "runs": runs})
    report = score_bundle(tmp_path / "b")
    assert report.ranked and report.confidence == 0.0  # no key metric reported
    assert "clock-skew" in _codes(report)  # the steps are not inside the runs' windows


# ---------------------------------------------------------------- gates


def test_changed_file_fails_integrity_but_is_still_scored(tmp_path):
    root = _gpu(tmp_path)
    path = root / "runs/run-1/power.rank0.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"power_w":1', b'"power_w":2', 1))
    report = score_bundle(root)
    assert not report.ranked
    assert [gate.passed for gate in report.gates] == [False, True, True, True]
    assert _find(report, "digest-mismatch")[0].location() == "runs/run-1/power.rank0.jsonl"
    assert 0.0 < report.score <= 1.0


def test_missing_and_unlisted_files_fail_integrity(tmp_path):
    root = _gpu(tmp_path)
    (root / "runs/run-2/allocator.rank0.jsonl").unlink()
    (root / "runs/run-2/notes.md").write_text("extra")
    report = score_bundle(root)
    assert not report.ranked
    assert _find(report, "file-missing")[0].location() == "runs/run-2/allocator.rank0.jsonl"
    assert _find(report, "file-unlisted")[0].location() == "runs/run-2/notes.md"
    assert "file-missing x1" in report.gates[0].message


def test_summary_that_disagrees_with_its_trace(tmp_path):
    root = _gpu(tmp_path)
    edit_manifest(
        root,
        lambda m: find_metric(m["runs"][0], "steps_per_second").update(
            value=find_metric(m["runs"][0], "steps_per_second")["value"] * 1.01
        ),
    )
    report = score_bundle(root)
    assert not report.ranked and report.gates[3].code == "summary" and not report.gates[3].passed
    [mismatch] = _find(report, "summary-mismatch")
    assert mismatch.location() == metric_pointer(root, 0, "steps_per_second", field="value")
    assert "1.00 % off" in mismatch.message
    assert _find(report, "metric-inconsistent")  # steps/s x time/step is no longer 1
    assert report.components["fidelity"]["consistency"] < 1.0


def test_wrong_json_type_in_a_record_fails_validity(tmp_path):
    root = _gpu(tmp_path)
    edit_trace(
        root,
        "runs/run-1/steps.rank1.jsonl",
        lambda records: [
            {**record, "loss": str(record["loss"])} if record["step"] == 4 else record for record in records
        ],
    )
    report = score_bundle(root)
    assert not report.ranked and not report.gates[1].passed
    assert _find(report, "type-mismatch")[0].location() == "runs/run-1/steps.rank1.jsonl:5#/loss"


def test_nan_fails_the_finite_gate(tmp_path):
    root = _gpu(tmp_path)
    path = root / "runs/run-1/kernels.rank0.json"
    document = json.loads(path.read_text())
    path.write_text(json.dumps(document).replace(f'"total_time_s": {document["total_time_s"]}', '"total_time_s": NaN'))
    reseal(root)
    report = score_bundle(root)
    assert not report.gates[2].passed and report.gates[1].passed
    assert _find(report, "non-finite-number")[0].location() == "runs/run-1/kernels.rank0.json#/total_time_s"


def test_unverifiable_summary_is_information_not_failure(tmp_path):
    root = _gpu(tmp_path)
    (root / "runs/run-1/steps.rank0.jsonl").unlink()
    edit_manifest(
        root, lambda m: m.update(files=[e for e in m["files"] if e["path"] != "runs/run-1/steps.rank0.jsonl"])
    )
    report = score_bundle(root)
    assert report.ranked
    unverifiable = {f.location() for f in _find(report, "summary-unverifiable")}
    assert metric_pointer(root, 0, "steps_per_second", field="value") in unverifiable
    assert any("no step records for rank 0" in f.message for f in _find(report, "channel-absent"))


# ---------------------------------------------------------------- F


def _power_lines(records, device, run_from, run_to):
    """Indices of a device's ticks (both channels) whose tick number is in [run_from, run_to)."""
    ticks = sorted({r["time_unix_ns"] for r in records if r["device"] == device})
    chosen = set(ticks[run_from:run_to])
    return chosen


def test_sampling_gap(tmp_path, gpu_score):
    root = _gpu(tmp_path)

    def drop_two_seconds(records):
        gone = _power_lines(records, 0, 20, 40)
        return [r for r in records if not (r["device"] == 0 and r["time_unix_ns"] in gone)]

    edit_trace(root, "runs/run-1/power.rank0.jsonl", drop_two_seconds)
    report = score_bundle(root)
    gaps = [f for f in _find(report, "sampling-gap") if "nvml_power (device 0)" in f.message]
    assert len(gaps) == 1 and gaps[0].location() == "runs/run-1/power.rank0.jsonl"
    assert "1 gap(s) longer than 2 x the 0.1 s interval" in gaps[0].message
    assert "longest 2.1" in gaps[0].message
    assert report.ranked
    assert report.components["fidelity"]["sampling"] < gpu_score.components["fidelity"]["sampling"]
    assert report.fidelity < gpu_score.fidelity


def test_sampling_rate_low(tmp_path):
    root = _gpu(tmp_path)

    def every_third(records):
        ticks = sorted({r["time_unix_ns"] for r in records if r["device"] == 1})
        kept = set(ticks[::3])
        return [r for r in records if r["device"] != 1 or r["time_unix_ns"] in kept]

    edit_trace(root, "runs/run-2/power.rank0.jsonl", every_third)
    report = score_bundle(root)
    low = [f for f in _find(report, "sampling-rate-low") if "device 1" in f.message]
    assert len(low) == 2 and "of 10 Hz declared (3" in low[0].message
    assert report.components["fidelity"]["sampling"] < 1.0


def test_window_coverage(tmp_path, gpu_score):
    root = _gpu(tmp_path)
    edit_trace(root, "runs/run-2/memory.rank0.jsonl", lambda records: records[len(records) // 2 :])
    report = score_bundle(root)
    [coverage] = _find(report, "window-coverage")
    assert coverage.location() == "runs/run-2/memory.rank0.jsonl"
    assert "starts 3." in coverage.message and "after the run started" in coverage.message
    assert report.components["completeness"]["coverage"] < gpu_score.components["completeness"]["coverage"] - 0.02


def test_clock_skew(tmp_path, gpu_score):
    root = _gpu(tmp_path)
    three_hours = 3 * 3600 * 10**9
    edit_trace(
        root,
        "runs/run-3/memory.rank1.jsonl",
        lambda records: [{**r, "time_unix_ns": r["time_unix_ns"] + three_hours} for r in records],
    )
    report = score_bundle(root)
    [skew] = _find(report, "clock-skew")
    assert skew.location() == "runs/run-3/memory.rank1.jsonl"
    assert "ends 3.00 h after the run ended" in skew.message
    assert report.components["fidelity"]["clock"] < 1.0
    assert _find(report, "outside-window")


def test_duplicate_timestamp_and_backwards_time(tmp_path):
    root = _gpu(tmp_path)
    edit_trace(root, "runs/run-1/memory.rank0.jsonl", lambda records: records[:10] + [records[9]] + records[10:])
    edit_trace(
        root, "runs/run-1/memory.rank1.jsonl", lambda records: records[:5] + [records[6], records[5]] + records[7:]
    )
    report = score_bundle(root)
    [duplicate] = _find(report, "duplicate-timestamp")
    assert duplicate.location() == "runs/run-1/memory.rank0.jsonl:11"
    backwards = _find(report, "non-monotonic")
    assert backwards[0].location() == "runs/run-1/memory.rank1.jsonl:7"
    assert report.components["fidelity"]["consistency"] < 1.0


def test_energy_counter_going_backwards_is_a_wrap(tmp_path):
    root = _gpu(tmp_path)

    def reset_counter(records):
        seen = 0
        out = []
        for record in records:
            if record["channel"] == "nvml_energy" and record["device"] == 1:
                seen += 1
                if seen > 30:
                    record = {**record, "energy_j": record["energy_j"] - 1.9e8}  # driver reload
            out.append(record)
        return out

    edit_trace(root, "runs/run-1/power.rank0.jsonl", reset_counter)
    report = score_bundle(root)
    assert any("counter goes backwards 1 time(s)" in f.message for f in _find(report, "non-monotonic"))
    # only increases are summed, so the counter total loses one interval and the gate notices
    counted = metric_pointer(root, 0, "total_energy", "device", device=1, field="value")
    assert any(f.location() == counted for f in _find(report, "summary-mismatch"))


def test_placeholder_value(tmp_path, gpu_score):
    root = _gpu(tmp_path)
    edit_manifest(root, lambda m: m["model"].update(description="TODO"))
    report = score_bundle(root)
    assert _find(report, "placeholder-value")[0].location() == "manifest.json#/model/description"
    assert report.components["fidelity"]["plausibility"] == 0.75
    assert report.score < gpu_score.score


def test_implausible_values(tmp_path):
    root = _gpu(tmp_path)
    edit_manifest(root, lambda m: find_metric(m["runs"][1], "compute_utilization").update(value=150.0))
    edit_trace(
        root,
        "runs/run-1/power.rank0.jsonl",
        lambda records: [
            {**r, "power_w": 5000.0} if r.get("power_w") and r["device"] == 0 and i == 40 else r
            for i, r in enumerate(records)
        ],
    )
    report = score_bundle(root)
    locations = {f.location() for f in _find(report, "implausible-value")}
    assert metric_pointer(root, 1, "compute_utilization", field="value") in locations
    assert "runs/run-1/power.rank0.jsonl#/power_w" in locations
    assert report.components["fidelity"]["plausibility"] == 0.5


def test_counter_and_polled_energy_disagree(tmp_path):
    root = _gpu(tmp_path)
    edit_trace(
        root,
        "runs/run-1/power.rank0.jsonl",
        lambda records: [
            {**r, "power_w": round(r["power_w"] * 1.2, 3)} if "power_w" in r and r["device"] == 0 else r
            for r in records
        ],
    )
    report = score_bundle(root)
    [inconsistent] = _find(report, "channel-inconsistent")
    apart = float(inconsistent.message.split("(")[1].split(" % apart")[0])
    assert "run run-1, device 0" in inconsistent.message and 19.0 < apart < 22.0  # +20 % on top of ~1 % noise
    assert report.ranked


def test_dc_above_ac(tmp_path):
    root = _gpu(tmp_path)

    def node_meters(manifest):
        manifest["methodology"]["channels"] += [
            {
                "name": "psu_ac",
                "record_type": "power_sample",
                "fields": ["power_w"],
                "method": "sampled",
                "source": "BMC",
                "tool": "ipmitool 1.8",
                "target_rate_hz": 1.0,
                "domain": "node",
                "current_type": "AC",
            },
            {
                "name": "psu_dc",
                "record_type": "power_sample",
                "fields": ["power_w"],
                "method": "sampled",
                "source": "BMC",
                "tool": "ipmitool 1.8",
                "target_rate_hz": 1.0,
                "domain": "node",
                "current_type": "DC",
            },
        ]

    edit_manifest(root, node_meters)
    start = json.loads((root / "runs/run-1/steps.rank0.jsonl").read_text().splitlines()[0])["start_unix_ns"]
    edit_trace(
        root,
        "runs/run-1/power.rank0.jsonl",
        lambda records: (
            records
            + [
                {"time_unix_ns": start + i * 10**9, "channel": channel, "node": 0, "power_w": watts}
                for i in range(6)
                for channel, watts in (("psu_ac", 2500.0), ("psu_dc", 2600.0))
            ]
        ),
    )
    report = score_bundle(root)
    assert any("DC power (2600 W) above AC power (2500 W)" in f.message for f in _find(report, "channel-inconsistent"))


def test_modeled_energy(tmp_path, gpu_score):
    root = _gpu(tmp_path)
    edit_manifest(
        root, lambda m: find_metric(m["runs"][2], "total_energy").update(method="modeled", source="700 W TDP x time")
    )
    report = score_bundle(root)
    assert _find(report, "modeled-energy")[0].location() == metric_pointer(root, 2, "total_energy")
    assert report.components["fidelity"]["tier"] == pytest.approx((1 + 1 + 0.2) / 3)
    assert report.fidelity < gpu_score.fidelity and report.ranked


def test_flops_disagreement(tmp_path):
    root = _gpu(tmp_path)
    edit_manifest(
        root,
        lambda m: find_metric(m["runs"][0], "flops_per_step_counted").update(
            value=find_metric(m["runs"][0], "flops_per_step_analytical")["value"] * 0.7
        ),
    )
    report = score_bundle(root)
    assert any("FLOPs per step differ by 30.0 %" in f.message for f in _find(report, "metric-inconsistent"))


# ---------------------------------------------------------------- C and independence


def test_seed_reuse(tmp_path, gpu_score):
    root = _gpu(tmp_path)
    edit_manifest(root, lambda m: m["runs"][1].update(seed=m["runs"][0]["seed"]))
    report = score_bundle(root)
    assert _find(report, "seed-reuse")[0].location() == "manifest.json#/runs/1/seed"
    assert "Reproduced" not in report.badges and "Reproduced" in gpu_score.badges


def test_duplicate_run_does_not_count(tmp_path, gpu_score):
    root = _gpu(tmp_path)
    shutil.rmtree(root / "runs/run-2")
    shutil.copytree(root / "runs/run-1", root / "runs/run-2")

    def copy_run(manifest):
        manifest["runs"][1] = {**manifest["runs"][0], "run_id": "run-2", "seed": manifest["runs"][1]["seed"]}
        manifest["files"] = [e for e in manifest["files"] if e["run_id"] != "run-2"] + [
            {**e, "path": e["path"].replace("run-1", "run-2"), "run_id": "run-2"}
            for e in manifest["files"]
            if e["run_id"] == "run-1"
        ]

    edit_manifest(root, copy_run)
    report = score_bundle(root)
    assert report.ranked
    [duplicate] = _find(report, "duplicate-run")
    assert duplicate.location() == "manifest.json#/runs/1" and "identical trace files" in duplicate.message
    assert report.statistics["steps_per_second"].n == 2
    assert report.confidence == 0.0 and _find(report, "too-few-runs")


def test_too_few_runs(tmp_path):
    root = _gpu(tmp_path)
    shutil.rmtree(root / "runs/run-3")
    edit_manifest(root, lambda m: m.update(runs=m["runs"][:2], files=[e for e in m["files"] if e["run_id"] != "run-3"]))
    report = score_bundle(root)
    assert report.confidence == 0.0
    assert "2 completed independent run(s)" in _find(report, "too-few-runs")[0].message
    assert report.statistics["steps_per_second"].headline_method.startswith("mean (only 2 runs")


def test_high_variance(tmp_path, gpu_score):
    root = _gpu(tmp_path)
    scale = 1.3

    def slower(records):
        return [{**r, "duration_s": r["duration_s"] * scale} for r in records]

    edit_trace(root, "runs/run-3/steps.rank0.jsonl", slower)

    def update_summary(manifest):
        for metric in manifest["runs"][2]["metrics"]:
            if metric["scope"] == "global" and metric["name"] == "time_per_step":
                metric["value"] *= scale
            if metric["scope"] == "global" and metric["name"] == "steps_per_second":
                metric["value"] /= scale

    edit_manifest(root, update_summary)
    report = score_bundle(root)
    assert report.ranked, [g for g in report.gates if not g.passed]
    [variance] = [f for f in _find(report, "high-variance") if f.message.startswith("steps_per_second")]
    assert "varies by 1" in variance.message and "95 % interval" in variance.message
    assert report.confidence < gpu_score.confidence
    assert "Reproduced" not in report.badges


def test_failed_run_counts_as_slowest(tmp_path):
    root = _gpu(tmp_path)
    edit_manifest(root, lambda m: m["runs"][1].update(status="failed", status_reason="loss diverged"))
    report = score_bundle(root)
    times = report.statistics["time_per_step"]
    manifest = models.Manifest.model_validate_json((root / "manifest.json").read_bytes())
    kept = [
        next(m.value for m in run.metrics if m.name == "time_per_step" and m.scope == "global")
        for run in manifest.runs
        if run.status == "completed"
    ]
    assert times.n == 2 and times.headline == max(kept)
    assert report.confidence == 0.0  # two completed runs


# ---------------------------------------------------------------- properties

CPU_DOCUMENT = json.loads((CPU / "manifest.json").read_text())
ADDITIONS = {
    "/system/devices/*/memory_bytes": lambda m: [d.update(memory_bytes=25769803776) for d in m["system"]["devices"]],
    "/system/devices/*/peak_flops": lambda m: [
        d.update(peak_flops=[{"format": "fp32", "flops_per_s": 1e11, "sparse": False, "source": "measured"}])
        for d in m["system"]["devices"]
    ],
    "/environment/ambient_temperature/value": lambda m: m["environment"].update(
        ambient_temperature={
            "value": 22.0,
            "unit": "Cel",
            "method": "declared",
            "source": "thermostat",
            "tool": "a person",
        }
    ),
    "/environment/cooling_method": lambda m: m["environment"].update(cooling_method="air", cooling_source="declared"),
    "/methodology/clock/synchronization": lambda m: m["methodology"]["clock"].update(synchronization="chrony"),
}


@pytest.fixture(scope="module")
def cpu_digest():
    digest = TraceDigest()
    validate_bundle(CPU, observer=digest)
    return digest


def test_the_additions_cover_what_the_cpu_example_lacks():
    manifest = models.Manifest.model_validate(CPU_DOCUMENT, strict=False)
    absent = {
        pattern
        for pattern, applies in REPORTING_FIELDS
        if applies(manifest) and not field_present(CPU_DOCUMENT, pattern)
    }
    assert absent == set(ADDITIONS)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(sorted(ADDITIONS)), unique=True, min_size=1))
def test_adding_a_missing_reporting_field_never_lowers_completeness(cpu_digest, additions):
    base_manifest = models.Manifest.model_validate_json(json.dumps(CPU_DOCUMENT))
    before, _, _ = completeness(base_manifest, CPU_DOCUMENT, cpu_digest)
    document = json.loads(json.dumps(CPU_DOCUMENT))
    for pattern in additions:
        ADDITIONS[pattern](document)
    after, _, _ = completeness(models.Manifest.model_validate_json(json.dumps(document)), document, cpu_digest)
    assert after > before


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations([0, 1, 2]))
def test_permuting_runs_changes_nothing(tmp_path_factory, gpu_score, order):
    root = copy_bundle(GPU, tmp_path_factory.mktemp("perm") / "gpu")
    edit_manifest(root, lambda m: m.update(runs=[m["runs"][index] for index in order]))
    report = score_bundle(root)
    before, after = gpu_score.as_dict(), report.as_dict()
    for key in ("ranked", "score", "fidelity", "completeness", "confidence", "badges", "gates", "statistics"):
        assert after[key] == before[key], key
    assert sorted(f["code"] for f in after["findings"]) == sorted(f["code"] for f in before["findings"])


DAMAGE = {
    "drop-run": lambda root, rng: edit_manifest(root, lambda m: m.update(runs=m["runs"][: 1 + rng.randrange(3)])),
    "fail-run": lambda root, rng: edit_manifest(
        root, lambda m: m["runs"][rng.randrange(len(m["runs"]))].update(status="failed")
    ),
    "scale-metric": lambda root, rng: edit_manifest(
        root,
        lambda m: m["runs"][rng.randrange(len(m["runs"]))]["metrics"][rng.randrange(20)].update(
            value=rng.uniform(-10, 1e6)
        ),
    ),
    "null-energy": lambda root, rng: edit_manifest(
        root,
        lambda m: find_metric(m["runs"][rng.randrange(len(m["runs"]))], "total_energy").update(
            value=None, unavailable_reason="sensor died", method=None, source=None, tool=None
        ),
    ),
    "thin-power": lambda root, rng: edit_trace(
        root, f"runs/run-{1 + rng.randrange(3)}/power.rank0.jsonl", lambda records: records[:: 2 + rng.randrange(5)]
    ),
    "shift-memory": lambda root, rng: edit_trace(
        root,
        "runs/run-1/memory.rank1.jsonl",
        lambda records: [{**r, "time_unix_ns": r["time_unix_ns"] + rng.randrange(10**13)} for r in records],
    ),
    "cut-steps": lambda root, rng: edit_trace(
        root,
        "runs/run-2/steps.rank0.jsonl",
        # applied twice, the first cut may have left nothing
        lambda records: records[: rng.randrange(len(records))] if records else records,
    ),
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damage=st.lists(st.sampled_from(sorted(DAMAGE)), min_size=1, max_size=3), seed=st.integers(0, 10**6))
@example(damage=["cut-steps", "cut-steps"], seed=546)  # the first cut left no steps (found by hypothesis)
def test_scores_stay_in_zero_one_under_damage(tmp_path_factory, damage, seed):
    import random

    rng = random.Random(seed)
    root = copy_bundle(GPU, tmp_path_factory.mktemp("damage") / "gpu")
    for name in damage:
        DAMAGE[name](root, rng)
    report = score_bundle(root)
    for value in (report.score, report.fidelity, report.completeness, report.confidence):
        assert 0.0 <= value <= 1.0
    for part in report.components.values():
        assert all(v is None or 0.0 <= v <= 1.0 for v in part.values())
    json.dumps(report.as_dict(), allow_nan=False)


def _calibration(within: bool) -> dict:
    deviation = {
        "name": "steps_per_second",
        "unit": "{step}/s",
        "reference_mean": 13.9,
        "reference_half_width": 0.2,
        "measured_mean": 13.6 if within else 12.0,
        "measured_half_width": 0.3,
        "deviation_percent": -2.158 if within else -13.669,
        "margin_percent": 2.594,
        "within_margin": within,
    }
    return {
        "record_id": "a" * 64,
        "record_created_at": "2026-11-01T10:00:00Z",
        "hardware": "2 device(s) (gpu NVIDIA H100 80GB HBM3) on 1 node(s)",
        "configuration": "gpt2-124m",
        "deviations": [deviation],
    }


@pytest.mark.parametrize("within", [True, False])
def test_calibrated_badge_needs_every_deviation_within_its_margin(tmp_path, within):
    root = _gpu(tmp_path)
    edit_manifest(root, lambda m: m.update(calibration=_calibration(within)))
    report = score_bundle(root)
    assert report.ranked
    assert ("Calibrated" in report.badges) is within


def test_a_calibration_flag_that_contradicts_its_numbers_is_invalid(tmp_path):
    root = _gpu(tmp_path)
    calibration = _calibration(False)
    calibration["deviations"][0]["within_margin"] = True
    edit_manifest(root, lambda m: m.update(calibration=calibration))
    report = score_bundle(root)
    assert not report.ranked and "Calibrated" not in report.badges
    assert any(
        f.location() == "manifest.json#/calibration/deviations/0/within_margin" for f in _find(report, "rule-violation")
    )
