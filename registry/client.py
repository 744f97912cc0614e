"""Submitting to a registry over HTTP (the standard library only, so any trainmark install can)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from spec.errors import TrainmarkError


class RegistryError(TrainmarkError):
    """The registry refused a request or could not be reached; the message says which and why."""

    def __init__(self, message: str, status: int | None = None, body: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {}


def submit_archive(url: str, key: str, archive: Path, timeout: float = 600.0) -> tuple[int, dict]:
    """POST an archive to `url`/api/v1/submissions; (HTTP status, the registry's answer)."""
    endpoint = url.rstrip("/") + "/api/v1/submissions"
    size = archive.stat().st_size
    with archive.open("rb") as body:
        request = urllib.request.Request(endpoint, data=body, method="POST", headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/gzip", "Content-Length": str(size)})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as refused:
            try:
                answer = json.loads(refused.read())
            except ValueError:
                answer = {}
            message = answer.get("error") or refused.reason
            raise RegistryError(f"{endpoint} answered {refused.code}: {message}", refused.code, answer) from None
        except (urllib.error.URLError, OSError) as unreachable:
            reason = getattr(unreachable, "reason", unreachable)
            raise RegistryError(f"cannot reach {endpoint}: {reason}; is the registry running (trainmark serve)?") \
                from None
