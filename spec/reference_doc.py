"""The field reference of the standard as Markdown, rendered from the LinkML schema.

`trainmark schema --format markdown` prints it and docs/reference.md is its committed copy
(a test keeps the two equal). It reads the schema YAML itself, so it needs no LinkML install.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml


@cache
def schema_text() -> str:
    """The LinkML schema as shipped with this trainmark."""
    return resources.files("trainmark.spec").joinpath("schema", "trainmark.yaml").read_text(encoding="utf-8")


def schema() -> dict:
    """The LinkML schema, parsed."""
    return yaml.safe_load(schema_text())


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|") if text not in (None, "") else ""


def class_fields(document: dict, class_name: str) -> list[tuple[str, dict]]:
    """(name, slot definition) of a class in order, inherited fields first, slot_usage applied."""
    definition = document["classes"][class_name]
    fields: list[tuple[str, dict]] = []
    if definition.get("is_a"):
        fields.extend(class_fields(document, definition["is_a"]))
    for name in definition.get("slots", []):
        slot = dict(document["slots"][name])
        slot.update(definition.get("slot_usage", {}).get(name, {}))
        fields.append((name, slot))
    for name, slot in (definition.get("attributes") or {}).items():
        fields.append((name, slot or {}))
    return fields


def _bounds(slot: dict) -> str:
    low, high = slot.get("minimum_value"), slot.get("maximum_value")
    if low is None and high is None:
        return ""
    return f"{'' if low is None else low} .. {'' if high is None else high}"


def _range(slot: dict, document: dict) -> str:
    kind = slot.get("range", document.get("default_range", "string"))
    anchor = kind.lower()
    linked = (
        kind in document.get("classes", {}) or kind in document.get("enums", {}) or kind in document.get("types", {})
    )
    text = f"[{kind}](#{anchor})" if linked else kind
    if slot.get("multivalued"):
        text = f"list of {text}"
    return text


def metric_units(document: dict) -> dict[str, str]:
    """Catalog metric name -> UCUM unit, read from the rules of class Metric."""
    units = {}
    for rule in document["classes"]["Metric"].get("rules", []):
        name = rule["preconditions"]["slot_conditions"].get("name", {}).get("equals_string")
        unit = rule["postconditions"]["slot_conditions"].get("unit", {}).get("equals_string")
        if name and unit:
            units[name] = unit
    return units


def render_markdown() -> str:
    """The whole field reference."""
    document = schema()
    lines = [
        f"# Field reference: {document['title']} {document['version']}",
        "",
        "Generated from `spec/schema/trainmark.yaml` by `trainmark schema --format markdown`; do not edit.",
        "The prose that explains these fields is in [standard.md](standard.md).",
        "",
        "## Classes",
        "",
    ]
    for class_name, definition in document["classes"].items():
        lines += [f"### {class_name}", "", _cell(definition.get("description")), ""]
        if definition.get("is_a"):
            lines += [f"Extends [{definition['is_a']}](#{definition['is_a'].lower()}).", ""]
        lines += ["| field | type | required | unit | bounds | meaning |", "|---|---|---|---|---|---|"]
        for name, slot in class_fields(document, class_name):
            unit = (slot.get("unit") or {}).get("ucum_code", "")
            lines.append(
                f"| `{name}` | {_range(slot, document)} | {'yes' if slot.get('required') else 'no'} "
                f"| {_cell(unit)} | {_bounds(slot)} | {_cell(slot.get('description'))} |"
            )
        rules = definition.get("rules") or []
        described = [rule["description"] for rule in rules if rule.get("description")]
        if described:
            lines += ["", "Rules:", ""] + [f"- {text}" for text in described]
        if definition.get("any_of"):
            names = [name for branch in definition["any_of"] for name in branch["slot_conditions"]]
            lines += ["", f"At least one of: {', '.join(f'`{name}`' for name in names)}."]
        lines.append("")

    units = metric_units(document)
    lines += [
        "## Metric catalog",
        "",
        "Every run-level metric has one of these names, and the name fixes its unit.",
        "",
        "| name | unit | meaning |",
        "|---|---|---|",
    ]
    for name, value in document["enums"]["MetricName"]["permissible_values"].items():
        lines.append(f"| `{name}` | `{units.get(name, '')}` | {_cell((value or {}).get('description'))} |")
    lines += ["", "## Enumerations", ""]
    for enum_name, definition in document["enums"].items():
        if enum_name == "MetricName":
            continue
        lines += [f"### {enum_name}", "", _cell(definition.get("description")), "", "| value | meaning |", "|---|---|"]
        for value, meta in definition["permissible_values"].items():
            lines.append(f"| `{value}` | {_cell((meta or {}).get('description'))} |")
        lines.append("")
    lines += ["## Types", "", "| type | base | pattern | meaning |", "|---|---|---|---|"]
    for type_name, definition in document["types"].items():
        lines.append(
            f'| <a id="{type_name.lower()}"></a>{type_name} | {definition["typeof"]} '
            f"| `{_cell(definition.get('pattern'))}` | {_cell(definition.get('description'))} |"
        )
    return "\n".join(lines) + "\n"
