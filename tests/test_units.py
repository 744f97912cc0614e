"""Quantities for people (trainmark.scorer.units) and tables that are never cut (trainmark.terminal)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from trainmark.scorer.units import duration, energy, human, iec_bytes, si

from trainmark.terminal import interval, print_table


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (567291904, "By", "541 MiB"),
        (1023, "By", "1023 B"),
        (1024, "By", "1 KiB"),
        (32 * 1024**3, "By", "32 GiB"),
        (2.5e9, "By/s", "2.33 GiB/s"),
        (124_439_808, "1", "124 M"),
        (818_176, "{param}", "818 k"),
        (80, "{step}", "80 steps"),
        (6.001e6, "J", "6 MJ (1.67 kWh)"),
        (7360, "J", "7.36 kJ"),
        (0.5, "J", "500 mJ"),
        (1923.4, "J/{sample}", "1.92 kJ/sample"),
        (1120, "W", "1.12 kW"),
        (1.24e11, "{flop}/s", "124 GFLOP/s"),
        (21_900, "{token}/s", "21.9 k tokens/s"),
        (10.71, "{step}/s", "10.7 steps/s"),
        (0.0701, "s", "70.1 ms"),
        (3720, "s", "1 h 02 min"),
        (51.23, "%", "51.2 %"),
        (None, "J", "null"),
    ],
)
def test_human_units(value, unit, shown):
    assert human(value, unit) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0 s"),
        (4.5e-5, "45 µs"),
        (12.34, "12.3 s"),
        (59.6, "59.6 s"),
        (245, "4 min 05 s"),
        (3599.6, "1 h 00 min"),
        (3720, "1 h 02 min"),
        (90000, "1 d 01 h"),
    ],
)
def test_durations_read_as_people_say_them(seconds, shown):
    assert duration(seconds) == shown


def test_prefix_boundaries_never_show_1000_of_a_prefix():
    assert si(999_700, "J") == "1 MJ"
    assert iec_bytes(1023.9 * 1024) == "1 MiB"
    assert energy(359_999) == "360 kJ" and energy(360_000) == "360 kJ (0.1 kWh)"


def test_an_interval_of_a_positive_quantity_never_shows_a_negative_bound():
    assert interval(-0.1769, 2.5, "{step}/s") == "0 to 2.5 steps/s"
    assert interval(10.5, 10.8, "{step}/s") == "10.5 to 10.8 steps/s"
    assert interval(None, 3.0, "s") == "-"


def _printed(width: int, rows) -> tuple[bool, str]:
    buffer = io.StringIO()
    out = Console(file=buffer, width=width, highlight=False)
    tabled = print_table(out, ["name", "value"], rows)
    return tabled, buffer.getvalue()


def test_a_table_that_fits_is_a_table_and_one_that_does_not_is_stacked_whole():
    rows = [["kernel_time_share_normalization", "a value with several words " * 4]]
    tabled, text = _printed(200, rows)
    assert tabled and "kernel_time_share_normalization" in text
    tabled, text = _printed(40, rows)
    assert not tabled
    assert "…" not in text and "kernel_time_share_normalization" in text
    assert " ".join(text.split()).count("a value with several words") == 4
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 40
