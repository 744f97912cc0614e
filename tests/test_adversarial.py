"""Rubric r2 against a reviewer trying to game it (issue 14's table, docs/scoring.md part II).

Every case starts from the GPU example, edits it the way a fabricator would (the file list
re-hashed with tests/bundles.py, so integrity passes), and checks its verdict under r2: the
impossible ones are not ranked and earn no badge; the too-good ones stay below the honest bundle
and earn no Reproduced; r1's verdicts, kept for comparison, show what r2 fixes.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from trainmark.scorer.score import LogScaleStatistics, score_bundle

from tests.bundles import EXAMPLES, copy_bundle, edit_manifest, edit_trace, metric_pointer, reseal

GPU = EXAMPLES / "valid" / "gpu-h100-gpt2"
CPU = EXAMPLES / "valid" / "cpu-tiny"
NS = 10**9


def _submitted(tmp_path: Path, base: Path = GPU) -> Path:
    """The example as a submitter would send it: without its `synthetic` marker."""
    root = copy_bundle(base, tmp_path / "bundle")
    edit_manifest(root, lambda m: m.pop("provenance", None))
    return root


def _metric(run: dict, name: str, scope: str = "global", device: int | None = None) -> dict:
    return next(m for m in run["metrics"] if m["name"] == name and m["scope"] == scope and m.get("device") == device)


def _set_throughput(manifest: dict, run: dict, steps_per_second: float) -> None:
    """Every throughput-derived metric of a run made consistent with a new steps/s."""
    batch, sequence = manifest["training"]["global_batch_size"], manifest["training"]["sequence_length"]
    flops = _metric(run, "flops_per_step_analytical")["value"]
    _metric(run, "steps_per_second")["value"] = steps_per_second
    _metric(run, "time_per_step")["value"] = 1 / steps_per_second
    _metric(run, "samples_per_second")["value"] = batch * steps_per_second
    _metric(run, "tokens_per_second")["value"] = batch * sequence * steps_per_second
    _metric(run, "flops_per_second")["value"] = flops * steps_per_second
    _metric(run, "compute_utilization")["value"] = flops * steps_per_second / (2 * 989.4e12) * 100
    for device in (0, 1):
        _metric(run, "flops_per_second", "device", device)["value"] = flops / 2 * steps_per_second
        _metric(run, "compute_utilization", "device", device)["value"] = flops / 2 * steps_per_second / 989.4e12 * 100


def _set_energy(run: dict, device_joules: dict[int, float], windows: dict[int, float], watts: float) -> None:
    """Every energy-derived metric of a run made consistent with new device energies."""
    total = sum(device_joules.values())
    steps = _metric(run, "steps_completed")["value"]
    for device, joules in device_joules.items():
        _metric(run, "total_energy", "device", device)["value"] = joules
        for name in ("power_mean", "power_peak"):
            _metric(run, name, "device", device)["value"] = watts
    _metric(run, "total_energy")["value"] = total
    _metric(run, "net_energy")["value"] = total - sum(
        _metric(run, "idle_power", "device", d)["value"] * windows[d] for d in device_joules
    )
    _metric(run, "energy_per_step")["value"] = total / steps
    _metric(run, "energy_per_update")["value"] = total / _metric(run, "updates_completed")["value"]
    _metric(run, "energy_per_sample")["value"] = total / (steps * 64)
    _metric(run, "flops_per_joule")["value"] = _metric(run, "flops_per_step_analytical")["value"] * steps / total
    _metric(run, "steps_per_kilojoule")["value"] = steps / (total / 1000)
    for name in ("power_mean", "power_median", "power_peak"):
        _metric(run, name)["value"] = watts * len(device_joules)


# ---------------------------------------------------------------- the cases


def constant_power(root: Path) -> None:
    """Constant 700 W at exactly 1 Hz on both GPUs, the energy counters and every summary made consistent."""
    manifest = json.loads((root / "manifest.json").read_text())
    for _index, run in enumerate(manifest["runs"]):
        path = f"runs/{run['run_id']}/power.rank0.jsonl"
        records = [json.loads(line) for line in (root / path).read_text().splitlines()]
        first = min(r["time_unix_ns"] for r in records)
        last = max(r["time_unix_ns"] for r in records)
        ticks = range(first, last + 1, NS)
        fabricated = []
        for tick_index, tick in enumerate(ticks):
            for device in (0, 1):
                fabricated.append({"time_unix_ns": tick, "channel": "nvml_power", "device": device, "power_w": 700.0})
                fabricated.append(
                    {
                        "time_unix_ns": tick,
                        "channel": "nvml_energy",
                        "device": device,
                        "energy_j": 1.0e6 + 700.0 * tick_index,
                    }
                )
        edit_trace(root, path, lambda _: fabricated)  # noqa: B023 - called at once
        window = (len(ticks) - 1) * 1.0
        _set_energy(run, {0: 700.0 * window, 1: 700.0 * window}, {0: window, 1: window}, 700.0)
        for entry in run.get("sampling", []):
            if entry["channel"] in ("nvml_power", "nvml_energy"):
                entry.update(achieved_rate_hz=1.0, sample_count=len(ticks))
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    reseal(root)


def shifted_copies(root: Path) -> None:
    """Runs 2 and 3 are run 1 shifted in time, one summary metric nudged by 0.001."""
    manifest = json.loads((root / "manifest.json").read_text())
    first = manifest["runs"][0]
    from datetime import datetime

    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    for index in (1, 2):
        run = manifest["runs"][index]
        offset_ns = round((parse(run["started_at"]) - parse(first["started_at"])).total_seconds() * NS)
        shutil.rmtree(root / "runs" / run["run_id"])
        shutil.copytree(root / "runs" / first["run_id"], root / "runs" / run["run_id"])
        for path in (root / "runs" / run["run_id"]).iterdir():
            if path.suffix != ".jsonl":
                continue
            lines = []
            for line in path.read_text().splitlines():
                record = json.loads(line)
                for key in ("time_unix_ns", "start_unix_ns"):
                    if key in record:
                        record[key] += offset_ns
                lines.append(json.dumps(record, separators=(",", ":")))
            path.write_text("\n".join(lines) + "\n")
        copied = json.loads(json.dumps(first))
        from datetime import timedelta

        ended = parse(first["ended_at"]) + timedelta(microseconds=offset_ns // 1000)
        copied.update(
            run_id=run["run_id"],
            seed=run["seed"],
            started_at=run["started_at"],
            ended_at=ended.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        )
        _metric(copied, "allocations_per_step")["value"] += 0.001 * index
        manifest["runs"][index] = copied
        manifest["files"] = [e for e in manifest["files"] if e.get("run_id") != run["run_id"]] + [
            {**e, "path": e["path"].replace(first["run_id"], run["run_id"]), "run_id": run["run_id"]}
            for e in manifest["files"]
            if e.get("run_id") == first["run_id"]
        ]
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    reseal(root)


def identical_steps(root: Path) -> None:
    """Every step exactly 70.0 ms, back to back, with every throughput summary made consistent."""
    manifest = json.loads((root / "manifest.json").read_text())
    for run in manifest["runs"]:
        for rank in (0, 1):
            path = f"runs/{run['run_id']}/steps.rank{rank}.jsonl"

            def exact(records):
                start = records[0]["start_unix_ns"]
                return [
                    {**r, "start_unix_ns": start + i * 70_000_000, "duration_s": 0.07} for i, r in enumerate(records)
                ]

            edit_trace(root, path, exact)
        _set_throughput(manifest, run, 1 / 0.07)
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    reseal(root)


def energy_halved(root: Path) -> None:
    edit_manifest(
        root,
        lambda m: _metric(m["runs"][0], "total_energy").update(
            value=_metric(m["runs"][0], "total_energy")["value"] / 2
        ),
    )


def idle_above_mean(root: Path) -> None:
    """Idle power 800 W per GPU, above the ~560 W mean; net energy recomputed to match."""

    def change(manifest):
        for run in manifest["runs"]:
            for device in (0, 1):
                _metric(run, "idle_power", "device", device)["value"] = 800.0
            _metric(run, "idle_power")["value"] = 1600.0

    edit_manifest(root, change)


def flops_above_peak(root: Path) -> None:
    """5 PFLOP/s claimed on 2 x 989 TFLOP/s."""

    def change(manifest):
        for run in manifest["runs"]:
            _metric(run, "flops_per_second")["value"] = 5.0e15

    edit_manifest(root, change)


def created_before_runs(root: Path) -> None:
    edit_manifest(root, lambda m: m.update(created_at="2026-11-01T00:00:00.000000Z"))


def runs_at_once(root: Path) -> None:
    """Three runs at the same time on the same GPUs."""

    def change(manifest):
        for run in manifest["runs"][1:]:
            run.update(started_at=manifest["runs"][0]["started_at"], ended_at=manifest["runs"][0]["ended_at"])
            _metric(run, "run_duration")["value"] = _metric(manifest["runs"][0], "run_duration")["value"]

    edit_manifest(root, change)


def overlapping_steps(root: Path) -> None:
    edit_trace(
        root,
        "runs/run-1/steps.rank0.jsonl",
        lambda records: [
            {**r, "start_unix_ns": r["start_unix_ns"] - 30_000_000} if r["step"] == 20 else r for r in records
        ],
    )


def other_hardware(root: Path) -> None:
    """Run 3 on 2 x A100 of another node."""

    def change(manifest):
        system = manifest["system"]
        system["node_count"] = 2
        system["hosts"].append({**system["hosts"][0], "node": 1})
        for local in (0, 1):
            a100 = json.loads(json.dumps(system["devices"][local]))
            a100.update(
                index=2 + local,
                node=1,
                local_index=local,
                model="NVIDIA A100-SXM4-80GB",
                uuid=f"GPU-a100-{local}",
                peak_flops=[
                    {"format": "bf16", "flops_per_s": 312e12, "sparse": False, "source": "NVIDIA A100 datasheet"}
                ],
            )
            system["devices"].append(a100)
        for placement in manifest["runs"][2]["ranks"]:
            placement.update(node=1, device=2 + placement["rank"])

    edit_manifest(root, change)


ENERGY_METRICS = {
    "total_energy",
    "idle_power",
    "power_mean",
    "power_median",
    "power_peak",
    "net_energy",
    "energy_per_step",
    "energy_per_update",
    "energy_per_sample",
    "flops_per_joule",
    "steps_per_kilojoule",
    "power_data_loading",
    "power_forward",
    "power_backward",
    "power_optimizer",
}


def honest_without_sensors(root: Path) -> None:
    """The honest bundle: no power sensor, every energy metric null with the reason."""
    reason = "no energy sensor on this machine (the honest bundle of issue 14)"

    def change(manifest):
        for run in manifest["runs"]:
            for metric in run["metrics"]:
                if metric["name"] in ENERGY_METRICS:
                    for key in ("method", "source", "tool"):
                        metric.pop(key, None)
                    metric.update(value=None, unavailable_reason=reason)
            run["sampling"] = [s for s in run.get("sampling", []) if s["channel"] not in ("nvml_power", "nvml_energy")]
            (root / f"runs/{run['run_id']}/power.rank0.jsonl").unlink()
        manifest["files"] = [e for e in manifest["files"] if "power." not in e["path"]]
        manifest["methodology"]["channels"] = [
            c for c in manifest["methodology"]["channels"] if c["record_type"] != "power_sample"
        ]
        manifest["methodology"]["idle_subtraction"] = {"method": "none", "description": reason}

    edit_manifest(root, change)


CASES = {
    # id: (edit, ranked under r2, a finding code it must carry)
    "constant-700W-1Hz": (constant_power, True, "too-regular"),
    "shifted-copies": (shifted_copies, True, "duplicate-run"),
    "identical-70ms-steps": (identical_steps, True, "too-regular"),
    "energy-halved": (energy_halved, False, "summary-mismatch"),
    "idle-above-mean": (idle_above_mean, False, "physics-idle"),
    "5-PFLOPs-on-2-H100": (flops_above_peak, False, "physics-flops"),
    "created-before-runs": (created_before_runs, False, "created-at"),
    "three-runs-at-once": (runs_at_once, False, "run-overlap"),
    "overlapping-steps": (overlapping_steps, False, "step-overlap"),
    "run-3-on-A100s": (other_hardware, False, "hardware-mismatch"),
    "honest-no-sensors": (honest_without_sensors, True, "key-quantity-absent"),
}
TOO_GOOD = ("constant-700W-1Hz", "shifted-copies", "identical-70ms-steps")


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    """Every case scored under r1 and r2."""
    out = {}
    for name, (edit, _, _) in CASES.items():
        root = _submitted(tmp_path_factory.mktemp(name))
        edit(root)
        out[name] = {"r1": score_bundle(root, "r1"), "r2": score_bundle(root, "r2")}
    return out


def test_the_case_table_is_not_empty():
    assert set(TOO_GOOD) <= set(CASES)
    assert {ranked for _, ranked, _ in CASES.values()} == {True, False}  # cases on both sides of the verdict


@pytest.mark.parametrize("name", sorted(CASES))
def test_verdict_under_r2(verdicts, name):
    _, ranked, code = CASES[name]
    report = verdicts[name]["r2"]
    assert report.rubric_version == "r2"
    assert report.ranked is ranked, [g for g in report.gates if not g.passed]
    assert code in {f.code for f in report.findings}
    if not ranked:
        assert report.badges == []
        failed = [g for g in report.gates if not g.passed]
        assert failed and report.as_dict()["not_ranked_because"] == [g.message for g in failed]
    assert "Reproduced" not in report.badges or name not in TOO_GOOD


@pytest.mark.parametrize("name", TOO_GOOD)
def test_too_good_scores_below_the_honest_bundle(verdicts, name):
    honest = verdicts["honest-no-sensors"]["r2"]
    report = verdicts[name]["r2"]
    assert report.ranked and report.confidence == 0.0
    assert "Reproduced" not in report.badges
    assert report.score < honest.score
    # r1 let each of them beat the honest bundle
    assert verdicts[name]["r1"].score > verdicts["honest-no-sensors"]["r1"].score


def test_r1_verdicts_are_what_the_issue_measured(verdicts):
    """The table of issue 14 under r1, reproduced: why r2 exists."""
    r1 = {name: verdicts[name]["r1"] for name in CASES}
    for name in (
        "idle-above-mean",
        "5-PFLOPs-on-2-H100",
        "created-before-runs",
        "overlapping-steps",
        "run-3-on-A100s",
        "constant-700W-1Hz",
        "identical-70ms-steps",
        "shifted-copies",
    ):
        assert r1[name].ranked, name
    assert not r1["energy-halved"].ranked and "Reproduced" in r1["energy-halved"].badges


def test_the_pointers_name_the_record(verdicts):
    def locations(name, code):
        return {f.location() for f in verdicts[name]["r2"].findings if f.code == code}

    assert metric_pointer(GPU, 0, "idle_power", "device", device=0, field="value") in locations(
        "idle-above-mean", "physics-idle"
    )
    assert metric_pointer(GPU, 0, "flops_per_second", field="value") in locations("5-PFLOPs-on-2-H100", "physics-flops")
    assert locations("created-before-runs", "created-at") == {"manifest.json#/created_at"}
    assert "runs/run-1/steps.rank0.jsonl:21" in locations("overlapping-steps", "step-overlap")
    assert locations("run-3-on-A100s", "hardware-mismatch") == {"manifest.json#/runs/2/ranks"}
    assert metric_pointer(GPU, 0, "total_energy", field="value") in locations("energy-halved", "summary-mismatch")


def test_the_honest_bundle_is_ranked_without_reproduced(verdicts):
    report = verdicts["honest-no-sensors"]["r2"]
    assert report.ranked and "Reproduced" not in report.badges  # energy, a key quantity, is not reported
    assert 0.0 < report.confidence <= 0.5  # throughput's C_m only; energy's counts 0


def test_clean_example_keeps_reproduced_under_r2(tmp_path):
    report = score_bundle(_submitted(tmp_path), "r2")
    assert report.ranked and report.badges == ["Complete", "Reproduced"]
    assert [f.code for f in report.findings if f.severity.value != "info"] == []


def test_derived_metric_off_by_two_percent_fails_the_summary_gate(tmp_path):
    root = _submitted(tmp_path)
    edit_manifest(
        root,
        lambda m: _metric(m["runs"][1], "energy_per_step").update(
            value=_metric(m["runs"][1], "energy_per_step")["value"] * 1.02
        ),
    )
    r1, r2 = score_bundle(root, "r1"), score_bundle(root, "r2")
    assert r1.ranked and not r2.ranked
    [mismatch] = [f for f in r2.findings if f.code == "summary-mismatch"]
    assert mismatch.location() == metric_pointer(root, 1, "energy_per_step", field="value")
    assert "2.00 % off" in mismatch.message


def test_counter_and_polled_energy_apart_fail_the_physics_gate(tmp_path):
    root = _submitted(tmp_path)
    edit_trace(
        root,
        "runs/run-1/power.rank0.jsonl",
        lambda records: [
            {**r, "power_w": round(r["power_w"] * 1.2, 3)} if "power_w" in r and r["device"] == 0 else r
            for r in records
        ],
    )
    report = score_bundle(root, "r2")
    assert not report.ranked and "physics-energy-channels" in {f.code for f in report.findings}


def test_power_above_its_limit_fails_the_physics_gate(tmp_path):
    root = _submitted(tmp_path)
    edit_trace(
        root,
        "runs/run-2/power.rank0.jsonl",
        lambda records: [
            {**r, "power_w": 900.0} if r.get("power_w") and r["device"] == 1 and i == 30 else r
            for i, r in enumerate(records)
        ],
    )
    report = score_bundle(root, "r2")
    assert not report.ranked and "physics-power" in {f.code for f in report.findings}


def test_net_energy_above_total_fails_the_physics_gate(tmp_path):
    root = _submitted(tmp_path)
    edit_manifest(
        root,
        lambda m: _metric(m["runs"][0], "net_energy").update(
            value=_metric(m["runs"][0], "total_energy")["value"] * 1.5
        ),
    )
    report = score_bundle(root, "r2")
    assert not report.ranked and "physics-net-energy" in {f.code for f in report.findings}


def test_created_in_the_future(tmp_path):
    root = _submitted(tmp_path)
    edit_manifest(root, lambda m: m.update(created_at="2999-01-01T00:00:00Z"))
    report = score_bundle(root, "r2")
    assert any("in the future" in f.message for f in report.findings if f.code == "created-at")


def test_a_busy_machine_keeps_its_interval_positive(tmp_path):
    """The issue's real tiny run on a busy CPU (CV 63 %): r1's interval went below 0 steps/s."""
    root = _submitted(tmp_path, CPU)
    scale = {"run-2": 0.4, "run-3": 2.2}

    def slow(run_id):
        return lambda records: [
            {
                **r,
                "duration_s": r["duration_s"] * scale[run_id],
                "start_unix_ns": records[0]["start_unix_ns"]
                + round((r["start_unix_ns"] - records[0]["start_unix_ns"]) * scale[run_id]),
            }
            for r in records
        ]

    def summaries(manifest):
        for run in manifest["runs"]:
            if run["run_id"] in scale:
                for name, power in (
                    ("steps_per_second", -1),
                    ("time_per_step", 1),
                    ("samples_per_second", -1),
                    ("tokens_per_second", -1),
                    ("flops_per_second", -1),
                ):
                    _metric(run, name)["value"] *= scale[run["run_id"]] ** power

    for run_id in scale:
        edit_trace(root, f"runs/{run_id}/steps.jsonl", slow(run_id))
    edit_manifest(root, summaries)
    r1, r2 = score_bundle(root, "r1"), score_bundle(root, "r2")
    steps = r2.statistics["steps_per_second"]
    assert steps.cv > 0.5 and r1.statistics["steps_per_second"].ci95_low < 0
    assert isinstance(steps, LogScaleStatistics) and 0 < steps.ci95_low < steps.mean < steps.ci95_high
    assert "Reproduced" not in r2.badges and r2.confidence == 0.0


def test_the_log_scale_interval_is_geometric():
    from trainmark.scorer.score import _on_log_scale
    from trainmark.scorer.statistics import metric_statistics

    values = [1.0, 2.0, 4.0]
    stats = _on_log_scale(metric_statistics(values, "1"), values)
    assert math.sqrt(stats.ci95_low * stats.ci95_high) == pytest.approx(2.0)
    assert stats.log_half_width == pytest.approx(4.302653 * math.log(2) / math.sqrt(3), rel=1e-6)


def test_a_bundles_own_calibration_earns_nothing_under_r2(tmp_path):
    from tests.test_score import _calibration

    root = _submitted(tmp_path)
    edit_manifest(root, lambda m: m.update(calibration=_calibration(True)))
    r1, r2 = score_bundle(root, "r1"), score_bundle(root, "r2")
    assert "Calibrated" in r1.badges and "Calibrated" not in r2.badges
    assert [f.location() for f in r2.findings if f.code == "calibration-unverified"] == ["manifest.json#/calibration"]


def test_r2_constants_are_quoted_in_the_docs():
    from trainmark.scorer import rubric

    text = (Path(__file__).resolve().parent.parent / "docs" / "scoring.md").read_text().split("# Part II")[1]
    for value in (rubric.DERIVED_RELATIVE_TOLERANCE, rubric.SAMPLED_ENERGY_TOLERANCE, rubric.COUNTER_POLLED_TOLERANCE):
        assert f"**{value * 100:g} %**" in text, value
    for value in (rubric.STEP_DURATION_CV_FLOOR, rubric.POWER_CV_FLOOR, rubric.RUN_TO_RUN_CV_FLOOR):
        assert f"**{value:g}**" in text, value
    assert (
        f"**{rubric.PHYSICS_POWER_LIMIT_FACTOR:g} x**" in text
        and f"at least **{rubric.TOO_REGULAR_MIN_RECORDS}**" in text
    )
    assert f"1 - h / {rubric.R2_TARGET_RELATIVE_HALF_WIDTH:.2f}" in text
    for alternatives in rubric.R2.key_quantities:
        assert all(f"{name}" in text.split("## II.6 C")[1] for name in alternatives)


def test_node_energy_is_integrated_from_its_power_trace(tmp_path):
    root = _submitted(tmp_path)

    def node_meter(manifest):
        manifest["methodology"]["channels"].append(
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
            }
        )

    edit_manifest(root, node_meter)
    start = json.loads((root / "runs/run-1/steps.rank0.jsonl").read_text().splitlines()[0])["start_unix_ns"]
    edit_trace(
        root,
        "runs/run-1/power.rank0.jsonl",
        lambda records: (
            records
            + [{"time_unix_ns": start + i * NS, "channel": "psu_ac", "node": 0, "power_w": 2500.0} for i in range(5)]
        ),
    )
    claimed = {
        "name": "total_energy",
        "scope": "node",
        "node": 0,
        "unit": "J",
        "method": "sampled",
        "source": "trapezoid integral of psu_ac",
        "tool": "ipmitool 1.8",
    }
    edit_manifest(root, lambda m: m["runs"][0]["metrics"].append({**claimed, "value": 10000.0}))
    assert score_bundle(root, "r2").ranked  # 4 s x 2500 W
    edit_manifest(root, lambda m: m["runs"][0]["metrics"][-1].update(value=12000.0))
    report = score_bundle(root, "r2")
    assert not report.ranked and any(
        "total_energy (node 0)" in f.message for f in report.findings if f.code == "summary-mismatch"
    )
