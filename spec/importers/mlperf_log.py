"""Reading MLPerf's `:::MLLOG` lines the way MLCommons' parser does, and saying what is wrong with them.

Like mlperf_logging's parser, everything up to the last `:::MLLOG ` on a line is ignored (rank
prefixes, shell noise) and `time_ms` is read as a number of milliseconds. Unlike it, a problem never
stops the reading: it becomes a `SourceIssue` of the bundle, once per file and kind of problem, with
the first line and a count (a 64-node power log with an empty metadata on every line is one issue
per file, not 300,000).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN = ":::MLLOG "
LAST_MS = 253402300799999  # 9999-12-31T23:59:59.999Z: later times are not dates a bundle can hold

IssueSink = Callable[..., None]
"""`issue(code, file, message, line=, pointer=, repeated=)`, as `BundleImport.issue`."""


@dataclass(slots=True)
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
    _repeated: dict[str, list] = field(default_factory=dict)

    def issue(
        self,
        code: str,
        message: str,
        *,
        line: int | None = None,
        pointer: str | None = None,
        repeated: str | None = None,
    ) -> None:
        """Record a problem of this file; with `repeated`, one issue and a count however often it occurs."""
        if repeated is None:
            self.issue_sink(code, self.path, message, line=line, pointer=pointer)
        elif repeated in self._repeated:
            self._repeated[repeated][-1] += 1
        else:
            self._repeated[repeated] = [code, message, line, pointer, 1]

    def counted_again(self, repeated: str) -> bool:
        """Count one more occurrence of a repeated problem already met; False when it is the first."""
        entry = self._repeated.get(repeated)
        if entry is None:
            return False
        entry[-1] += 1
        return True

    def flush_issues(self) -> None:
        """Hand the repeated problems, counted, to the sink."""
        for key, (code, message, line, pointer, count) in self._repeated.items():
            self.issue_sink(code, self.path, message, line=line, pointer=pointer, repeated=key, count=count)
        self._repeated.clear()

    def first(self, key: str) -> Event | None:
        """The first event with `key`; later ones are a duplicate-event issue."""
        found = [event for event in self.events if event.key == key]
        if len(found) > 1:
            self.issue(
                "duplicate-event",
                f"{key} occurs {len(found)} times; the first (line {found[0].line}) is used",
                line=found[1].line,
            )
        return found[0] if found else None

    def all(self, key: str) -> list[Event]:
        """Every event with `key`, in file order."""
        return [event for event in self.events if event.key == key]


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        result["__duplicate_keys__"] = True
    return result


_PLAIN = json.JSONDecoder()
_CHECKING = json.JSONDecoder(object_pairs_hook=_unique_pairs)


def _keys(node: dict) -> int:
    """How many object keys a parsed JSON object holds, at every depth (hot: one call per line)."""
    count = len(node)
    for value in node.values():
        kind = type(value)
        if kind is dict:
            count += _keys(value)
        elif kind is list:
            count += _list_keys(value)
    return count


def _list_keys(items: list) -> int:
    return sum(_keys(item) if type(item) is dict else _list_keys(item) if type(item) is list else 0 for item in items)


def _loads(text: str) -> tuple[Any, bool]:
    """JSON, and whether its top-level object repeats a key.

    The C parser first: if the parsed keys are as many as the '":' in the text (an upper bound of the
    keys written), no key was repeated; else parse again, checking every object.
    """
    text = text.strip()
    data, end = _PLAIN.raw_decode(text)
    if end != len(text):
        raise ValueError(f"extra data after the JSON value at character {end}")
    if type(data) is not dict or _keys(data) == text.count('":'):
        return data, False
    data = _CHECKING.decode(text)
    return data, bool(data.pop("__duplicate_keys__", None))


def number(value: Any) -> float | None:
    """A finite JSON number as float, else None (booleans are not numbers)."""
    kind = type(value)
    if kind is float:
        return value if value - value == 0 else None  # inf - inf and nan - nan are nan
    if kind is int:
        return float(value) if abs(value) < 2**1023 else None
    return None


def read_log(file: Path, bundle_path: str, issue_sink: IssueSink) -> Log:
    """Every :::MLLOG event of `file`, in file order (lines end at \\n; bytes that are not UTF-8 are replaced)."""
    log = Log(bundle_path, issue_sink)
    token_length = len(TOKEN)
    for number_, raw in enumerate(file.read_bytes().decode("utf-8", errors="replace").split("\n"), start=1):
        index = raw.rfind(TOKEN)
        if index >= 0:
            _parse_line(log, raw[index + token_length :], number_)
    log.flush_issues()
    return log


def _parse_line(log: Log, text: str, line: int) -> None:
    try:
        data, repeated_key = _loads(text)
    except ValueError as error:
        log.unparsed_lines += 1
        log.issue(
            "unparseable-line", f"an :::MLLOG line that is not JSON ({error}); skipped", line=line, repeated="not-json"
        )
        return
    if not isinstance(data, dict):
        log.unparsed_lines += 1
        log.issue(
            "unparseable-line",
            "an :::MLLOG line whose JSON is not an object; skipped",
            line=line,
            repeated="not-object",
        )
        return
    if repeated_key:
        log.issue(
            "unparseable-line",
            "a repeated key in one event; the last value is used",
            line=line,
            repeated="repeated-key",
        )
    key, time_ms, metadata = data.get("key"), data.get("time_ms"), data.get("metadata", {})
    if not isinstance(key, str):
        log.unparsed_lines += 1
        log.issue(
            "type-mismatch",
            f"key is {type(key).__name__}, not a string; event skipped",
            line=line,
            pointer="/key",
            repeated="key-type",
        )
        return
    milliseconds = number(time_ms)
    if milliseconds is None:
        log.unparsed_lines += 1
        log.issue(
            "type-mismatch",
            f"time_ms of {key} is {type(time_ms).__name__}, not a number; event skipped",
            line=line,
            pointer="/time_ms",
            repeated=f"time-type:{key}",
        )
        return
    if not 0 <= milliseconds <= LAST_MS:
        log.unparsed_lines += 1
        log.issue(
            "type-mismatch",
            f"time_ms of {key} is {time_ms}, not a Unix time in milliseconds (1970 to 9999); event skipped",
            line=line,
            pointer="/time_ms",
            repeated=f"time-range:{key}",
        )
        return
    if type(metadata) is dict:
        if repeated_key:
            metadata.pop("__duplicate_keys__", None)
    elif not log.counted_again(f"metadata-type:{key}"):  # the message is built once per file
        log.issue(
            "type-mismatch",
            f"metadata of {key} is {type(metadata).__name__}, not an object; its fields "
            "(host, status, samples_count, ...) are lost",
            line=line,
            pointer="/metadata",
            repeated=f"metadata-type:{key}",
        )
    if type(metadata) is not dict:
        metadata = {}
    log.events.append(Event(key, data.get("value"), milliseconds, metadata, line))
