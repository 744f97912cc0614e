"""The exceptions trainmark raises.

Everything trainmark raises on purpose is a `TrainmarkError`; errors from pydantic, jsonschema,
tarfile and the JSON parser are translated into one of these at the boundary, so callers (the
CLI, the HTTP API) catch one type and show one clear line.
"""

from __future__ import annotations

from trainmark.spec.findings import location


class TrainmarkError(Exception):
    """The root of every error trainmark raises on purpose; the message says what to do."""


class BundleInvalid(TrainmarkError):
    """A bundle (or one of its documents) breaks the standard at a known place.

    `file` is the bundle-relative path, `line` the 1-based line of a JSON Lines file, and
    `pointer` an RFC 6901 JSON pointer into that document or record.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        pointer: str = "",
        code: str = "bundle-invalid",
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.pointer = pointer
        self.code = code
        where = location(file, line, pointer)
        super().__init__(f"{where}: {message}" if where else message)


class BundleUnreadable(TrainmarkError):
    """The input is not a bundle that can be opened at all (not a directory, a broken archive)."""


class SchemaVersionUnsupported(TrainmarkError):
    """The bundle declares a schema version this trainmark cannot read."""


class SensorUnavailable(TrainmarkError):
    """A sensor this machine does not have or does not let us read; the message is the reason
    a bundle records next to the null value."""


class StoreOutOfDate(TrainmarkError):
    """The registry database's schema is older (or newer) than this trainmark's; the message names
    the command that upgrades it."""
