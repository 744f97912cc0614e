"""Quantities for people: IEC prefixes for bytes, SI prefixes for everything else, kWh beside
joules, durations as "1 h 02 min". Only for display: every `--json` output and every `data-value`
on a page keeps the exact number.

`human(value, unit)` takes a UCUM unit code as the bundle writes it (`By`, `J`, `W`, `s`,
`{flop}/s`, `{step}/s`, `1`, ...) and returns one short string that never loses its unit.
"""

from __future__ import annotations

import math

SI_PREFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
IEC_PREFIXES = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
JOULES_PER_KWH = 3.6e6
UNIT_NAMES = {
    "{flop}": "FLOP",
    "{flop}/s": "FLOP/s",
    "{flop}/J": "FLOP/J",
    "{step}": "steps",
    "{step}/s": "steps/s",
    "{step}/kJ": "steps/kJ",
    "{token}/s": "tokens/s",
    "{sample}/s": "samples/s",
    "J/{step}": "J/step",
    "J/{sample}": "J/sample",
    "J/{update}": "J/update",
    "{alloc}/{step}": "allocations/step",
    "1/s": "/s",
    "1": "",
    "{param}": "",
    "{parameter}": "",
    "%": "%",
}


def _significant(value: float, digits: int = 3) -> str:
    """`digits` significant figures without an exponent for the magnitudes a prefix leaves (< 1000)."""
    if value == 0:
        return "0"
    return f"{value:.{digits}g}"  # below 1e-3 this keeps its exponent: honest, and short


def si(value: float, unit: str = "", digits: int = 3) -> str:
    """`value` with an SI prefix (k, M, G, T, P) and `unit` after it: 1.24e8 -> "124 M"."""
    magnitude = abs(value)
    for factor, prefix in SI_PREFIXES:
        if magnitude >= factor * 0.9995:
            return f"{_significant(value / factor, digits)} {prefix}{unit}".rstrip()
    if unit == "J" and 0 < magnitude < 1:
        return f"{_significant(value * 1000, digits)} mJ"
    if unit == "W" and 0 < magnitude < 1:
        return f"{_significant(value * 1000, digits)} mW"
    return f"{_significant(value, digits)} {unit}".rstrip()


def iec_bytes(value: float) -> str:
    """Bytes in binary steps: 567291904 -> "541 MiB"."""
    index, scaled = 0, float(value)
    while abs(scaled) >= 1024 * 0.9995 and index < len(IEC_PREFIXES) - 1:
        scaled /= 1024
        index += 1
    if index == 0:
        return f"{int(value)} B" if float(value).is_integer() else f"{value:.3g} B"
    return f"{_significant(scaled)} {IEC_PREFIXES[index]}"


def energy(joules: float) -> str:
    """Joules with an SI prefix, and kilowatt-hours beside them from 0.1 kWh on (the unit of an
    electricity bill): "6.00 MJ (1.67 kWh)"."""
    text = si(joules, "J")
    if abs(joules) >= 0.1 * JOULES_PER_KWH:
        text += f" ({_significant(joules / JOULES_PER_KWH)} kWh)"
    return text


def duration(seconds: float) -> str:
    """A span of time as people say it: "70.1 ms", "12.3 s", "4 min 05 s", "1 h 02 min", "3 d 04 h"."""
    if not math.isfinite(seconds):
        return str(seconds)
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds == 0:
        return "0 s"
    if seconds < 1e-3:
        return f"{sign}{_significant(seconds * 1e6)} µs"
    if seconds < 1:
        return f"{sign}{_significant(seconds * 1e3)} ms"
    if seconds < 60:
        return f"{sign}{_significant(seconds)} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{sign}{whole // 60} min {whole % 60:02d} s"
    minutes = round(seconds / 60)
    if minutes < 24 * 60:
        return f"{sign}{minutes // 60} h {minutes % 60:02d} min"
    hours = round(seconds / 3600)
    return f"{sign}{hours // 24} d {hours % 24:02d} h"


def unit_name(unit: str) -> str:
    """The UCUM code as a person reads it: "{flop}/s" -> "FLOP/s", "By" -> "bytes"."""
    if unit == "By":
        return "bytes"
    if unit == "By/s":
        return "bytes/s"
    return UNIT_NAMES.get(unit, unit.replace("{", "").replace("}", ""))


def human(value: float | int | None, unit: str = "") -> str:
    """One value in the unit a person reads fastest; None reads "null" (never 0)."""
    if value is None:
        return "null"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if unit == "By":
        return iec_bytes(value)
    if unit == "By/s":
        return iec_bytes(value) + "/s"
    if unit == "J":
        return energy(value)
    if unit == "s":
        return duration(value)
    if unit == "%":
        return f"{_significant(value)} %"
    if unit in ("1", "", "{param}", "{parameter}"):
        if float(value).is_integer() and abs(value) < 1e4:
            return str(int(value))
        return si(value, "")
    name = unit_name(unit)
    if name.startswith("/"):  # 1/s
        return f"{si(value, '')}{name}" if abs(value) >= 1e3 else f"{_significant(value)}{name}"
    if "/" in name and not name.startswith(("FLOP", "J", "W", "bytes")):
        # a rate of countable things (steps/s, tokens/s, allocations/step): the prefix goes on the number
        return f"{si(value, '')} {name}" if abs(value) >= 1e3 else f"{_significant(value)} {name}"
    return si(value, name)
