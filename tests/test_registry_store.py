"""The registry's store on a real SQLite file and a real PostgreSQL server: submitting, write-once
ids, corrections, duplicate runs, the leaderboard, migrations, and concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import pytest
import trainmark.registry.tables  # noqa: F401  (the metadata the migrations must produce)
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel
from trainmark.registry.api_shared import status_of
from trainmark.registry.database import engine_for, upgrade
from trainmark.registry.intake import submit_archive
from trainmark.registry.store import BoardQuery, QueryInvalid, Store, SubmissionRejected
from trainmark.scorer.score import score_bundle
from trainmark.spec.errors import StoreOutOfDate

from tests.bundles import reseal
from tests.registry_bundles import CPU, archive, variant


def test_migrations_produce_exactly_the_models(registry_url):
    upgrade(registry_url)
    engine = engine_for(registry_url)
    with engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), SQLModel.metadata
        )
    engine.dispose()
    assert differences == []


def test_migrations_go_down_to_nothing_and_up_again(registry_url):
    from alembic import command
    from sqlalchemy import inspect
    from trainmark.registry.database import alembic_config

    upgrade(registry_url)
    command.downgrade(alembic_config(registry_url), "base")
    engine = engine_for(registry_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(registry_url)


def test_an_out_of_date_database_is_refused_with_the_command_that_upgrades_it(registry_url, tmp_path):
    with pytest.raises(StoreOutOfDate, match=r"has no registry schema.*trainmark registry init --db"):
        Store(registry_url, tmp_path / "blobs")
    upgrade(registry_url)
    engine = engine_for(registry_url, writer=True)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0000_older'"))
    engine.dispose()
    with pytest.raises(StoreOutOfDate, match=r"is at schema revision 0000_older.*trainmark registry upgrade --db"):
        Store(registry_url, tmp_path / "blobs")


def test_a_submission_lands_with_its_score_runs_series_and_blobs(store, archives):
    outcome = submit_archive(store, archives["gpu"], None)
    expected = score_bundle(archives["gpu"], full_jsonschema=True)
    assert outcome.created and outcome.id == expected.bundle_id
    assert outcome.score == expected.score and outcome.ranked is expected.ranked
    record = store.get(outcome.id)
    assert record["submission"]["device_model"] == "NVIDIA H100 80GB HBM3"
    assert record["submission"]["device_count"] == 2
    assert record["submission"]["steps_per_second"] == expected.statistics["steps_per_second"].headline
    assert record["submission"]["steps_per_second_low"] == expected.statistics["steps_per_second"].ci95_low
    assert record["score"] == json.loads(json.dumps(expected.as_dict()))
    assert [run["run_id"] for run in record["runs"]] == ["run-1", "run-2", "run-3"]
    kinds = {(item["run_id"], item["kind"]) for item in record["series"]}
    assert {("run-1", "power"), ("run-1", "memory"), ("run-1", "step_time")} <= kinds
    assert all(0 < len(item["points"]) <= 300 for item in record["series"])
    with_null = [metric for run in record["runs"] for metric in run["metrics"] if metric["value"] is None]
    assert all(metric["unavailable_reason"] for metric in with_null)
    # The archive is rebuilt byte for byte from the blobs.
    rebuilt = store.rebuild_archive(outcome.id, Path(store.blobs.root).parent / "download")
    assert rebuilt.read_bytes() == archives["gpu"].read_bytes()


def test_the_same_bundle_twice_is_the_same_submission(store, archives):
    first = submit_archive(store, archives["cpu"], None)
    before = store.counts()
    again = submit_archive(store, archives["cpu"], None)
    assert (again.id, again.created, again.score) == (first.id, False, first.score)
    assert store.counts() == before


def test_a_run_submitted_before_is_reported_on_both_submissions(store, archives):
    original = submit_archive(store, archives["cpu"], None)
    copy = submit_archive(store, archives["cpu-two-runs"], None)
    mine = store.get(copy.id)["registry_findings"]
    theirs = store.get(original.id)["registry_findings"]
    assert {f["code"] for f in mine} == {"duplicate-run"} and len(mine) == 2
    assert all("identical traces" in f["message"] and original.id in f["message"] for f in mine)
    assert len(theirs) == 2 and all(copy.id in f["message"] for f in theirs)


def test_a_correction_supersedes_and_the_board_shows_the_newest(store, archives, tmp_path):
    original = submit_archive(store, archives["cpu"], None)
    fixed = archive(
        variant(CPU, tmp_path / "fixed", supersedes=original.id, description="corrected"), tmp_path / "fixed.tar.gz"
    )
    correction = submit_archive(store, fixed, None)
    board = store.leaderboard(BoardQuery(include_unranked=True))
    assert [row["id"] for row in board.rows] == [correction.id]
    assert store.get(original.id)["submission"]["superseded_by"] == correction.id
    assert store.get(original.id)["submission"]["current"] is False
    again = archive(
        variant(CPU, tmp_path / "again", supersedes=original.id, description="second try"), tmp_path / "again.tar.gz"
    )
    before = store.counts()
    with pytest.raises(SubmissionRejected, match="already superseded") as refused:
        submit_archive(store, again, None)
    assert refused.value.code == "supersedes-superseded" and status_of(refused.value) == 409
    assert store.counts() == before
    unknown = archive(variant(CPU, tmp_path / "unknown", supersedes="0" * 64), tmp_path / "unknown.tar.gz")
    with pytest.raises(SubmissionRejected, match="does not have"):
        submit_archive(store, unknown, None)


def test_only_the_submitting_key_may_supersede(store, archives, tmp_path):
    lab, rival = store.verify_key(store.create_key("lab")), store.verify_key(store.create_key("rival"))
    original = submit_archive(store, archives["cpu"], lab)
    fixed = archive(variant(CPU, tmp_path / "fixed", supersedes=original.id), tmp_path / "fixed.tar.gz")
    with pytest.raises(SubmissionRejected, match="only the key that submitted") as refused:
        submit_archive(store, fixed, rival)
    assert refused.value.code == "supersedes-foreign" and status_of(refused.value) == 403
    assert submit_archive(store, fixed, lab).created


def test_keys_are_stored_hashed_and_checked(store):
    key = store.create_key("a lab")
    assert key.startswith("tmk_") and len(key) > 40
    assert store.verify_key(key) is not None
    assert store.verify_key(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.verify_key(None) is None and store.verify_key("") is None
    from sqlmodel import Session, select
    from trainmark.registry.tables import ApiKey

    with Session(store.engine) as session:
        stored = session.exec(select(ApiKey)).one()
    assert key not in json.dumps(stored.model_dump(), default=str)


def test_the_board_ranks_within_a_workload_by_bound_and_filters(store, archives):
    ids = {
        name: submit_archive(store, archives[name], None).id for name in ("gpu", "cpu", "cpu-two-runs", "cpu-script")
    }
    board = store.leaderboard(BoardQuery(include_unranked=True)).rows
    keys = [(row["workload"], -(row["steps_per_second_low"] or -1e300), -row["score"]) for row in board]
    assert keys == sorted(keys)
    assert [row["workload"] for row in board] == ["gpt2-124m / openwebtext-10k / bf16_autocast"] + [
        "tiny / trainmark-sample-text / fp32"
    ] * 3
    assert {row["provenance"] for row in board} == {"declared"}
    trust = store.leaderboard(BoardQuery(sort="trust", include_unranked=True)).rows
    assert [(row["trust_sort"] if "trust_sort" in row else 1) for row in trust] == [1] * 4
    assert {row["id"] for row in board} == set(ids.values())
    gpu_only = store.leaderboard(BoardQuery(device_model="NVIDIA H100 80GB HBM3", include_unranked=True)).rows
    assert [row["id"] for row in gpu_only] == [ids["gpu"]]
    assert [row["id"] for row in store.leaderboard(BoardQuery(device_count=2, include_unranked=True)).rows] == [
        ids["gpu"]
    ]
    assert {row["id"] for row in store.leaderboard(BoardQuery(precision="fp32", include_unranked=True)).rows} == {
        ids["cpu"],
        ids["cpu-two-runs"],
        ids["cpu-script"],
    }
    assert [row["id"] for row in store.leaderboard(BoardQuery(parameters_min=1e8, include_unranked=True)).rows] == [
        ids["gpu"]
    ]
    assert [row["id"] for row in store.leaderboard(BoardQuery(submitter="Lab Two", include_unranked=True)).rows] == [
        ids["cpu-two-runs"]
    ]
    energy = store.leaderboard(BoardQuery(metric="energy_per_step", include_unranked=True)).rows
    assert energy[0]["energy_per_step"] is not None or energy[0]["score"] > energy[1]["score"]


@pytest.mark.parametrize("sort", ["rank", "score", "trust", "created_at", "submitter"])
def test_cursor_pages_cover_the_board_once(store, archives, sort):
    for name in ("gpu", "cpu", "cpu-two-runs", "cpu-script"):
        submit_archive(store, archives[name], None)
    whole = [row["id"] for row in store.leaderboard(BoardQuery(sort=sort, include_unranked=True)).rows]
    seen, cursor = [], None
    while True:
        page = store.leaderboard(BoardQuery(sort=sort, include_unranked=True, limit=1, cursor=cursor))
        seen += [row["id"] for row in page.rows]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == whole and len(seen) == 4


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(sort="id; DROP TABLE submission"), "sort must be one of"),
        (dict(metric="score"), "metric must be one of"),
        (dict(precision="fp32' OR '1'='1"), "precision must be one of"),
        (dict(submitter="x'; DROP TABLE submission; --"), "submitter may hold"),
        (dict(device_model="A100\x00"), "device_model may hold"),
        (dict(limit=1000), "limit must be between"),
        (dict(parameters_min=float("nan")), "finite"),
    ],
)
def test_bad_queries_are_refused(change, message):
    with pytest.raises(QueryInvalid, match=message):
        BoardQuery(**change)


@pytest.mark.parametrize("cursor", ["not-a-cursor!", "WyJ4Il0", "eyJhIjogMX0"])
def test_a_cursor_the_registry_did_not_give_out_is_refused(store, cursor):
    with pytest.raises(QueryInvalid, match="cursor"):
        store.leaderboard(BoardQuery(cursor=cursor))


def test_a_run_with_other_traces_but_the_same_start_and_values_is_a_duplicate(store, archives, tmp_path):
    relabelled = variant(CPU, tmp_path / "relabelled", submitter="Relabelled")
    kernels = relabelled / "runs/run-1/kernels.json"
    kernels.write_text(kernels.read_text().replace('"torch.profiler 2.13.0"', '"torch.profiler 2.13.0 (copied)"'))
    reseal(relabelled)
    original = submit_archive(store, archives["cpu"], None)
    copy = submit_archive(store, archive(relabelled, tmp_path / "relabelled.tar.gz"), None)
    messages = {f["pointer"]: f["message"] for f in store.get(copy.id)["registry_findings"]}
    first, second = messages["manifest.json#/runs/0"], messages["manifest.json#/runs/1"]
    assert "the same start time and values as run run-1 of submission " + original.id in first
    assert "identical traces as run run-2" in second
    runs = [run["run_id"] for run in json.loads((CPU / "manifest.json").read_text())["runs"]]
    for finding in store.get(original.id)["registry_findings"]:  # "run run-k has ... as run ... of submission ..."
        assert finding["pointer"] == f"manifest.json#/runs/{runs.index(finding['message'].split()[1])}"


def test_runs_submitted_at_the_same_moment_still_find_each_other(store, archives):
    # The first writer is held between its duplicate check and its commit while the second
    # submits a bundle with the same runs; the second must still see the first's runs.
    inside, release = threading.Event(), threading.Event()
    audit = store.audit

    def held_audit(session, action, key_id, submission_id, detail=None):
        if not inside.is_set():
            inside.set()
            assert release.wait(timeout=60)
        audit(session, action, key_id, submission_id, detail)

    store.audit = held_audit
    outcomes, errors = [], []
    first = threading.Thread(target=_submit_in_thread, args=(store, archives["cpu"], outcomes, errors))
    first.start()
    assert inside.wait(timeout=120)
    second = threading.Thread(target=_submit_in_thread, args=(store, archives["cpu-two-runs"], outcomes, errors))
    second.start()
    second.join(timeout=2)  # long enough to reach its duplicate check, or to wait on the first
    release.set()
    first.join()
    second.join()
    assert errors == [] and len(outcomes) == 2
    findings = {submission: store.get(submission)["registry_findings"] for submission in outcomes}
    assert [len(found) for found in findings.values()] == [2, 2]
    assert all(f["code"] == "duplicate-run" for found in findings.values() for f in found)


def test_every_store_on_one_database_shares_a_key_s_allowance(registry_url, tmp_path):
    # Two stores on one database stand for two server processes behind one proxy.
    upgrade(registry_url)
    first, second = Store(registry_url, tmp_path / "blobs"), Store(registry_url, tmp_path / "blobs")
    key_id, other_id = first.verify_key(first.create_key("lab")), first.verify_key(first.create_key("other"))
    start = 1_800_000_000.0
    assert [store.take_submission(key_id, 2, now=start) for store in (first, second)] == [0.0, 0.0]
    assert first.take_submission(key_id, 2, now=start) == pytest.approx(30.0)  # one token refills in 30 s
    assert second.take_submission(other_id, 2, now=start) == 0.0  # each key has its own
    assert second.take_submission(key_id, 2, now=start + 15) == pytest.approx(15.0)
    assert first.take_submission(key_id, 2, now=start + 30) == 0.0
    assert first.take_submission(key_id, 2, now=start - 3600) > 0  # a clock set back refills nothing
    first.close()
    second.close()


def _take_in_process(url: str, blobs: str, key_id: int, now: float, queue) -> None:
    store = Store(url, Path(blobs))
    queue.put(store.take_submission(key_id, 5, now=now))
    store.close()


@pytest.mark.slow  # spawns 8 Python processes, each importing the registry
def test_simultaneous_processes_never_take_more_than_the_allowance(registry_url, tmp_path):
    upgrade(registry_url)
    store = Store(registry_url, tmp_path / "blobs")
    key_id = store.verify_key(store.create_key("busy"))
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    arguments = (registry_url, str(tmp_path / "blobs"), key_id, 1_800_000_000.0, queue)
    workers = [context.Process(target=_take_in_process, args=arguments) for _ in range(8)]
    for worker in workers:
        worker.start()
    waits = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(waits)[:5] == [0.0] * 5 and all(wait > 0 for wait in sorted(waits)[5:])
    store.close()


def test_quotes_in_a_filter_are_data_not_sql(store, archives, tmp_path):
    name = "O'Brien & Co. (lab #2)"
    submit_archive(store, archive(variant(CPU, tmp_path / "quote", submitter=name), tmp_path / "quote.tar.gz"), None)
    rows = store.leaderboard(BoardQuery(submitter=name, include_unranked=True)).rows
    assert [row["submitter"] for row in rows] == [name]


def _submit_in_thread(store: Store, path: Path, outcomes: list, errors: list) -> None:
    try:
        outcomes.append(submit_archive(store, path, None).id)
    except Exception as error:  # noqa: BLE001 (the test reports every failure)
        errors.append(repr(error))


def test_concurrent_submissions_from_threads(store, archives, tmp_path):
    paths = [archives[name] for name in ("gpu", "cpu", "cpu-two-runs", "cpu-script")] * 2
    outcomes, errors = [], []
    threads = [threading.Thread(target=_submit_in_thread, args=(store, path, outcomes, errors)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(outcomes) == 8 and len(set(outcomes)) == 4
    assert store.counts()["submission"] == 4


def _submit_in_process(url: str, blobs: str, path: str, queue) -> None:
    try:
        store = Store(url, Path(blobs))
        queue.put(("ok", submit_archive(store, Path(path), None).id))
        store.close()
    except Exception as error:  # noqa: BLE001
        queue.put(("error", repr(error)))


@pytest.mark.slow  # spawns 6 Python processes, each importing the registry and scoring
def test_concurrent_submissions_from_processes(registry_url, archives, tmp_path):
    upgrade(registry_url)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    names = ["gpu", "cpu", "cpu-two-runs", "cpu-script", "gpu", "cpu"]
    workers = [
        context.Process(
            target=_submit_in_process, args=(registry_url, str(tmp_path / "blobs"), str(archives[name]), queue)
        )
        for name in names
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert [kind for kind, _ in results if kind == "error"] == [], results
    assert len({value for _, value in results}) == 4
    store = Store(registry_url, tmp_path / "blobs")
    assert store.counts()["submission"] == 4
    store.close()


def test_a_too_good_bundle_does_not_outrank_the_honest_one_on_the_board(store, tmp_path):
    """Issue 14: the too-good ones rank below the honest bundle. Every step exactly 70.0 ms gives a
    zero-width interval whose bound (14.29 steps/s) is above the honest bundle's (13.33): ranked by it,
    the fabrication would come first in its workload."""
    from tests.test_adversarial import _submitted, honest_without_sensors, identical_steps

    honest, regular = _submitted(tmp_path / "honest"), _submitted(tmp_path / "regular")
    honest_without_sensors(honest)
    identical_steps(regular)
    ids = {
        name: submit_archive(store, archive(root, tmp_path / f"{name}.tar.gz")).id
        for name, root in (("regular", regular), ("honest", honest))
    }
    rows = store.leaderboard(BoardQuery()).rows
    assert [row["id"] for row in rows] == [ids["honest"], ids["regular"]]
    fabricated = rows[1]
    assert fabricated["steps_per_second_low"] > rows[0]["steps_per_second_low"]  # shown, not believed
    assert fabricated["score"] < rows[0]["score"]


def test_a_file_that_changes_after_validation_is_refused_and_nothing_is_stored(store, tmp_path, monkeypatch):
    """A bundle directory handed to the store as it is (trainmark submit DIR --db) may still be written
    to; a file whose bytes changed after it was validated is refused, with no blob, archive or row left."""
    from trainmark.registry import store as store_module

    root = variant(CPU, tmp_path / "bundle")
    steps = next(root.glob("runs/*/steps*.jsonl"))
    real_score = store_module.score_bundle

    def score_then_write(path, *args, **kwargs):
        report = real_score(path, *args, **kwargs)
        steps.write_bytes(steps.read_bytes() + b"\n")  # the writer appends after validation
        return report

    monkeypatch.setattr(store_module, "score_bundle", score_then_write)
    before = {path for path in store.blobs.root.rglob("*") if path.is_file()}
    with pytest.raises(SubmissionRejected, match="changed while it was being stored") as refused:
        store.submit(root)
    assert refused.value.code == "bundle-changed"
    assert store.counts()["submission"] == 0
    assert {path for path in store.blobs.root.rglob("*") if path.is_file()} == before
