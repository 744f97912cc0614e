"""The record types of a bundle: the one table that every other place reads.

A trace file holds records of one type (the schema's `RecordType` enum). Everything the code
needs to know about a type is in its row here: the schema class its records are, where its file
lives in the layout (spec/layout.py), whether it is JSON Lines or one JSON document, its published
JSON Schema (tools/codegen.py, spec/conformance.py, `trainmark schema --root`), which of its fields
date it, and whether measurement channels feed it (methodology.channels).

Adding a record type: add its class and its value of `RecordType` to spec/schema/trainmark.yaml,
run `make spec`, and add one row to `RECORD_TYPES` (docs/contributing.md, "A new record type").
tests/test_records.py checks that this table and the schema agree.

This module imports nothing generated (tools/codegen.py reads it before the models exist);
`RecordType.model` loads the generated class on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MANIFEST_CLASS = "Manifest"
"""The root class of manifest.json."""

DOCUMENT = "document"
"""The `RecordType` of human-readable files (README.md, source/...): no records, not validated beyond the digest."""

Timing = Literal["interval", "instant"]


@dataclass(frozen=True)
class RecordType:
    """One row of the table: what the code needs to know about one kind of trace record."""

    name: str
    """The value of the schema's `RecordType` enum (the `record_type` of a `files` entry)."""
    class_name: str
    """The schema class (and generated model) of one record."""
    stem: str
    """The file name in runs/<run_id>/ without extension: `steps` -> steps.jsonl, steps.rank1.jsonl."""
    json_lines: bool
    """True: JSON Lines, one record per line; False: the file is one JSON document (record_count 1)."""
    schema_file: str
    """The published JSON Schema: spec/jsonschema/<schema_file>.schema.json."""
    timing: Timing | None
    """Which fields date a record: `interval` start_unix_ns + duration_s, `instant` time_unix_ns, None undated."""
    channel_fed: bool = False
    """Whether methodology.channels feed these records (samplers with a rate and a `channel` field)."""
    ranks_share_files: bool = False
    """Whether a rank's file may hold other ranks' records (one sampler recording every process's memory)."""

    @property
    def extension(self) -> str:
        """`jsonl` or `json`."""
        return "jsonl" if self.json_lines else "json"

    @property
    def model(self) -> type:
        """The generated pydantic model of one record (spec/models.py)."""
        from trainmark.spec import models

        return getattr(models, self.class_name)


RECORD_TYPES: dict[str, RecordType] = {
    row.name: row
    for row in (
        RecordType("step", "StepRecord", "steps", True, "step_record", "interval"),
        RecordType("power_sample", "PowerSample", "power", True, "power_sample", "instant", channel_fed=True),
        RecordType(
            "memory_sample",
            "MemorySample",
            "memory",
            True,
            "memory_sample",
            "instant",
            channel_fed=True,
            ranks_share_files=True,
        ),
        RecordType("epoch", "EpochRecord", "epochs", True, "epoch_record", "interval"),
        RecordType("kernel_breakdown", "KernelBreakdown", "kernels", False, "kernel_breakdown", None),
        RecordType("allocator_event", "AllocatorEvent", "allocator", True, "allocator_event", "instant"),
    )
}
"""Every trace record type by its `RecordType` name; `document` files have no row (no records)."""

JSON_SCHEMA_FILES: dict[str, str] = {
    MANIFEST_CLASS: "manifest",
    **{row.class_name: row.schema_file for row in RECORD_TYPES.values()},
}
"""The published JSON Schemas: root class -> spec/jsonschema/<stem>.schema.json."""

JSON_LINES_TYPES = frozenset(name for name, row in RECORD_TYPES.items() if row.json_lines)
CHANNEL_RECORD_TYPES = frozenset(name for name, row in RECORD_TYPES.items() if row.channel_fed)
