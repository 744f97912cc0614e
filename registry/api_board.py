"""The leaderboard: one page of it as JSON, the whole board as CSV and JSON Lines, and the public
pages (the board and one submission), server-rendered without JavaScript."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from markupsafe import Markup
from trainmark.registry.api_shared import (
    BOARD_PARAMETERS,
    METRIC_LABELS,
    ApiRefusal,
    RegistryDep,
    board_query,
    form_float,
    form_int,
    unknown_parameters,
)
from trainmark.registry.store import EFFICIENCY_METRICS, MAX_PAGE, PRECISIONS, SORTS, BoardQuery, QueryInvalid
from trainmark.scorer.plots import overlaid_plots

CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EXPORT_COLUMNS = (
    "id",
    "submitter",
    "model_name",
    "parameters",
    "device_model",
    "device_count",
    "precision",
    "run_count",
    "ranked",
    "score",
    "fidelity",
    "completeness",
    "confidence",
    "badges",
    "missing",
    "steps_per_second",
    "steps_per_second_low",
    "flops_per_joule",
    "flops_per_joule_low",
    "energy_per_step",
    "energy_per_step_high",
    "created_at",
    "supersedes",
    "schema_version",
    "producer",
    "workload",
    "provenance",
    "rubric_version",
    "time_to_train",
    "energy_to_train",
    "not_ranked_because",
)
EXPORT_PARAMETERS = {"workload"}

api = APIRouter(tags=["leaderboard"])
pages = APIRouter(include_in_schema=False)


def csv_cell(value: Any) -> str:
    """A value for a spreadsheet: text that a spreadsheet would run as a formula gets a leading quote."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(value)
    text = str(value)
    if isinstance(value, str) and text.startswith(CSV_FORMULA_START):
        return "'" + text
    return text


@api.get("/api/v1/leaderboard", summary="One page of the leaderboard")
async def leaderboard(
    served: RegistryDep,
    request: Request,
    metric: Annotated[
        str, Query(description=f"efficiency metric: {', '.join(EFFICIENCY_METRICS)}")
    ] = "steps_per_second",
    sort: Annotated[str, Query(description=f"one of {', '.join(SORTS)}")] = "rank",
    workload: Annotated[
        str | None, Query(description="only this workload (model / dataset or benchmark / precision), as rows show it")
    ] = None,
    device_model: str | None = None,
    device_count: int | None = None,
    precision: Annotated[str | None, Query(description=f"one of {', '.join(PRECISIONS)}")] = None,
    parameters_min: float | None = None,
    parameters_max: float | None = None,
    submitter: str | None = None,
    include_unranked: bool = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    cursor: str | None = None,
):
    unknown = unknown_parameters(request, BOARD_PARAMETERS)
    if unknown:
        raise ApiRefusal(400, unknown)
    try:
        query = board_query(
            metric,
            sort,
            workload,
            device_model,
            device_count,
            precision,
            parameters_min,
            parameters_max,
            submitter,
            include_unranked,
            limit,
            cursor,
        )
        board = await run_in_threadpool(served.store.leaderboard, query)
    except QueryInvalid as invalid:
        raise ApiRefusal(400, str(invalid)) from None
    return {"rows": board.rows, "next_cursor": board.next_cursor}


def _export_workload(request: Request, workload: str | None) -> str | None:
    unknown = unknown_parameters(request, EXPORT_PARAMETERS)
    if unknown:
        raise ApiRefusal(400, unknown)
    try:
        BoardQuery(workload=workload or None)  # validated as the board validates it
    except QueryInvalid as invalid:
        raise ApiRefusal(400, str(invalid)) from None
    return workload or None


@api.get("/export.csv", summary="The whole board as CSV (formula-safe); ?workload= for one workload")
def export_csv(served: RegistryDep, request: Request, workload: str | None = None):
    chosen = _export_workload(request, workload)

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(EXPORT_COLUMNS)
        for row in served.store.export(chosen):
            writer.writerow([csv_cell(row.get(column)) for column in EXPORT_COLUMNS])
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="trainmark-board.csv"'},
    )


