"""Reading MLPerf's `:::MLLOG` lines the way MLCommons' parser does, and saying what is wrong with them.

Like mlperf_logging's parser, everything up to the last `:::MLLOG ` on a line is ignored (rank
prefixes, shell noise) and `time_ms` is read as a number of milliseconds. Unlike it, a problem never
stops the reading: it becomes a `SourceIssue` of the bundle, once per file and kind of problem, with
the first line and a count (a 64-node power log with an empty metadata on every line is one issue
per file, not 300,000).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

TOKEN = ":::MLLOG "

IssueSink = Callable[..., None]
"""`issue(code, file, message, line=, pointer=, repeated=)`, as `BundleImport.issue`."""


@dataclass
class Event:
    """One :::MLLOG event and the line it was on."""

    key: str
    value: Any
    time_ms: float
    metadata: dict
    line: int


@dataclass
class Log:
    """The events of one original file (`path` is its bundle path under source/)."""

    path: str
    issue_sink: IssueSink
    events: list[Event] = field(default_factory=list)
    unparsed_lines: int = 0  # :::MLLOG lines MLCommons' parser would also fail on

    def issue(self, code: str, message: str, *, line: int | None = None, pointer: str | None = None,
              repeated: str | None = None) -> None:
        """Record a problem of this file."""
        self.issue_sink(code, self.path, message, line=line, pointer=pointer, repeated=repeated)

    def first(self, key: str) -> Event | None:
        """The first event with `key`; later ones are a duplicate-event issue."""
        found = [event for event in self.events if event.key == key]
        if len(found) > 1:
            self.issue("duplicate-event", f"{key} occurs {len(found)} times; the first (line {found[0].line}) is used",
                       line=found[1].line)
        return found[0] if found else None

    def all(self, key: str) -> list[Event]:
        """Every event with `key`, in file order."""
        return [event for event in self.events if event.key == key]


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict:
    keys = [key for key, _ in pairs]
    result = dict(pairs)
    if len(set(keys)) != len(keys):
        result["__duplicate_keys__"] = True
    return result


def number(value: Any) -> float | None:
    """A finite JSON number as float, else None."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        else None


def read_log(file: Path, bundle_path: str, issue_sink: IssueSink) -> Log:
    """Every :::MLLOG event of `file`, in file order."""
    log = Log(bundle_path, issue_sink)
    with file.open("rb") as handle:
        for number_, raw_bytes in enumerate(handle, start=1):
            raw = raw_bytes.decode("utf-8", errors="replace")
            index = raw.rfind(TOKEN)
            if index < 0:
                continue
            _parse_line(log, raw[index + len(TOKEN):], number_)
    return log


def _parse_line(log: Log, text: str, line: int) -> None:
    try:
        data = json.loads(text, object_pairs_hook=_unique_pairs)
    except ValueError as error:
        log.unparsed_lines += 1
        log.issue("unparseable-line", f"an :::MLLOG line that is not JSON ({error}); skipped", line=line,
                  repeated="not-json")
        return
    if not isinstance(data, dict):
        log.unparsed_lines += 1
        log.issue("unparseable-line", "an :::MLLOG line whose JSON is not an object; skipped", line=line,
                  repeated="not-object")
        return
    if data.pop("__duplicate_keys__", None):
        log.issue("unparseable-line", "a repeated key in one event; the last value is used", line=line,
                  repeated="repeated-key")
    key, time_ms, metadata = data.get("key"), data.get("time_ms"), data.get("metadata", {})
    if not isinstance(key, str):
        log.unparsed_lines += 1
        log.issue("type-mismatch", f"key is {type(key).__name__}, not a string; event skipped", line=line,
                  pointer="/key", repeated="key-type")
        return
    if number(time_ms) is None:
        log.unparsed_lines += 1
        log.issue("type-mismatch", f"time_ms of {key} is {type(time_ms).__name__}, not a number; event skipped",
                  line=line, pointer="/time_ms", repeated=f"time-type:{key}")
        return
    if isinstance(metadata, dict):
        metadata.pop("__duplicate_keys__", None)
    else:
        log.issue("type-mismatch", f"metadata of {key} is {type(metadata).__name__}, not an object; its fields "
                  "(host, status, samples_count, ...) are lost", line=line, pointer="/metadata",
                  repeated=f"metadata-type:{key}")
        metadata = {}
    log.events.append(Event(key, data.get("value"), float(time_ms), metadata, line))
