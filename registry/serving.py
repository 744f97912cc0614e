"""Serving the registry for real (`trainmark serve`, the benchmark): a process readied for
submissions, and uvicorn settings that cut off clients who trickle their headers."""

from __future__ import annotations

import gc

from trainmark.spec.validate import compile_validators
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
"""How long a connection may take to send a request's headers, or stay idle between requests."""


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


__all__ = ["HEADER_TIMEOUT_S", "prepare_serving_process", "serving_options"]
