"""Submitting to a registry over HTTP (the standard library only, so any trainmark install can)."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

from trainmark.spec.errors import TrainmarkError

CHUNK = 1 << 20


class RegistryError(TrainmarkError):
    """The registry refused a request or could not be reached; the message says which and why."""

    def __init__(self, message: str, status: int | None = None, body: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {}


def submit_archive(url: str, key: str, archive: Path, timeout: float = 600.0) -> tuple[int, dict]:
    """POST an archive to `url`/api/v1/submissions; (HTTP status, the registry's answer).

    The registry answers a refusal it can make from the headers alone (a wrong key, the rate
    limit, a declared size over the limit) before reading the body, and closes the connection;
    the upload then breaks off, and the answer is read from the socket instead of reporting a
    broken pipe.
    """
    parts = urlsplit(url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryError(f"{url!r} is not a registry URL; give http://HOST[:PORT] or https://HOST")
    endpoint = f"{parts.scheme}://{parts.netloc}{parts.path}/api/v1/submissions"
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(parts.hostname, parts.port, timeout=timeout)
    try:
        try:
            connection.putrequest("POST", f"{parts.path}/api/v1/submissions")
            for name, value in (
                ("Authorization", f"Bearer {key}"),
                ("Content-Type", "application/gzip"),
                ("Content-Length", str(archive.stat().st_size)),
            ):
                connection.putheader(name, value)
            connection.endheaders()
            with archive.open("rb") as body:
                while chunk := body.read(CHUNK):
                    connection.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused early: its answer is waiting to be read
        response = connection.getresponse()
        text = response.read()
    except (OSError, http.client.HTTPException) as unreachable:
        reason = unreachable.strerror if isinstance(unreachable, OSError) and unreachable.strerror else unreachable
        if isinstance(unreachable, socket.timeout):
            reason = f"no answer within {timeout:g} s"
        raise RegistryError(f"cannot reach {endpoint}: {reason}; is the registry running (trainmark serve)?") from None
    finally:
        connection.close()
    try:
        answer = json.loads(text)
    except ValueError:
        answer = {}
    if response.status >= 400:
        message = answer.get("error") or response.reason
        raise RegistryError(f"{endpoint} answered {response.status}: {message}", response.status, answer)
    return response.status, answer


def post_calibration(url: str, key: str, document: dict, timeout: float = 60.0) -> tuple[int, dict]:
    """POST a calibration document to `url`/api/v1/calibrations; (HTTP status, the registry's answer:
    the calibration with the verdict the registry computed)."""
    parts = urlsplit(url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryError(f"{url!r} is not a registry URL; give http://HOST[:PORT] or https://HOST")
    endpoint = f"{parts.scheme}://{parts.netloc}{parts.path}/api/v1/calibrations"
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(parts.hostname, parts.port, timeout=timeout)
    body = json.dumps(document).encode()
    try:
        connection.request(
            "POST",
            f"{parts.path}/api/v1/calibrations",
            body=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        text = response.read()
    except (OSError, http.client.HTTPException) as unreachable:
        reason = unreachable.strerror if isinstance(unreachable, OSError) and unreachable.strerror else unreachable
        raise RegistryError(f"cannot reach {endpoint}: {reason}; is the registry running (trainmark serve)?") from None
    finally:
        connection.close()
    try:
        answer = json.loads(text)
    except ValueError:
        answer = {}
    if response.status >= 400:
        message = answer.get("error") or response.reason
        raise RegistryError(f"{endpoint} answered {response.status}: {message}", response.status, answer)
    return response.status, answer
