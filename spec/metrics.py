"""Building metric objects: a measured value with its provenance, or null with the reason."""

from __future__ import annotations


def measured(
    name: str,
    unit: str,
    value: float,
    method: str,
    source: str,
    tool: str,
    *,
    scope: str = "global",
    note: str | None = None,
    **target: int,
) -> dict:
    """A metric object with a value (target: device=, node= or rank= for those scopes)."""
    metric = {
        "name": name,
        "scope": scope,
        **target,
        "value": value,
        "unit": unit,
        "method": method,
        "source": source,
        "tool": tool,
    }
    if note:
        metric["note"] = note
    return metric


def unavailable(name: str, unit: str, reason: str, *, scope: str = "global", **target: int) -> dict:
    """A metric that could not be measured: null, and why (never a zero)."""
    return {"name": name, "scope": scope, **target, "value": None, "unit": unit, "unavailable_reason": reason}


def measured_or_unavailable(
    name: str,
    unit: str,
    value: float | None,
    method: str,
    source: str,
    tool: str,
    reason: str,
    *,
    scope: str = "global",
    note: str | None = None,
    **target: int,
) -> dict:
    """`measured` when there is a value, else `unavailable` with `reason`."""
    if value is None:
        return unavailable(name, unit, reason, scope=scope, **target)
    return measured(name, unit, value, method, source, tool, scope=scope, note=note, **target)
