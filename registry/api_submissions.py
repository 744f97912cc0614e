"""Submissions over HTTP: upload a bundle (streamed, capped, timed), read one back, download its archive.

The upload is the boundary where an archive is opened: the store is given the unpacked bundle."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.requests import ClientDisconnect
from trainmark.registry.api_shared import ApiRefusal, Registry, RegistryDep, SubmitterKey
from trainmark.registry.intake import submit_archive
from trainmark.registry.store import SubmissionRejected, store_unwritable

router = APIRouter(prefix="/api/v1/submissions", tags=["submissions"])


async def _refuse(served: Registry, key_id: int, rejected: SubmissionRejected) -> ApiRefusal:
    """A refusal before the store saw the upload: audited like the store's own."""
    await run_in_threadpool(served.store.audit_refusal, key_id, rejected)
    return ApiRefusal.of(rejected)


async def _receive(request: Request, served: Registry, key_id: int, archive: Path) -> None:
    """Stream the request body into `archive`, refusing (ApiRefusal) past the size limit, after
    `body_timeout_s` of silence, or when empty."""
    limit = served.store.limits.max_upload_bytes
    received = 0
    with archive.open("wb") as handle:
        stream = request.stream().__aiter__()
        while True:
            try:
                chunk = await asyncio.wait_for(stream.__anext__(), served.body_timeout_s)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise await _refuse(
                    served,
                    key_id,
                    SubmissionRejected(
                        f"the upload sent nothing for {served.body_timeout_s:g} s; send it again", "upload-timeout"
                    ),
                ) from None
            received += len(chunk)
            if received > limit:
                raise await _refuse(
                    served,
                    key_id,
                    SubmissionRejected(f"the upload is over the limit of {limit} bytes", "upload-limit"),
                )
            handle.write(chunk)
    if received == 0:
        raise await _refuse(
            served,
            key_id,
            SubmissionRejected("the request body is empty; send the bundle's .tar.gz as the body", "upload-empty"),
        )


@router.post(
    "",
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
async def submit(request: Request, served: RegistryDep, key_id: SubmitterKey):
    store = served.store
    limit = store.limits.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise await _refuse(
            served, key_id, SubmissionRejected(f"the upload is {declared} bytes; the limit is {limit}", "upload-limit")
        )
    try:
        scratch = store.blobs.scratch_folder("upload")
    except OSError as error:
        raise await _refuse(served, key_id, store_unwritable(error)) from None
    with scratch:
        archive = Path(scratch.name) / "upload.tar.gz"
        try:
            await _receive(request, served, key_id, archive)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening for the answer

        try:
            outcome = await run_in_threadpool(submit_archive, store, archive, key_id)  # audits its refusals
        except SubmissionRejected as rejected:
            raise ApiRefusal.of(rejected) from None
    body = outcome.as_dict() | {"url": f"/api/v1/submissions/{outcome.id}", "page": f"/submissions/{outcome.id}"}
    return JSONResponse(body, status_code=201 if outcome.created else 200)


@router.get("/{bundle_id}", summary="One submission: summary, score, findings, runs")
async def submission(bundle_id: str, served: RegistryDep):
    record = await run_in_threadpool(served.store.get, bundle_id)
    if record is None:
        raise ApiRefusal(404, f"no submission {bundle_id[:80]!r}")
    return record


@router.get("/{bundle_id}/bundle", summary="The submitted bundle as .tar.gz", response_class=FileResponse)
def bundle(bundle_id: str, request: Request, served: RegistryDep):
    # Packed once at ingest and named by the bundle id, which fixes every byte of it: the id is
    # a strong ETag and the archive never changes, so caches may keep it for good.
    try:
        path = served.store.archive_for(bundle_id)
    except (KeyError, ValueError):
        raise ApiRefusal(404, f"no submission {bundle_id[:80]!r}") from None
    headers = {"ETag": f'"{bundle_id}"', "Cache-Control": "public, max-age=31536000, immutable"}
    if _etag_matches(request.headers.get("if-none-match"), bundle_id):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type="application/gzip", filename=f"{bundle_id}.tar.gz", headers=headers)


def _etag_matches(header: str | None, bundle_id: str) -> bool:
    """Whether an If-None-Match header names the archive's ETag (or is *)."""
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or f'"{bundle_id}"' in tags
