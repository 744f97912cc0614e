"""`trainmark import codecarbon` on a real CodeCarbon file and on hand-made variants of it.

tests/data/codecarbon/real-cpu/ was written by a real CodeCarbon 3.3.2 run on the project's
development machine (tests/data/codecarbon/make_real.py says how): no RAPL, no GPU, so CodeCarbon
estimated the CPU from its load and a TDP guess. The variants change cells of that file.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from trainmark.spec.bundle import read_manifest
from trainmark.spec.errors import TrainmarkError
from trainmark.spec.importers.codecarbon import JOULES_PER_KWH, import_codecarbon
from trainmark.spec.validate import validate_bundle

REAL = Path(__file__).parent / "data" / "codecarbon" / "real-cpu"


def _rows() -> tuple[list[str], list[dict]]:
    reader = csv.DictReader(io.StringIO((REAL / "emissions.csv").read_text()))
    return list(reader.fieldnames), list(reader)


def _write(path: Path, fields: list[str], rows: list[dict]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue())
    return path


def _metrics(bundle: Path, run_index: int = 0) -> dict:
    _, manifest = read_manifest(bundle)
    return {(m.name, m.scope, m.device): m for m in manifest.runs[run_index].metrics}


def _issues(bundle: Path) -> list:
    _, manifest = read_manifest(bundle)
    return list(manifest.source.issues or [])


def test_the_real_file_was_written_by_codecarbon():
    fields, rows = _rows()
    assert len(rows) == 3 and {row["codecarbon_version"] for row in rows} == {"3.3.2"}
    assert "CPU Tracking Method: cpu_load" in (REAL / "codecarbon.log").read_text()


def test_a_real_codecarbon_file_imports_with_its_estimates_as_modeled(tmp_path):
    import_codecarbon(REAL / "emissions.csv", tmp_path / "out", log=REAL / "codecarbon.log")
    assert validate_bundle(tmp_path / "out", full_jsonschema=True).valid
    _, manifest = read_manifest(tmp_path / "out")
    _, rows = _rows()
    assert [run.run_id for run in manifest.runs] == [row["run_id"] for row in rows]  # one run per row
    assert [d.kind for d in manifest.system.devices] == ["cpu"] and manifest.system.devices[0].model == "AMD EPYC"
    assert manifest.system.hosts[0].memory_bytes == round(float(rows[0]["ram_total_size"]) * 1024**3)
    metrics = _metrics(tmp_path / "out")
    total = metrics[("total_energy", "global", None)]
    assert total.value == pytest.approx(float(rows[0]["energy_consumed"]) * JOULES_PER_KWH, rel=1e-12)
    assert total.method == "modeled"  # a TDP guess and a RAM model: never "measured"
    cpu = metrics[("total_energy", "device", 0)]
    assert cpu.method == "modeled" and "TDP guess" in cpu.note
    assert cpu.value == pytest.approx(float(rows[0]["cpu_energy"]) * JOULES_PER_KWH, rel=1e-12)
    assert metrics[("power_mean", "device", 0)].value == pytest.approx(cpu.value / float(rows[0]["duration"]))
    assert "no GPU was tracked" in total.note  # CodeCarbon's gpu_energy 0 is not written as a reading
    run = manifest.runs[0]
    assert run.ended_at == datetime.fromisoformat(rows[0]["timestamp"]).replace(tzinfo=UTC)
    assert (run.ended_at - run.started_at).total_seconds() == pytest.approx(float(rows[0]["duration"]), abs=1e-5)
    assert (tmp_path / "out/source/emissions.csv").read_bytes() == (REAL / "emissions.csv").read_bytes()
    codes = {issue.code for issue in _issues(tmp_path / "out")}
    assert "assumed-value" in codes and "incomplete-source" not in codes  # the log named the CPU method


def test_without_the_log_the_cpu_is_taken_as_an_estimate_and_said_so(tmp_path):
    import_codecarbon(REAL / "emissions.csv", tmp_path / "out")
    cpu = _metrics(tmp_path / "out")[("total_energy", "device", 0)]
    assert cpu.method == "modeled" and "not recorded in the CSV" in cpu.note
    [missing] = [issue for issue in _issues(tmp_path / "out") if issue.code == "incomplete-source"]
    assert "--log" in missing.message


def _gpu_machine(tmp_path: Path, gpus: int) -> tuple[Path, Path]:
    fields, rows = _rows()
    for row in rows:
        row.update(
            gpu_count=str(gpus), gpu_model=f"{gpus} x NVIDIA H100 80GB HBM3", gpu_energy="0.002", gpu_power="700.0"
        )
        row["energy_consumed"] = repr(float(row["cpu_energy"]) + float(row["ram_energy"]) + 0.002)
    log = tmp_path / "codecarbon.log"
    log.write_text(
        "[codecarbon INFO @ 10:00:00] The below tracking methods have been set up:\n"
        "                RAM Tracking Method: RAM power estimation model\n"
        "                CPU Tracking Method: RAPL\n"
        "                GPU Tracking Method: pynvml\n"
    )
    return _write(tmp_path / "emissions.csv", fields, rows), log


def test_rapl_and_nvml_stay_counters(tmp_path):
    csv_file, log = _gpu_machine(tmp_path, 1)
    import_codecarbon(csv_file, tmp_path / "out", log=log)
    assert validate_bundle(tmp_path / "out").valid
    metrics = _metrics(tmp_path / "out")
    gpu, cpu = metrics[("total_energy", "device", 0)], metrics[("total_energy", "device", 1)]
    assert (gpu.method, cpu.method) == ("counter", "counter")
    assert gpu.value == pytest.approx(0.002 * JOULES_PER_KWH) and "nvmlDeviceGetTotalEnergyConsumption" in gpu.note
    assert "RAPL" in cpu.note
    total = metrics[("total_energy", "global", None)]
    assert total.method == "modeled" and "ram" in total.note  # the RAM part is CodeCarbon's model
    _, manifest = read_manifest(tmp_path / "out")
    assert [d.kind for d in manifest.system.devices] == ["gpu", "cpu"]


def test_several_gpus_are_one_sum_in_the_note(tmp_path):
    csv_file, log = _gpu_machine(tmp_path, 4)
    import_codecarbon(csv_file, tmp_path / "out", log=log)
    assert validate_bundle(tmp_path / "out").valid
    metrics = _metrics(tmp_path / "out")
    assert ("total_energy", "device", 0) not in metrics  # CodeCarbon sums the GPUs: no per-GPU figure
    assert metrics[("total_energy", "device", 4)].method == "counter"  # the CPU, after the four GPUs
    assert f"gpu {0.002 * JOULES_PER_KWH:.6g} J (counter)" in metrics[("total_energy", "global", None)].note


def test_cumulative_rows_of_one_run_are_one_run(tmp_path):
    fields, rows = _rows()
    snapshot = dict(rows[0], duration=str(float(rows[0]["duration"]) / 2), energy_consumed="1e-06")
    csv_file = _write(tmp_path / "emissions.csv", fields, [snapshot, *rows])
    import_codecarbon(csv_file, tmp_path / "out")
    _, manifest = read_manifest(tmp_path / "out")
    assert len(manifest.runs) == 3
    total = _metrics(tmp_path / "out")[("total_energy", "global", None)]
    assert total.value == pytest.approx(float(rows[0]["energy_consumed"]) * JOULES_PER_KWH)  # the longest row
    [repeated] = [issue for issue in _issues(tmp_path / "out") if issue.code == "duplicate-event"]
    assert repeated.line == 3 and "cumulative" in repeated.message


def test_an_empty_or_broken_cell_is_null_with_a_reason(tmp_path):
    fields, rows = _rows()
    rows[0]["cpu_energy"] = ""
    rows[1]["ram_energy"] = "n/a"
    csv_file = _write(tmp_path / "emissions.csv", fields, rows)
    import_codecarbon(csv_file, tmp_path / "out")
    assert validate_bundle(tmp_path / "out").valid
    first, second = (_metrics(tmp_path / "out", index)[("total_energy", "global", None)] for index in (0, 1))
    assert first.value is None and "cpu_energy is empty" in first.unavailable_reason
    assert second.value is None and "ram_energy is empty" in second.unavailable_reason
    [mismatch] = [issue for issue in _issues(tmp_path / "out") if issue.code == "type-mismatch"]
    assert mismatch.line == 3 and mismatch.pointer == "/ram_energy"


def test_the_timestamps_zone_can_be_given(tmp_path):
    import_codecarbon(REAL / "emissions.csv", tmp_path / "paris", timezone_name="Europe/Paris")
    import_codecarbon(REAL / "emissions.csv", tmp_path / "utc")
    paris, utc = (read_manifest(tmp_path / name)[1].runs[0].ended_at for name in ("paris", "utc"))
    assert (utc - paris).total_seconds() == 3600  # December: Paris is UTC+1
    assert not [
        issue
        for issue in _issues(tmp_path / "paris")
        if issue.code == "assumed-value" and "UTC is assumed" in issue.message
    ]


def test_a_log_with_two_cpu_methods_names_none(tmp_path):
    log = tmp_path / "codecarbon.log"
    log.write_text("CPU Tracking Method: RAPL\nCPU Tracking Method: cpu_load\n")
    import_codecarbon(REAL / "emissions.csv", tmp_path / "out", log=log)
    assert _metrics(tmp_path / "out")[("total_energy", "device", 0)].method == "modeled"
    assert any("2 CPU tracking methods" in issue.message for issue in _issues(tmp_path / "out"))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda text: text.replace("cpu_energy,", "cpu_energ,", 1), "header lacks cpu_energy"),
        (lambda text: text.splitlines()[0] + "\n", "no rows"),
        (lambda text: text.replace("2026-12-03T", "yesterday ", 1), "not an ISO date"),
    ],
    ids=["missing-column", "no-rows", "bad-timestamp"],
)
def test_a_broken_file_is_refused_and_leaves_nothing(tmp_path, change, message):
    csv_file = tmp_path / "emissions.csv"
    csv_file.write_text(change((REAL / "emissions.csv").read_text()))
    with pytest.raises(TrainmarkError, match=message):
        import_codecarbon(csv_file, tmp_path / "place" / "out")
    assert not (tmp_path / "place").exists() or list((tmp_path / "place").iterdir()) == []
