"""The MLPerf importer on the real shared result sets, and on broken copies of them made here.

The official figures of ../shared/data/mlperf/INDEX.md (computed by MLCommons' own result
summarizer) are the oracle. The shared files are never modified: every broken variant is a copy.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest
from trainmark.scorer.score import score_bundle
from trainmark.spec.bundle import read_manifest
from trainmark.spec.importers.mlperf import import_mlperf
from trainmark.spec.validate import validate_bundle

from tests.bundles import MLPERF_DATA

SETS = ["lenovo_v5.0_llama2_70b_lora", "habana_v3.1_resnet", "google_v3.1_gpt3"]
OFFICIAL_MINUTES = {
    "lenovo_v5.0_llama2_70b_lora": 11.324490299145298,
    "habana_v3.1_resnet": 16.422279719887957,
    "google_v3.1_gpt3": 44.68485,
}
OFFICIAL_ENERGY_J = {"lenovo_v5.0_llama2_70b_lora": 6114237.986822284}


def test_the_shared_data_is_there():
    assert all((MLPERF_DATA / name / "result_0.txt").is_file() for name in SETS)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    bundles = {}
    for name in SETS:
        out = tmp_path_factory.mktemp("mlperf") / name
        import_mlperf(MLPERF_DATA / name, out)
        bundles[name] = out
    return bundles


@pytest.fixture(scope="module")
def scores(imported):
    return {name: score_bundle(path) for name, path in imported.items()}


@pytest.mark.parametrize("name", SETS)
def test_each_set_imports_validates_and_scores(imported, scores, name):
    report = validate_bundle(imported[name], full_jsonschema=True)
    assert report.valid, report.findings[:5]
    assert scores[name].ranked, [gate for gate in scores[name].gates if not gate.passed]
    _, manifest = read_manifest(imported[name])
    assert len(manifest.runs) == len(list((MLPERF_DATA / name).glob("result_*.txt")))
    assert manifest.model.precision_policy == "undeclared" and manifest.model.parameters_total.value is None
    assert manifest.model.parameters_total.unavailable_reason == "not in MLPerf logs"


def _scaling(manifest) -> float:
    parameters = {p.name: p.value for p in manifest.source.parameters or []}
    return parameters.get("scaling_factor", 1.0)


@pytest.mark.parametrize("name", SETS)
def test_time_to_train_equals_the_official_figure(imported, scores, name):
    _, manifest = read_manifest(imported[name])
    headline = scores[name].statistics["time_to_train"].headline
    assert headline / 60 * _scaling(manifest) == pytest.approx(OFFICIAL_MINUTES[name], rel=1e-9)


def test_energy_equals_the_official_figure(imported, scores):
    name = "lenovo_v5.0_llama2_70b_lora"
    _, manifest = read_manifest(imported[name])
    energy = scores[name].statistics["total_energy"]
    assert energy.headline * _scaling(manifest) == pytest.approx(OFFICIAL_ENERGY_J[name], rel=1e-9)
    assert "time_to_train olympic selection" in energy.headline_method
    assert _scaling(manifest) == 1.0188034188034187


def test_what_the_lenovo_bundle_carries(imported):
    _, manifest = read_manifest(imported["lenovo_v5.0_llama2_70b_lora"])
    assert manifest.submitter.name == "Lenovo"
    assert manifest.system.node_count == 1 and len(manifest.system.devices) == 8
    assert manifest.system.devices[0].model == "NVIDIA Blackwell GPU (B200-SXM-180GB)"
    assert manifest.software.cuda_version == "12.8" and manifest.environment.cooling_method == "direct_liquid"
    assert manifest.training.global_batch_size == 8
    assert {h.name for h in manifest.training.optimizer.hyperparameters} >= {"opt_base_learning_rate", "lora_rank"}
    [channel] = manifest.methodology.channels
    assert (channel.domain, channel.current_type, channel.conversion_efficiency) == ("node", "AC", 0.94)
    assert channel.target_rate_hz == pytest.approx(1.0)
    run = manifest.runs[0]
    assert run.seed is not None and run.status == "completed"
    metrics = {(m.name, m.scope): m for m in run.metrics}
    assert metrics[("time_to_train", "global")].value == pytest.approx(655.908)
    assert metrics[("total_energy", "node")].method == "sampled"
    assert "MLCommons' formula" in metrics[("total_energy", "node")].source
    assert metrics[("flops_per_step_analytical", "global")].unavailable_reason == "not in MLPerf logs"
    power = (imported["lenovo_v5.0_llama2_70b_lora"] / "runs/result_0/power.jsonl").read_text().splitlines()
    assert len(power) == 624 and json.loads(power[0])["time_unix_ns"] == 1745519751000 * 10**6


@pytest.mark.parametrize("name", SETS)
def test_originals_are_kept_byte_for_byte(imported, name):
    _, manifest = read_manifest(imported[name])
    assert manifest.source.files
    for path in manifest.source.files:
        original = MLPERF_DATA / name / path.removeprefix("source/")
        assert (imported[name] / path).read_bytes() == original.read_bytes()


def test_import_is_deterministic(tmp_path, imported):
    first = read_manifest(imported["google_v3.1_gpt3"])[0]
    import_mlperf(MLPERF_DATA / "google_v3.1_gpt3", tmp_path / "again")
    assert read_manifest(tmp_path / "again")[0] == first


def test_what_the_scorer_finds_in_the_shared_sets(scores):
    lenovo = Counter(f.code for f in scores["lenovo_v5.0_llama2_70b_lora"].findings)
    assert lenovo["placeholder-value"] >= 1  # host_networking_topology "N/A", host_networking ""
    assert lenovo["outside-window"] >= 1  # power is measured from before run_start
    habana = Counter(f.code for f in scores["habana_v3.1_resnet"].findings)
    assert habana["incomplete-source"] >= 1 and habana["missing-sensor"] == 5
    assumed = [f for f in scores["habana_v3.1_resnet"].findings if f.code == "assumed-value"]
    assert [f.location() for f in assumed] == ["source/result_0.txt"] and "world_size is 1" in assumed[0].message


# ---------------------------------------------------------------- broken copies


@pytest.fixture()
def lenovo_copy(tmp_path):
    copy = tmp_path / "lenovo"
    shutil.copytree(MLPERF_DATA / "lenovo_v5.0_llama2_70b_lora", copy)
    return copy


def _edit_lines(path, change):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(change(lines)))


def _codes_at(report, code):
    return [finding for finding in report.findings if finding.code == code]


def test_removed_power_readings_are_a_sampling_gap(lenovo_copy, tmp_path):
    _edit_lines(lenovo_copy / "power/result_2/node_0.txt", lambda lines: lines[:100] + lines[160:])
    import_mlperf(lenovo_copy, tmp_path / "out")
    report = score_bundle(tmp_path / "out")
    [gap] = [f for f in _codes_at(report, "sampling-gap") if "result_2" in f.message]
    longest = float(gap.message.split("longest ")[1].split(" s")[0])
    assert "1 gap(s)" in gap.message and 60 <= longest <= 66  # 60 readings, about one a second, removed
    assert gap.file == "runs/result_2/power.jsonl"


def test_a_power_file_hours_off_is_clock_skew(lenovo_copy, tmp_path):
    three_hours_ms = 3 * 3600 * 1000

    def shift(lines):
        out = []
        for line in lines:
            if ":::MLLOG " in line:
                head, _, body = line.partition(":::MLLOG ")
                event = json.loads(body)
                event["time_ms"] += three_hours_ms
                line = head + ":::MLLOG " + json.dumps(event) + "\n"
            out.append(line)
        return out

    _edit_lines(lenovo_copy / "power/result_4/node_0.txt", shift)
    import_mlperf(lenovo_copy, tmp_path / "out")
    report = score_bundle(tmp_path / "out")
    [skew] = _codes_at(report, "clock-skew")
    assert "run result_4" in skew.message and "3.00 h after the run ended" in skew.message
    assert any("result_4" in f.message for f in _codes_at(report, "window-coverage"))
    assert report.components["fidelity"]["clock"] < 1.0


def test_placeholders_in_the_system_description(lenovo_copy, tmp_path):
    system = json.loads((lenovo_copy / "system.json").read_text())
    system.update(host_processor_model_name="TODO", accelerator_interconnect="", system_name="PLACEHOLDER")
    (lenovo_copy / "system.json").write_text(json.dumps(system))
    import_mlperf(lenovo_copy, tmp_path / "out")
    report = score_bundle(tmp_path / "out")
    placeholders = {f.location() for f in _codes_at(report, "placeholder-value")}
    assert "manifest.json#/system/hosts/0/cpu_model" in placeholders
    assert "manifest.json#/system/system_name" in placeholders
    assert any("accelerator_interconnect" in f.message for f in _codes_at(report, "placeholder-value"))


def test_metadata_that_is_a_string_is_a_type_mismatch(lenovo_copy, tmp_path):
    def stringify(lines):
        out = []
        for line in lines:
            if '"key": "run_stop"' in line:
                head, _, body = line.partition(":::MLLOG ")
                event = json.loads(body)
                event["metadata"] = json.dumps(event["metadata"])  # the object, written as a string
                line = head + ":::MLLOG " + json.dumps(event) + "\n"
            out.append(line)
        return out

    _edit_lines(lenovo_copy / "result_1.txt", stringify)
    import_mlperf(lenovo_copy, tmp_path / "out")
    report = score_bundle(tmp_path / "out")
    [mismatch] = _codes_at(report, "type-mismatch")
    assert mismatch.file == "source/result_1.txt" and mismatch.pointer == "/metadata" and mismatch.line
    _, manifest = read_manifest(tmp_path / "out")
    run = manifest.runs[1]
    assert run.status == "failed" and "None" in run.status_reason  # the status was in the lost metadata


def test_messy_logs_never_crash_the_importer(lenovo_copy, tmp_path):
    def mess(lines):
        noise = ["[rank 3] WARNING: NCCL_ASYNC_ERROR_HANDLING is deprecated\n", "\x1b[31mbash: module: not found\n"]
        run_start = next(line for line in lines if '"key": "run_start"' in line)
        return (
            noise
            + lines[:5]
            + [
                '0: :::MLLOG {"key": "broken", \n',
                "0: :::MLLOG [1, 2]\n",
                '0: :::MLLOG {"namespace": "", "time_ms": 1745519519700, "event_type": '
                '"POINT_IN_TIME", "key": "vendor_secret_knob", "value": 3, "metadata": {}}\n',
            ]
            + lines[5:]
            + [run_start]
        )

    _edit_lines(lenovo_copy / "result_0.txt", mess)
    _edit_lines(
        lenovo_copy / "power/result_0/node_0.txt",
        lambda lines: [line for line in lines if "power_measurement_stop" not in line],
    )
    _edit_lines(
        lenovo_copy / "result_3.txt",
        lambda lines: [line.replace('"status": "success"', '"status": "aborted"') for line in lines],
    )
    import_mlperf(lenovo_copy, tmp_path / "out")
    assert validate_bundle(tmp_path / "out").valid
    report = score_bundle(tmp_path / "out")
    codes = Counter(f.code for f in report.findings)
    assert codes["unparseable-line"] == 2 and codes["duplicate-event"] >= 1 and codes["missing-event"] == 1
    assert any("vendor_secret_knob" in f.message for f in _codes_at(report, "unknown-key"))
    assert b"vendor_secret_knob" in (tmp_path / "out/source/result_0.txt").read_bytes()  # kept, not dropped
    _, manifest = read_manifest(tmp_path / "out")
    assert manifest.runs[3].status == "failed" and "aborted" in manifest.runs[3].status_reason
    assert report.statistics["time_to_train"].n == 9  # the aborted run counts as the slowest, then drops
    assert report.ranked


def test_not_an_mlperf_folder(tmp_path):
    with pytest.raises(Exception, match="no result_<i>.txt"):
        import_mlperf(tmp_path, tmp_path / "out")
