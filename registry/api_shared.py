"""What the registry's routers share: the dependencies they are given (the store, the pages'
templates, the submission settings, the submitter's key), the error body, and the one place where
the store's refusal codes become HTTP statuses (the store knows nothing of HTTP)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from trainmark.registry.store import BoardQuery, QueryInvalid, Store, SubmissionRejected
from trainmark.scorer.plots import human

HERE = Path(__file__).resolve().parent

REFUSAL_STATUS = {
    "upload-empty": 400,
    "supersedes-foreign": 403,
    "upload-timeout": 408,
    "supersedes-unknown": 409,
    "supersedes-superseded": 409,
    "upload-limit": 413,
    "store-unwritable": 503,
}
"""HTTP status of a refusal, by its code; every other code (a finding's, `archive-invalid`,
`bundle-unreadable`, `import-unverified`, `calibration-invalid`) is 422: not a bundle the standard
and the registry accept."""

METRIC_LABELS = {
    "steps_per_second": ("steps/s", "{step}/s", "low"),
    "flops_per_joule": ("FLOP per joule", "{flop}/J", "low"),
    "energy_per_step": ("energy per step", "J/{step}", "high"),
}
BOARD_PARAMETERS = {
    "metric",
    "sort",
    "workload",
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


def status_of(rejected: SubmissionRejected) -> int:
    """The HTTP status that answers a refusal."""
    return REFUSAL_STATUS.get(rejected.code, 422)


class ApiRefusal(Exception):
    """Raised by a route or a dependency: answered as `{"error", "code"?, "findings"?}` with `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        findings: list | None = None,
        headers: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.findings, self.headers = status, message, code, findings, headers

    @classmethod
    def of(cls, rejected: SubmissionRejected) -> ApiRefusal:
        """The answer to a store's refusal."""
        return cls(
            status_of(rejected),
            str(rejected),
            code=rejected.code,
            findings=[finding.as_dict() for finding in rejected.findings] if rejected.findings else None,
        )

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.findings, self.headers, self.code)


def error_response(
    status: int, message: str, findings: list | None = None, headers: dict | None = None, code: str | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if code is not None:
        body["code"] = code
    if findings is not None:
        body["findings"] = findings
    return JSONResponse(body, status_code=status, headers=headers)


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}g}"
    return str(value)


def page_templates() -> Environment:
    """The pages' Jinja2 environment: autoescaped, with the registry's number filters."""
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


@dataclass
class Registry:
    """What every router is given (create_app puts one on the app; `registry` hands it to a route)."""

    store: Store
    templates: Environment
    submissions_per_minute: float
    body_timeout_s: float

    def page(self, name: str, status: int = 200, **context) -> HTMLResponse:
        return HTMLResponse(self.templates.get_template(name).render(**context), status_code=status)


def registry(request: Request) -> Registry:
    """The dependency that hands a route the registry it serves."""
    return request.app.state.registry


RegistryDep = Annotated[Registry, Depends(registry)]


async def submitter_key(request: Request, served: RegistryDep) -> int:
    """The dependency for writing routes: the id of the request's valid API key (`Authorization:
    Bearer KEY`), one submission taken from its allowance; 401 or 429 otherwise."""
    store = served.store
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key_id = await run_in_threadpool(store.verify_key, key.strip()) if scheme.lower() == "bearer" else None
    if key_id is None:
        raise ApiRefusal(
            401,
            "submitting needs a valid API key: Authorization: Bearer KEY "
            "(the registry's operator creates one with trainmark keys create)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    per_minute = served.submissions_per_minute
    wait = await run_in_threadpool(store.take_submission, key_id, per_minute)
    if wait > 0:
        raise ApiRefusal(
            429,
            f"this key may submit {per_minute:g} bundles a minute; try again in {math.ceil(wait)} s",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    return key_id


SubmitterKey = Annotated[int, Depends(submitter_key)]


def board_query(
    metric: str,
    sort: str,
    workload: str | None,
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
    """A board query from request parameters; empty form fields mean "any"."""
    return BoardQuery(
        metric=metric,
        sort=sort,
        workload=workload or None,
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


def unknown_parameters(request: Request, known: set[str]) -> str | None:
    """A refusal naming the query parameters an endpoint does not take (a typo filters nothing)."""
    unknown = sorted({name for name in request.query_params if name not in known})
    if not unknown:
        return None
    named = ", ".join(repr(name[:40]) for name in unknown[:5])
    return f"unknown parameter(s) {named}; this endpoint takes {', '.join(sorted(known))}"


def form_int(value: str | None, label: str) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise QueryInvalid(f"{label} must be a whole number, not {value[:40]!r}") from None


def form_float(value: str | None, label: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        raise QueryInvalid(f"{label} must be a number (e.g. 1.2e8), not {value[:40]!r}") from None
    if not math.isfinite(number):
        raise QueryInvalid(f"{label} must be a finite number")
    return number
