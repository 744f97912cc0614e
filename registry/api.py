"""The registry's HTTP service: the JSON API under /api/v1, the exports, and the server-rendered
public pages (no JavaScript; every value escaped by Jinja2's autoescaping, and a Content Security
Policy that forbids scripts in case anything ever slipped through).

Reading is public. Submitting needs `Authorization: Bearer KEY`, is capped in size while the body
streams in (413 before the limit is passed, not after the upload is buffered), and is rate limited
per key (429 with Retry-After).

The routes live in routers by concern (api_submissions, api_board, api_calibrations); `create_app`
only assembles them around the store they are given (api_shared.Registry).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from trainmark.registry import api_board, api_calibrations, api_submissions
from trainmark.registry.api_board import csv_cell
from trainmark.registry.api_shared import HERE, ApiRefusal, Registry, page_templates
from trainmark.registry.serving import prepare_serving_process, serving_options
from trainmark.registry.store import Store

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
    app.state.registry = Registry(store, page_templates(), submissions_per_minute, body_timeout_s)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_exception_handler(ApiRefusal, lambda _request, refusal: refusal.response())
    app.middleware("http")(_security_headers)
    app.include_router(api_submissions.router)
    app.include_router(api_calibrations.router)
    app.include_router(api_board.api)
    app.include_router(api_board.pages)
    return app


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


__all__ = ["create_app", "csv_cell", "prepare_serving_process", "serving_options"]
