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

MANIFEST_NAME = "manifest.json"
DRAFT_NAME = "manifest.draft.json"
"""Written at the start of a run with everything known then; finalize turns it into the manifest."""

TRACE_STEMS = {
    "step": "steps",
    "power_sample": "power",
    "memory_sample": "memory",
    "epoch": "epochs",
    "kernel_breakdown": "kernels",
    "allocator_event": "allocator",
}
JSON_SCHEMA_FILES = {
    "Manifest": "manifest",
    "StepRecord": "step_record",
    "PowerSample": "power_sample",
    "MemorySample": "memory_sample",
    "EpochRecord": "epoch_record",
    "KernelBreakdown": "kernel_breakdown",
    "AllocatorEvent": "allocator_event",
}
"""The published JSON Schemas: root class -> spec/jsonschema/<stem>.schema.json."""

_RECORD_TYPE_OF_STEM = {stem: record_type for record_type, stem in TRACE_STEMS.items()}

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
    stem = TRACE_STEMS[record_type]
    extension = "json" if record_type == "kernel_breakdown" else "jsonl"
    suffix = f".rank{rank}" if rank is not None else ""
    return f"runs/{run_id}/{stem}{suffix}.{extension}"


def role_of(path: str) -> FileRole | None:
    """The role a bundle-relative path has in the layout, or None for a name it does not know."""
    match = _TRACE_NAME.match(path)
    if match:
        record_type = _RECORD_TYPE_OF_STEM.get(match["stem"])
        expected_ext = "json" if record_type == "kernel_breakdown" else "jsonl"
        if record_type is None or match["ext"] != expected_ext:
            return None
        rank = int(match["rank"]) if match["rank"] is not None else None
        return FileRole(record_type, match["run"], rank)
    match = _DOCUMENT_NAME.match(path)
    if match:
        return FileRole("document", match["run"], None)
    if path.startswith("source/"):
        return FileRole("document", None, None)
    return None
