"""The registry's HTTP service: the JSON API under /api/v1, the exports, and the server-rendered
public pages (no JavaScript; every value escaped by Jinja2's autoescaping, and a Content Security
Policy that forbids scripts in case anything ever slipped through).

Reading is public. Submitting needs `Authorization: Bearer KEY`, is capped in size while the body
streams in (413 before the limit is passed, not after the upload is buffered), and is rate limited
per key (429 with Retry-After).
"""

from __future__ import annotations

import asyncio
import csv
import gc
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import ClientDisconnect
from trainmark.registry.store import (
    EFFICIENCY_METRICS,
    MAX_PAGE,
    PRECISIONS,
    SORTS,
    BoardQuery,
    QueryInvalid,
    Store,
    SubmissionRejected,
    store_unwritable,
)
from trainmark.scorer.plots import human, overlaid_plots
from trainmark.spec.validate import compile_validators
from uvicorn.protocols.http.h11_impl import H11Protocol

HERE = Path(__file__).resolve().parent
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# The API documentation pages run Swagger UI's and ReDoc's scripts (an inline one starts them); they
# may run scripts, but only this server's: nothing is loaded from anywhere else.
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'"
)
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
METRIC_LABELS = {
    "steps_per_second": ("steps/s", "{step}/s", "low"),
    "flops_per_joule": ("FLOP per joule", "{flop}/J", "low"),
    "energy_per_step": ("energy per step", "J/{step}", "high"),
}


def prepare_serving_process() -> None:
    """Ready a long-lived process that takes submissions (`trainmark serve`, the benchmark):
    compile every validator now rather than in the first submission, then move everything built
    so far (imported modules, schemas, validators: about 140,000 objects) out of the garbage
    collector's reach. About one submission in thirty sets off a full collection, which walked
    that whole startup heap again (90 ms, about 3 ms a submission; docs/performance.md).
    Objects made later are collected as usual."""
    compile_validators(full_jsonschema=True)
    gc.collect()  # what is garbage now is not frozen
    gc.freeze()


def _error(
    status: int, message: str, findings: list | None = None, headers: dict | None = None, code: str | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if code is not None:
        body["code"] = code
    if findings is not None:
        body["findings"] = findings
    return JSONResponse(body, status_code=status, headers=headers)


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


def _templates() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"], default=True)
    )
    environment.filters["human"] = lambda value, unit: "" if value is None else human(value, unit)
    environment.filters["number"] = _number
    # Every quantity in the unit a person reads fastest (trainmark.scorer.units); the UCUM code stays beside it.
    environment.filters["show"] = lambda value, unit: (
        human(value, unit) if value is not None and unit else _number(value)
    )
    return environment


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}g}"
    return str(value)


def _plots(series: list[dict]) -> list[Markup]:
    return [Markup(svg) for svg in overlaid_plots(series)]


BOARD_PARAMETERS = {
    "metric",
    "sort",
    "device_model",
    "device_count",
    "precision",
    "parameters_min",
    "parameters_max",
    "submitter",
    "include_unranked",
    "limit",
    "cursor",
}
HEADER_TIMEOUT_S = 10.0
"""How long a connection may take to send a request's headers, or stay idle between requests."""
BODY_TIMEOUT_S = 60.0
"""How long an upload may send nothing before it is dropped (408)."""


