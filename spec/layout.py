"""Where files live inside a bundle, and what a path says about its contents.

    manifest.json
    runs/<run_id>/steps.jsonl          (steps.rank<k>.jsonl when several ranks write)
    runs/<run_id>/power.jsonl          power.rank<k>.jsonl
    runs/<run_id>/memory.jsonl         memory.rank<k>.jsonl
    runs/<run_id>/epochs.jsonl         epochs.rank<k>.jsonl
    runs/<run_id>/kernels.json         kernels.rank<k>.json
    runs/<run_id>/allocator.jsonl      allocator.rank<k>.jsonl
    *.md, runs/<run_id>/*.md           documents
    source/...                         originals of a converted bundle, kept byte for byte (documents)

The manifest's `files` list is authoritative for readers; these names let a writer (and
`trainmark bundle finalize`) describe files that several processes wrote without talking to
each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trainmark.spec.records import DOCUMENT, RECORD_TYPES

MANIFEST_NAME = "manifest.json"
DRAFT_NAME = "manifest.draft.json"
"""Written at the start of a run with everything known then; finalize turns it into the manifest."""

_TRACE_NAME = re.compile(
    r"^runs/(?P<run>[A-Za-z0-9][A-Za-z0-9._-]{0,63})/"
    r"(?P<stem>[a-z]+)(?:\.rank(?P<rank>0|[1-9][0-9]{0,6}))?\.(?P<ext>jsonl|json)$"
)
_DOCUMENT_NAME = re.compile(r"^(?:runs/(?P<run>[A-Za-z0-9][A-Za-z0-9._-]{0,63})/)?[A-Za-z0-9][A-Za-z0-9._-]*\.md$")


@dataclass(frozen=True)
class FileRole:
    """What a bundle path holds according to the layout."""

    record_type: str
    run_id: str | None
    rank: int | None


def trace_path(run_id: str, record_type: str, rank: int | None = None) -> str:
    """Bundle-relative path of a trace file; `rank` only when several ranks write their own."""
    row = RECORD_TYPES[record_type]
    suffix = f".rank{rank}" if rank is not None else ""
    return f"runs/{run_id}/{row.stem}{suffix}.{row.extension}"


def role_of(path: str) -> FileRole | None:
    """The role a bundle-relative path has in the layout, or None for a name it does not know."""
    match = _TRACE_NAME.match(path)
    if match:
        row = next((row for row in RECORD_TYPES.values() if row.stem == match["stem"]), None)
        if row is None or match["ext"] != row.extension:
            return None
        rank = int(match["rank"]) if match["rank"] is not None else None
        return FileRole(row.name, match["run"], rank)
    match = _DOCUMENT_NAME.match(path)
    if match:
        return FileRole(DOCUMENT, match["run"], None)
    if path.startswith("source/"):
        return FileRole(DOCUMENT, None, None)
    return None
