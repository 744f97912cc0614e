"""spec/records.py, the one table of record types, agrees with the schema and drives the layout."""

from __future__ import annotations

import pytest
import yaml
from trainmark.spec import models
from trainmark.spec.layout import role_of, trace_path
from trainmark.spec.records import DOCUMENT, JSON_SCHEMA_FILES, MANIFEST_CLASS, RECORD_TYPES

from tests.bundles import REPO

SCHEMA = yaml.safe_load((REPO / "spec" / "schema" / "trainmark.yaml").read_text())


def test_every_record_type_of_the_schema_has_one_row():
    enum_values = set(SCHEMA["enums"]["RecordType"]["permissible_values"])
    assert set(RECORD_TYPES) | {DOCUMENT} == enum_values


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
def test_a_row_names_a_schema_class_with_fields_matching_its_timing(name):
    row = RECORD_TYPES[name]
    assert row.class_name in SCHEMA["classes"]
    assert row.model is getattr(models, row.class_name)
    fields = row.model.model_fields
    if row.timing == "interval":
        assert {"start_unix_ns", "duration_s"} <= set(fields)
    elif row.timing == "instant":
        assert "time_unix_ns" in fields
    else:
        assert not {"start_unix_ns", "time_unix_ns"} & set(fields)
    if row.channel_fed:
        assert "channel" in fields


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
@pytest.mark.parametrize("rank", [None, 3])
def test_a_trace_path_reads_back_as_its_record_type(name, rank):
    path = trace_path("run-1", name, rank)
    assert path.endswith(".jsonl" if RECORD_TYPES[name].json_lines else ".json")
    role = role_of(path)
    assert (role.record_type, role.run_id, role.rank) == (name, "run-1", rank)


def test_the_wrong_extension_has_no_place_in_the_layout():
    for name, row in RECORD_TYPES.items():
        wrong = "json" if row.json_lines else "jsonl"
        assert role_of(f"runs/run-1/{row.stem}.{wrong}") is None, name


def test_stems_and_schema_files_are_unique():
    rows = list(RECORD_TYPES.values())
    assert len({row.stem for row in rows}) == len(rows)
    assert len(set(JSON_SCHEMA_FILES.values())) == len(JSON_SCHEMA_FILES) == len(rows) + 1
    assert JSON_SCHEMA_FILES[MANIFEST_CLASS] == "manifest"