def create_app(
    store: Store, *, submissions_per_minute: float = 60.0, body_timeout_s: float = BODY_TIMEOUT_S
) -> FastAPI:
    """The registry service over `store`. `body_timeout_s`: how long an upload may stall."""
    # Swagger UI (/docs) and ReDoc (/redoc) load their scripts and styles from this server, out of
    # the fastapi-offline package, never from a CDN: the documentation works with no network.
    app = FastAPIOffline(
        title="trainmark registry",
        version="1",
        static_url="/static-docs",
        description="Submit trainmark bundles, read scores, and browse the transparency leaderboard. "
        "Reading is public; submitting needs an API key (trainmark keys create).",
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = _templates()

    @app.middleware("http")
    async def _security_headers(request: Request, call_next):
        response = await call_next(request)
        headers = (
            SECURITY_HEADERS
            if request.url.path not in DOCS_PATHS
            else {**SECURITY_HEADERS, "Content-Security-Policy": DOCS_POLICY}
        )
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    def page(name: str, status: int = 200, **context) -> HTMLResponse:
        return HTMLResponse(templates.get_template(name).render(**context), status_code=status)

    def board_query(
        metric: str,
        sort: str,
        device_model: str | None,
        device_count: int | None,
        precision: str | None,
        parameters_min: float | None,
        parameters_max: float | None,
        submitter: str | None,
        include_unranked: bool,
        limit: int,
        cursor: str | None,
    ) -> BoardQuery:
        # Empty form fields mean "any".
        return BoardQuery(
            metric=metric,
            sort=sort,
            device_model=device_model or None,
            device_count=device_count,
            precision=precision or None,
            parameters_min=parameters_min,
            parameters_max=parameters_max,
            submitter=submitter or None,
            include_unranked=include_unranked,
            limit=limit,
            cursor=cursor or None,
        )

    # ---------------------------------------------------------------- the JSON API

    @app.post(
        "/api/v1/submissions",
        status_code=201,
        summary="Submit a bundle (.tar.gz body)",
        responses={
            200: {"description": "the same bundle was submitted before; its id and score"},
            401: {"description": "no or an unknown key"},
            413: {"description": "too large"},
            422: {"description": "not a bundle that follows the standard"},
            429: {"description": "over this key's rate limit"},
        },
    )
    async def submit(request: Request):
        authorization = request.headers.get("authorization", "")
        scheme, _, key = authorization.partition(" ")
        key_id = await run_in_threadpool(store.verify_key, key.strip()) if scheme.lower() == "bearer" else None
        if key_id is None:
            return _error(
                401,
                "submitting needs a valid API key: Authorization: Bearer KEY "
                "(the registry's operator creates one with trainmark keys create)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        wait = await run_in_threadpool(store.take_submission, key_id, submissions_per_minute)
        if wait > 0:
            return _error(
                429,
                f"this key may submit {submissions_per_minute:g} bundles a minute; try again in {math.ceil(wait)} s",
                headers={"Retry-After": str(math.ceil(wait))},
            )

        async def refuse(rejected: SubmissionRejected) -> JSONResponse:
            """A refusal before the store saw the upload: audited like the store's own."""
            await run_in_threadpool(store.audit_refusal, key_id, rejected)
            return _error(rejected.status, str(rejected), code=rejected.code)

        limit = store.limits.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await refuse(
                SubmissionRejected(f"the upload is {declared} bytes; the limit is {limit}", 413, code="upload-limit")
            )
        try:
            scratch = store.blobs.scratch_folder("upload")
        except OSError as error:
            rejected = store_unwritable(error)
            await run_in_threadpool(store.audit_refusal, key_id, rejected)
            return _error(rejected.status, str(rejected), code=rejected.code)
        with scratch:
            archive = Path(scratch.name) / "upload.tar.gz"
            received = 0
            with archive.open("wb") as handle:
                stream = request.stream().__aiter__()
                while True:
                    try:
                        chunk = await asyncio.wait_for(stream.__anext__(), body_timeout_s)
                    except StopAsyncIteration:
                        break
                    except TimeoutError:
                        return await refuse(
                            SubmissionRejected(
                                f"the upload sent nothing for {body_timeout_s:g} s; send it again",
                                408,
                                code="upload-timeout",
                            )
                        )
                    except ClientDisconnect:
                        return Response(status_code=400)  # nobody is listening for the answer
                    received += len(chunk)
                    if received > limit:
                        return await refuse(
                            SubmissionRejected(
                                f"the upload is over the limit of {limit} bytes", 413, code="upload-limit"
                            )
                        )
                    handle.write(chunk)
            if received == 0:
                return await refuse(
                    SubmissionRejected(
                        "the request body is empty; send the bundle's .tar.gz as the body", 400, code="upload-empty"
                    )
                )
            try:
                outcome = await run_in_threadpool(store.submit, archive, key_id)
            except SubmissionRejected as rejected:
                return _error(
                    rejected.status,
                    str(rejected),
                    [finding.as_dict() for finding in rejected.findings],
                    code=rejected.code,
                )
        body = outcome.as_dict() | {"url": f"/api/v1/submissions/{outcome.id}", "page": f"/submissions/{outcome.id}"}
        return JSONResponse(body, status_code=201 if outcome.created else 200)

    @app.get("/api/v1/submissions/{bundle_id}", summary="One submission: summary, score, findings, runs")
    async def submission(bundle_id: str):
        record = await run_in_threadpool(store.get, bundle_id)
        if record is None:
            return _error(404, f"no submission {bundle_id[:80]!r}")
        return record

    @app.get(
        "/api/v1/submissions/{bundle_id}/bundle", summary="The submitted bundle as .tar.gz", response_class=FileResponse
    )
    def bundle(bundle_id: str, request: Request):
        # Packed once at ingest and named by the bundle id, which fixes every byte of it: the id is
        # a strong ETag and the archive never changes, so caches may keep it for good.
        try:
            path = store.archive_for(bundle_id)
        except (KeyError, ValueError):
            return _error(404, f"no submission {bundle_id[:80]!r}")
        headers = {"ETag": f'"{bundle_id}"', "Cache-Control": "public, max-age=31536000, immutable"}
        if _etag_matches(request.headers.get("if-none-match"), bundle_id):
            return Response(status_code=304, headers=headers)
        return FileResponse(path, media_type="application/gzip", filename=f"{bundle_id}.tar.gz", headers=headers)

    @app.get("/api/v1/leaderboard", summary="One page of the leaderboard")
    async def leaderboard(
        metric: Annotated[
            str, Query(description=f"efficiency metric: {', '.join(EFFICIENCY_METRICS)}")
        ] = "steps_per_second",
        sort: Annotated[str, Query(description=f"one of {', '.join(SORTS)}")] = "rank",
        device_model: str | None = None,
        device_count: int | None = None,
        precision: Annotated[str | None, Query(description=f"one of {', '.join(PRECISIONS)}")] = None,
        parameters_min: float | None = None,
        parameters_max: float | None = None,
        submitter: str | None = None,
        include_unranked: bool = False,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
        cursor: str | None = None,
        *,
        request: Request,
    ):
        unknown = _unknown_parameters(request, BOARD_PARAMETERS)
        if unknown:
            return _error(400, unknown)
        try:
            query = board_query(
                metric,
                sort,
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
            board = await run_in_threadpool(store.leaderboard, query)
        except QueryInvalid as invalid:
            return _error(400, str(invalid))
        return {"rows": board.rows, "next_cursor": board.next_cursor}

    @app.get("/export.csv", summary="The whole board as CSV (formula-safe)")
    def export_csv():
        def lines() -> Iterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(EXPORT_COLUMNS)
            for row in store.export():
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

    @app.get("/export.jsonl", summary="The whole board as JSON Lines")
    def export_jsonl():
        return StreamingResponse((json.dumps(row) + "\n" for row in store.export()), media_type="application/x-ndjson")

    # ---------------------------------------------------------------- the pages

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return Response(status_code=204)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def board_page(
        request: Request,
        metric: str = "steps_per_second",
        sort: str = "rank",
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
        form = dict(request.query_params)
        try:
            unknown = _unknown_parameters(request, BOARD_PARAMETERS | {"first"})
            if unknown:
                raise QueryInvalid(unknown)
            query = board_query(
                metric,
                sort,
                device_model,
                _form_int(device_count, "device count"),
                precision,
                _form_float(parameters_min, "parameters from"),
                _form_float(parameters_max, "parameters to"),
                submitter,
                include_unranked,
                limit,
                cursor,
            )
            board = await run_in_threadpool(store.leaderboard, query)
        except QueryInvalid as invalid:
            return page(
                "board.html",
                400,
                rows=[],
                ranks=[],
                error=str(invalid),
                form=form,
                facets=await run_in_threadpool(store.facets),
                metrics=METRIC_LABELS,
                sorts=SORTS,
                precisions=PRECISIONS,
                next_link=None,
                first=1,
                metric=METRIC_LABELS["steps_per_second"],
                metric_name="steps_per_second",
            )
        first = max(1, first)
        ranks, next_first = _ranks(board.rows, query, first)
        next_link = None
        if board.next_cursor:
            next_form = {k: v for k, v in form.items() if k not in ("cursor", "first") and v}
            next_link = "/?" + urlencode(next_form | {"cursor": board.next_cursor, "first": next_first})
        return page(
            "board.html",
            rows=board.rows,
            ranks=ranks,
            error=None,
            form=form,
            facets=await run_in_threadpool(store.facets),
            metrics=METRIC_LABELS,
            sorts=SORTS,
            precisions=PRECISIONS,
            next_link=next_link,
            first=first,
            metric=METRIC_LABELS[query.metric],
            metric_name=query.metric,
        )

    @app.get("/submissions/{bundle_id}", response_class=HTMLResponse, include_in_schema=False)
    async def submission_page(bundle_id: str):
        record = await run_in_threadpool(store.get, bundle_id)
        if record is None:
            return page("error.html", 404, message=f"There is no submission {bundle_id[:80]}.")
        return page(
            "submission.html",
            record=record,
            summary=record["submission"],
            score=record["score"],
            plots=_plots(record["series"]),
            metric_labels=METRIC_LABELS,
        )

    return app


class _HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's headers: a client that
    opens a connection and then trickles (or withholds) its request line and headers is cut off
    after `header_timeout_s`, instead of holding a connection and a file open for good."""

    header_timeout_s = 10.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._waiting_cycle = self.cycle
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_overdue)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_timer is not None and self.cycle is not self._waiting_cycle:
            self._header_timer.cancel()  # the headers are in; the body has its own timeout
            self._header_timer = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._header_timer is None:
            self._waiting_cycle = self.cycle
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_overdue)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def _headers_overdue(self) -> None:
        self._header_timer = None
        if self.cycle is self._waiting_cycle and not self.transport.is_closing():
            self.transport.close()


def serving_options(header_timeout_s: float = HEADER_TIMEOUT_S) -> dict:
    """uvicorn settings for `trainmark serve`: a request's headers must arrive within
    `header_timeout_s`, and an idle keep-alive connection is closed after as long."""
    if header_timeout_s <= 0:
        raise ValueError("header_timeout_s must be positive")
    protocol = type("HeaderTimeoutProtocol", (_HeaderTimeoutProtocol,), {"header_timeout_s": header_timeout_s})
    return {"http": protocol, "timeout_keep_alive": header_timeout_s}


def _etag_matches(header: str | None, bundle_id: str) -> bool:
    """Whether an If-None-Match header names the archive's ETag (or is *)."""
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or f'"{bundle_id}"' in tags


def _unknown_parameters(request: Request, known: set[str]) -> str | None:
    """A refusal naming the query parameters an endpoint does not take (a typo filters nothing)."""
    unknown = sorted({name for name in request.query_params if name not in known})
    if not unknown:
        return None
    named = ", ".join(repr(name[:40]) for name in unknown[:5])
    return f"unknown parameter(s) {named}; this endpoint takes {', '.join(sorted(known))}"


def _ranks(rows: list[dict], query: BoardQuery, first: int) -> tuple[list[str], int]:
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


def _form_int(value: str | None, label: str) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise QueryInvalid(f"{label} must be a whole number, not {value[:40]!r}") from None


def _form_float(value: str | None, label: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        raise QueryInvalid(f"{label} must be a number (e.g. 1.2e8), not {value[:40]!r}") from None
    if not math.isfinite(number):
        raise QueryInvalid(f"{label} must be a finite number")
    return number


__all__ = ["create_app", "csv_cell", "prepare_serving_process", "serving_options"]
