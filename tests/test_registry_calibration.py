"""Registry-held calibrations (rubric r2's Calibrated badge): the registry computes the verdict from the
raw readings it is given, refuses a document that states its own, and awards Calibrated only to a ranked
bundle whose devices a held, passing calibration covers exactly. Over real HTTP on loopback, against
real SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
import re

import httpx
import pytest
from trainmark.registry.calibrations import CalibrationInvalid, recompute
from trainmark.registry.client import RegistryError, post_calibration
from trainmark.registry.intake import submit_archive
from trainmark.registry.store import RegistryLimits
from trainmark.scorer.provenance import devices_match
from trainmark.spec import models

from tests.live_server import served_registry
from tests.registry_bundles import CPU, GPU, archive, variant

H100 = "NVIDIA H100 80GB HBM3"
GPU_DEVICES = [  # the GPU example's two devices, as it declares them
    {"vendor": "NVIDIA", "model": H100, "uuid": "GPU-8b938a01-6c01"},
    {"vendor": "NVIDIA", "model": H100, "uuid": "GPU-aee77262-6ec0"},
]
T_975_2 = 4.302652729911275  # Student-t 97.5 % quantile, 2 degrees of freedom


def calibration(devices=GPU_DEVICES, measured=(41.1, 40.9, 41.0), **extra) -> dict:
    return {
        "devices": devices,
        "configuration": "gpt2-124m calibration (digest 3f2a9c)",
        "metrics": {"steps_per_second": {"unit": "{step}/s", "reference": [41.2, 41.0, 40.8], "measured": [*measured]}},
        **extra,
    }


def test_the_verdict_is_computed_from_the_readings():
    passing = recompute(calibration())
    [deviation] = passing.deviations
    half = T_975_2 * 0.2 / math.sqrt(3)  # both sides: standard deviation 0.2 (reference) and 0.1 (measured)
    assert deviation["reference_mean"] == pytest.approx(41.0)
    assert deviation["reference_half_width"] == pytest.approx(half)
    assert deviation["measured_half_width"] == pytest.approx(half / 2)
    assert deviation["deviation_percent"] == pytest.approx(0.0, abs=1e-9)
    assert deviation["margin_percent"] == pytest.approx(math.hypot(half, half / 2) / 41.0 * 100)
    assert passing.passed
    slow = recompute(calibration(measured=(36.9, 37.0, 37.1)))  # 9.76 % slower, margin 1.5 %
    assert slow.deviations[0]["deviation_percent"] == pytest.approx(-4.0 / 41.0 * 100)
    assert not slow.passed
    assert recompute(calibration()).id == passing.id != slow.id  # named by its content


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (calibration(within_margin=True), "not a verdict"),
        (calibration(deviations=[]), "not a verdict"),
        (calibration(measured=(41.0,)), "/metrics/steps_per_second/measured must be a list of 2"),
        (calibration(measured=(41.0, float("nan"))), "/metrics/steps_per_second/measured/1 must be a finite"),
        (calibration(devices=[]), "/devices must list 1"),
        (calibration(devices=[{"vendor": "NVIDIA"}]), "/devices/0/model must be non-empty text"),
        ({**calibration(), "metrics": {"speed": {}}}, "/metrics/speed: not a metric of the standard"),
        ([1, 2], "a calibration is a JSON object"),
    ],
    ids=[
        "stated-verdict",
        "stated-deviations",
        "one-reading",
        "nan",
        "no-devices",
        "no-model",
        "unknown-metric",
        "list",
    ],
)
def test_a_document_that_is_not_a_calibration_is_refused_saying_where(document, words):
    with pytest.raises(CalibrationInvalid, match=re.escape(words)):
        recompute(document)


def _device(vendor: str, model: str, uuid: str | None = None, index: int = 0) -> models.Device:
    return models.Device(index=index, node=0, kind="gpu", vendor=vendor, model=model, uuid=uuid)


def test_a_calibration_covers_exactly_the_devices_it_names():
    bundle = [_device("NVIDIA", H100, "GPU-a", 0), _device("NVIDIA", H100, "GPU-b", 1)]
    by_uuid = [
        {"vendor": "NVIDIA", "model": H100, "uuid": "GPU-b"},
        {"vendor": "NVIDIA", "model": H100, "uuid": "GPU-a"},
    ]
    by_model = [{"vendor": "NVIDIA", "model": H100}] * 2
    assert devices_match(bundle, by_uuid) and devices_match(bundle, by_model)
    assert not devices_match(bundle, [by_uuid[0], {"vendor": "NVIDIA", "model": H100, "uuid": "GPU-c"}])  # other card
    assert not devices_match(bundle, by_model[:1])  # one device of two
    assert not devices_match(bundle, [{"vendor": "NVIDIA", "model": "NVIDIA A100-SXM4-80GB"}] * 2)
    assert not devices_match([_device("NVIDIA", H100), _device("NVIDIA", H100, index=1)], by_uuid)  # no uuid declared


@pytest.fixture
def served(registry_at_head, tmp_path):
    with served_registry(registry_at_head, tmp_path / "blobs", RegistryLimits()) as registry:
        yield registry


def _gpu_bundle(tmp_path, name: str):
    return archive(variant(GPU, tmp_path / name, submitter=name), tmp_path / f"{name}.tar.gz")


def test_calibrated_only_from_a_held_passing_calibration_of_the_same_devices(served, tmp_path):
    url, store, key = served
    before = submit_archive(store, _gpu_bundle(tmp_path, "before"))
    assert before.ranked
    row = store.get(before.id)["submission"]
    assert "Calibrated" not in row["badges"]  # nothing held yet: the bundle's own say earns nothing

    refused = httpx.post(f"{url}/api/v1/calibrations", json=calibration(within_margin=True), headers=_auth(key))
    assert refused.status_code == 422 and refused.json()["code"] == "calibration-invalid"
    assert "not a verdict" in refused.json()["error"]
    assert httpx.post(f"{url}/api/v1/calibrations", json=calibration()).status_code == 401
    with pytest.raises(RegistryError, match="answered 422: .*not a verdict"):
        post_calibration(url, key, calibration(within_margin=True))

    status, held = post_calibration(url, key, calibration())
    assert status == 201 and held["passed"] and held["device_summary"] == f"2 x {H100}"
    assert held["deviations"][0]["within_margin"] is True
    assert post_calibration(url, key, calibration())[0] == 200  # the same calibration again
    listed = httpx.get(f"{url}/api/v1/calibrations").json()["calibrations"]
    assert [entry["id"] for entry in listed] == [held["id"]]
    assert httpx.get(f"{url}/api/v1/calibrations/{held['id']}").json()["metrics"] == calibration()["metrics"]

    after = submit_archive(store, _gpu_bundle(tmp_path, "after"))
    row = httpx.get(f"{url}/api/v1/submissions/{after.id}").json()
    assert "Calibrated" in row["submission"]["badges"]
    assert row["submission"]["badges"] == row["score"]["badges"]
    [finding] = [f for f in row["score"]["findings"] if f["code"] == "calibration-held"]
    assert held["id"][:16] in finding["message"]
    # The earlier submission earns it when rescored, under the calibration now held.
    store.rescore()
    assert "Calibrated" in store.get(before.id)["submission"]["badges"]


def test_a_failing_or_foreign_calibration_earns_nothing(served, tmp_path):
    url, store, key = served
    other_cards = [{**device, "uuid": device["uuid"] + "-other"} for device in GPU_DEVICES]
    assert post_calibration(url, key, calibration(devices=other_cards))[1]["passed"]
    foreign = submit_archive(store, _gpu_bundle(tmp_path, "foreign"))
    report = store.get(foreign.id)
    assert "Calibrated" not in report["submission"]["badges"]
    assert not [f for f in report["score"]["findings"] if f["code"].startswith("calibration-h")]

    status, failing = post_calibration(url, key, calibration(measured=(36.9, 37.0, 37.1)))
    assert status == 201 and not failing["passed"]
    slow = submit_archive(store, _gpu_bundle(tmp_path, "slow"))
    report = store.get(slow.id)
    assert "Calibrated" not in report["submission"]["badges"]
    [finding] = [f for f in report["score"]["findings"] if f["code"] == "calibration-failed"]
    assert "steps_per_second outside the margin" in finding["message"]


def test_calibrations_from_the_command_line(registry_url, tmp_path):
    from tests.test_registry_cli import trainmark

    env = {"TRAINMARK_DB": registry_url, "TRAINMARK_BLOBS": str(tmp_path / "blobs")}
    trainmark("registry", "init", env=env)
    document = tmp_path / "calibration.json"
    document.write_text(json.dumps(calibration()))
    held = json.loads(trainmark("registry", "calibration", "add", str(document), "--json", env=env).stdout)
    assert held["passed"]
    listed = json.loads(trainmark("registry", "calibration", "list", "--json", env=env).stdout)
    assert [entry["id"] for entry in listed] == [held["id"]]
    document.write_text(json.dumps(calibration(within_margin=False)))
    refused = trainmark("registry", "calibration", "add", str(document), env=env, check=False)
    assert refused.returncode == 1 and "not a verdict" in refused.stderr

    # From two bundles of one configuration: the CPU example's runs as reference and as measured.
    reference, measured = variant(CPU, tmp_path / "reference"), variant(CPU, tmp_path / "measured", submitter="Lab")
    made = json.loads(
        trainmark(
            "registry",
            "calibration",
            "add",
            "--reference",
            str(reference),
            "--measured",
            str(measured),
            "--json",
            env=env,
        ).stdout
    )
    assert made["devices"] == [{"vendor": "AMD", "model": "AMD EPYC 7B13"}] and made["passed"]
    assert {d["name"] for d in made["deviations"]} >= {"steps_per_second", "time_per_step"}
    assert all(d["deviation_percent"] == 0 for d in made["deviations"])  # the same runs on both sides
    trainmark("submit", str(measured), env=env)
    [row] = json.loads(trainmark("leaderboard", "--json", "--workload", made["configuration"], env=env).stdout)
    assert "Calibrated" in row["badges"]


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_a_calibration_upload_that_is_not_json_or_too_large_is_refused(served):
    url, store, key = served
    not_json = httpx.post(f"{url}/api/v1/calibrations", content=b"{devices", headers=_auth(key))
    assert not_json.status_code == 422 and not_json.json()["code"] == "calibration-invalid"
    huge = httpx.post(f"{url}/api/v1/calibrations", content=b" " * (5 * 1024 * 1024), headers=_auth(key), timeout=60)
    assert huge.status_code == 413
    assert httpx.get(f"{url}/api/v1/calibrations").json() == {"calibrations": []}
    assert httpx.get(f"{url}/api/v1/calibrations/{'0' * 64}").status_code == 404
