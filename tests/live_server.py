"""A real HTTP server for the tests: uvicorn on a free loopback port, in a thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn


class LiveServer:
    """uvicorn serving an app on a free loopback port, in a thread."""

    def __init__(self, app) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@contextlib.contextmanager
def served_registry(url: str, blobs: Path, limits) -> Iterator[tuple[str, object, str]]:
    """(base URL, store, an API key) of the registry database at `url` (at the head revision: the
    `registry_at_head` fixture), served over HTTP with `limits` (a RegistryLimits) and a submission
    allowance no test runs into."""
    from trainmark.registry.api import create_app
    from trainmark.registry.store import Store

    store = Store(url, blobs, limits)
    key = store.create_key("test lab")
    try:
        with LiveServer(create_app(store, submissions_per_minute=1000)) as server:
            yield server.url, store, key
    finally:
        store.close()
