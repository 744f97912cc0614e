"""Calibrations over HTTP: give the registry a calibration's raw readings (it computes the verdict
itself), and read the calibrations it holds. Rubric r2 awards Calibrated only from these."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from trainmark.registry.api_shared import ApiRefusal, RegistryDep, SubmitterKey
from trainmark.registry.store import SubmissionRejected

MAX_CALIBRATION_BYTES = 4 * 1024 * 1024

router = APIRouter(prefix="/api/v1/calibrations", tags=["calibrations"])


@router.post(
    "",
    status_code=201,
    summary="Give the registry a calibration (JSON: devices, configuration, per-run readings)",
    responses={
        200: {"description": "the registry held this calibration already"},
        401: {"description": "no or an unknown key"},
        413: {"description": "too large"},
        422: {"description": "not a calibration document (or one that states its own verdict)"},
    },
)
async def add_calibration(request: Request, served: RegistryDep, key_id: SubmitterKey):
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_CALIBRATION_BYTES:
            raise ApiRefusal(413, f"a calibration document may hold at most {MAX_CALIBRATION_BYTES} bytes")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiRefusal(
            422, "the body is not JSON; send the calibration document", code="calibration-invalid"
        ) from None
    try:
        calibration, created = await run_in_threadpool(served.store.add_calibration, document, key_id)
    except SubmissionRejected as rejected:
        raise ApiRefusal.of(rejected) from None
    body_out = calibration | {"url": f"/api/v1/calibrations/{calibration['id']}"}
    return JSONResponse(body_out, status_code=201 if created else 200)


@router.get("", summary="Every calibration the registry holds, newest first, with the verdict it computed")
async def calibrations(served: RegistryDep):
    return {"calibrations": await run_in_threadpool(served.store.calibrations)}


@router.get("/{calibration_id}", summary="One held calibration: devices, configuration, readings, verdict")
async def calibration(calibration_id: str, served: RegistryDep):
    held = await run_in_threadpool(served.store.calibration, calibration_id)
    if held is None:
        raise ApiRefusal(404, f"no calibration {calibration_id[:80]!r}")
    return held
