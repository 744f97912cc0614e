"""`trainmark registry rescore`: every submission scored again under the current rubric, the
reports of earlier rubrics kept (real SQLite file and real PostgreSQL server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, select
from trainmark.registry.intake import submit_archive
from trainmark.registry.store import SubmissionRejected
from trainmark.registry.tables import ScoreRecord, Submission
from trainmark.scorer.score import score_bundle
from trainmark.scorer.units import human


def test_rescore_moves_every_submission_to_the_current_rubric_and_keeps_the_old_report(store, archives):
    outcome = submit_archive(store, archives["gpu"])
    with Session(store.write_engine) as session:  # as a registry that scored under r1 would hold it
        row = session.get(Submission, outcome.id)
        record = session.get(ScoreRecord, (outcome.id, row.rubric_version))
        r1 = score_bundle(archives["gpu"], "r1", full_jsonschema=True)
        session.delete(record)
        session.add(ScoreRecord(submission_id=outcome.id, rubric_version="r1", report=json.dumps(r1.as_dict())))
        row.rubric_version, row.score = "r1", r1.score
        session.add(row)
        session.commit()
    [change] = store.rescore()
    r2 = score_bundle(archives["gpu"], "r2", full_jsonschema=True)
    assert change == {
        "id": outcome.id,
        "old": {"rubric_version": "r1", "score": r1.score, "ranked": True},
        "new": {"rubric_version": "r2", "score": r2.score, "ranked": r2.ranked},
    }
    with Session(store.engine) as session:
        versions = sorted(
            r.rubric_version
            for r in session.exec(select(ScoreRecord).where(ScoreRecord.submission_id == outcome.id)).all()
        )
        row = session.get(Submission, outcome.id)
    assert versions == ["r1", "r2"] and (row.rubric_version, row.score) == ("r2", r2.score)


def test_a_synthetic_bundle_is_stored_but_never_ranked(store, tmp_path):
    from trainmark.registry.store import BoardQuery

    from tests.registry_bundles import GPU, archive

    outcome = submit_archive(store, archive(GPU, tmp_path / "gpu-synthetic.tar.gz"))  # the example as it is
    assert outcome.ranked is False
    assert outcome.id not in {row["id"] for row in store.leaderboard(BoardQuery()).rows}
    document = store.get(outcome.id)["score"]
    assert document["rubric_version"] == "r2" and store.get(outcome.id)["submission"]["rubric_version"] == "r2"
    assert document["provenance"] == "synthetic" and document["badges"] == []
    assert any("synthetic" in reason for reason in document["not_ranked_because"])
    [row] = [row for row in store.export() if row["id"] == outcome.id]  # what the CSV and JSON Lines export
    assert row["ranked"] is False and row["not_ranked_because"].startswith(
        "provenance: the bundle says it is synthetic"
    )


def test_a_run_resubmitted_shifted_in_time_is_a_duplicate_across_the_registry(store, archives, tmp_path):
    from datetime import datetime, timedelta

    from tests.bundles import edit_manifest, reseal
    from tests.registry_bundles import GPU, archive, variant

    day_ns = 86_400 * 10**9
    root = variant(GPU, tmp_path / "shifted", submitter="Another Lab")
    for path in sorted(root.glob("runs/*/*.jsonl")):
        lines = []
        for line in path.read_text().splitlines():
            record = json.loads(line)
            for key in ("time_unix_ns", "start_unix_ns"):
                if key in record:
                    record[key] += day_ns
            lines.append(json.dumps(record, separators=(",", ":")))
        path.write_text("\n".join(lines) + "\n")

    def later(text: str) -> str:
        return (datetime.fromisoformat(text.replace("Z", "+00:00")) + timedelta(days=1)).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        )

    def shift(manifest):
        manifest["created_at"] = later(manifest["created_at"])
        for run in manifest["runs"]:
            run.update(started_at=later(run["started_at"]), ended_at=later(run["ended_at"]))

    edit_manifest(root, shift)
    reseal(root)
    original = submit_archive(store, archives["gpu"])
    copy = submit_archive(store, archive(root, tmp_path / "shifted.tar.gz"))
    assert copy.id != original.id and copy.ranked
    for bundle_id in (original.id, copy.id):
        messages = [f["message"] for f in store.get(bundle_id)["registry_findings"] if f["code"] == "duplicate-run"]
        assert len(messages) == 3 and all(
            "the same trace content once time offsets are removed" in m for m in messages
        ), messages


@pytest.fixture(scope="module")
def lenovo(tmp_path_factory):
    """The real Lenovo MLPerf set, imported as a bundle."""
    from trainmark.spec.importers.mlperf import import_mlperf

    from tests.bundles import MLPERF_DATA

    out = tmp_path_factory.mktemp("mlperf") / "lenovo"
    import_mlperf(MLPERF_DATA / "lenovo_v5.0_llama2_70b_lora", out)
    return out


def test_an_import_is_verified_against_its_kept_sources(store, lenovo, tmp_path):
    from tests.bundles import copy_bundle, edit_manifest
    from tests.registry_bundles import archive

    outcome = submit_archive(store, archive(lenovo, tmp_path / "lenovo.tar.gz"))
    row = store.get(outcome.id)["submission"]
    assert outcome.ranked and row["provenance"] == "imported"
    assert row["workload"] == "llama2_70b_lora / " + row["workload"].split(" / ")[1] + " / undeclared"
    assert row["time_to_train"] > 0 and row["energy_to_train"] > 0

    # the board page shows what an MLPerf result is judged by where steps/s is not measured
    import httpx
    from trainmark.registry.api import create_app

    from tests.live_server import LiveServer

    with LiveServer(create_app(store)) as server:
        page = httpx.get(server.url + "/").text
    assert '<span class="absent">not measured</span>' in page
    assert f"time to train {human(row['time_to_train'], 's')}, energy {human(row['energy_to_train'], 'J')}" in page

    forged = copy_bundle(lenovo, tmp_path / "forged")
    edit_manifest(forged, lambda m: m["system"].update(system_name="a faster system"))
    with pytest.raises(SubmissionRejected, match=r"differs from what trainmark import mlperf gives .* in /system"):
        submit_archive(store, archive(forged, tmp_path / "forged.tar.gz"))


def test_page_ranks_start_again_with_each_workload_and_carry_over_pages():
    from trainmark.registry.api_board import board_ranks as _ranks
    from trainmark.registry.store import BoardQuery

    def row(workload, low, score=0.5, ranked=True):
        return {"workload": workload, "steps_per_second_low": low, "score": score, "ranked": ranked}

    page = [row("a", 3.0), row("a", 2.0), row("a", 2.0), row("b", 9.0), row("b", 1.0, ranked=False)]
    assert _ranks(page, BoardQuery(), 1) == (["1", "2=", "2=", "1", "–"], 2)
    # a page that starts in the middle of workload b goes on from where the last page stopped
    assert _ranks([row("b", 0.5), row("c", 4.0)], BoardQuery(), 2) == (["2", "1"], 2)


@pytest.mark.parametrize(
    ("zone", "log"), [(None, True), ("Europe/Paris", False)], ids=["utc-assumed-with-log", "paris-without-log"]
)
def test_a_codecarbon_import_is_verified_against_its_kept_sources(store, tmp_path, zone, log):
    from trainmark.spec.importers.codecarbon import import_codecarbon

    from tests.bundles import copy_bundle, edit_manifest
    from tests.registry_bundles import archive

    real = Path(__file__).parent / "data" / "codecarbon" / "real-cpu"
    out = tmp_path / "codecarbon"
    import_codecarbon(real / "emissions.csv", out, log=real / "codecarbon.log" if log else None, timezone_name=zone)
    outcome = submit_archive(store, archive(out, tmp_path / "codecarbon.tar.gz"))
    assert store.get(outcome.id)["submission"]["provenance"] == "imported"  # verified: imported again, the same

    forged = copy_bundle(out, tmp_path / "forged")

    def halve_energy(manifest):
        for metric in manifest["runs"][0]["metrics"]:
            if metric["name"] == "total_energy" and metric["value"] is not None:
                metric["value"] /= 2

    edit_manifest(forged, halve_energy)
    with pytest.raises(SubmissionRejected, match=r"differs from what trainmark import codecarbon gives .* in /runs"):
        submit_archive(store, archive(forged, tmp_path / "forged.tar.gz"))
