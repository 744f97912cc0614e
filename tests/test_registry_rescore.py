"""`trainmark registry rescore`: every submission scored again under the current rubric, the
reports of earlier rubrics kept (real SQLite file and real PostgreSQL server)."""

from __future__ import annotations

import json

from sqlmodel import Session, select

from trainmark.registry.tables import ScoreRecord, Submission
from trainmark.scorer.score import score_bundle


def test_rescore_moves_every_submission_to_the_current_rubric_and_keeps_the_old_report(store, archives):
    outcome = store.submit(archives["gpu"])
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
    assert change == {"id": outcome.id, "old": {"rubric_version": "r1", "score": r1.score, "ranked": True},
                      "new": {"rubric_version": "r2", "score": r2.score, "ranked": r2.ranked}}
    with Session(store.engine) as session:
        versions = sorted(r.rubric_version for r in session.exec(
            select(ScoreRecord).where(ScoreRecord.submission_id == outcome.id)).all())
        row = session.get(Submission, outcome.id)
    assert versions == ["r1", "r2"] and (row.rubric_version, row.score) == ("r2", r2.score)


def test_a_synthetic_bundle_is_stored_but_never_ranked(store, archives):
    from trainmark.registry.store import BoardQuery

    outcome = store.submit(archives["gpu-synthetic"])
    assert outcome.ranked is False
    assert outcome.id not in {row["id"] for row in store.leaderboard(BoardQuery()).rows}
    document = store.get(outcome.id)["score"]
    assert document["rubric_version"] == "r2" and store.get(outcome.id)["submission"]["rubric_version"] == "r2"
    assert document["provenance"] == "synthetic" and document["badges"] == []
    assert any("synthetic" in reason for reason in document["not_ranked_because"])