@api.get("/export.jsonl", summary="The whole board as JSON Lines; ?workload= for one workload")
def export_jsonl(served: RegistryDep, request: Request, workload: str | None = None):
    chosen = _export_workload(request, workload)
    return StreamingResponse(
        (json.dumps(row) + "\n" for row in served.store.export(chosen)), media_type="application/x-ndjson"
    )


@pages.get("/favicon.ico")
async def favicon():
    return Response(status_code=204)


@pages.get("/", response_class=HTMLResponse)
async def board_page(
    request: Request,
    served: RegistryDep,
    metric: str = "steps_per_second",
    sort: str = "rank",
    workload: str | None = None,
    device_model: str | None = None,
    device_count: str | None = None,
    precision: str | None = None,
    parameters_min: str | None = None,
    parameters_max: str | None = None,
    submitter: str | None = None,
    include_unranked: bool = False,
    limit: int = 25,
    cursor: str | None = None,
    first: int = 1,
):
    store = served.store
    form = dict(request.query_params)
    common = {"form": form, "metrics": METRIC_LABELS, "sorts": SORTS, "precisions": PRECISIONS}
    try:
        unknown = unknown_parameters(request, BOARD_PARAMETERS | {"first"})
        if unknown:
            raise QueryInvalid(unknown)
        query = board_query(
            metric,
            sort,
            workload,
            device_model,
            form_int(device_count, "device count"),
            precision,
            form_float(parameters_min, "parameters from"),
            form_float(parameters_max, "parameters to"),
            submitter,
            include_unranked,
            limit,
            cursor,
        )
        board = await run_in_threadpool(store.leaderboard, query)
    except QueryInvalid as invalid:
        return served.page(
            "board.html",
            400,
            rows=[],
            ranks=[],
            error=str(invalid),
            facets=await run_in_threadpool(store.facets),
            next_link=None,
            first=1,
            metric=METRIC_LABELS["steps_per_second"],
            metric_name="steps_per_second",
            **common,
        )
    first = max(1, first)
    ranks, next_first = board_ranks(board.rows, query, first)
    next_link = None
    if board.next_cursor:
        next_form = {k: v for k, v in form.items() if k not in ("cursor", "first") and v}
        next_link = "/?" + urlencode(next_form | {"cursor": board.next_cursor, "first": next_first})
    return served.page(
        "board.html",
        rows=board.rows,
        ranks=ranks,
        error=None,
        facets=await run_in_threadpool(store.facets),
        next_link=next_link,
        first=first,
        metric=METRIC_LABELS[query.metric],
        metric_name=query.metric,
        **common,
    )


@pages.get("/submissions/{bundle_id}", response_class=HTMLResponse)
async def submission_page(bundle_id: str, served: RegistryDep):
    record = await run_in_threadpool(served.store.get, bundle_id)
    if record is None:
        return served.page("error.html", 404, message=f"There is no submission {bundle_id[:80]}.")
    return served.page(
        "submission.html",
        record=record,
        summary=record["submission"],
        score=record["score"],
        plots=[Markup(svg) for svg in overlaid_plots(record["series"])],
        metric_labels=METRIC_LABELS,
    )


def board_ranks(rows: list[dict], query: BoardQuery, first: int) -> tuple[list[str], int]:
    """Rank labels for a page of the board, and the rank the next page starts at. Under the `rank`
    sort the board ranks within a workload (rubric r2): numbering starts again at 1 with each
    workload; entries tied on bound and score share a rank ("2="); unranked entries get none."""
    if query.sort != "rank":
        return [str(first + index) for index in range(len(rows))], first + len(rows)
    bound = f"{query.metric}_{METRIC_LABELS[query.metric][2]}"
    labels: list[str] = []
    previous_key, previous_index, ranked_before = None, None, first - 1
    workload = rows[0]["workload"] if rows else None
    for index, row in enumerate(rows):
        if row["workload"] != workload:
            workload, previous_key, ranked_before = row["workload"], None, 0
        if not row["ranked"]:
            labels.append("–")
            continue
        key = (row["score"], row[bound])
        if key == previous_key:
            labels[previous_index] = labels[previous_index].rstrip("=") + "="
            labels.append(labels[previous_index])
        else:
            labels.append(str(1 + ranked_before))
        previous_key, previous_index = key, index
        ranked_before += 1
    return labels, ranked_before + 1
