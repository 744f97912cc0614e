"""What the `trainmark` command prints for people: tables that are never cut.

A table is printed as a table only when every cell fits the terminal whole (rich measures it
first); otherwise it is printed stacked, one entry after another with one line per field, so an
80-column terminal, a log file or a pipe sees every name and every number in full, never an
ellipsis. Long free text folds onto the next line at a space. Quantities are shown in the units
people read (trainmark.scorer.units); the exact values are what `--json` prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from trainmark.scorer.units import human, si


def console(stderr: bool = False) -> Console:
    """A console that wraps long lines at spaces (never cuts them). On stderr (an error, a notice) a
    message stays one line, however long, for the terminal to wrap and a log to grep."""
    return Console(stderr=stderr, highlight=False, soft_wrap=stderr)


def plain(text: object) -> str:
    """Text from a bundle or an error, escaped so that brackets in it are not read as markup."""
    return escape(str(text))


def bound(value: float | None, unit: str) -> str:
    """An interval bound of a quantity that cannot be negative (a rate, a time, bytes, joules):
    a negative bound says only that the interval reaches zero, so it is shown as 0."""
    if value is None:
        return "-"
    if unit == "J":  # kWh once, beside the headline, not at both ends of every interval
        return si(max(0.0, value), "J")
    return human(max(0.0, value), unit)


def interval(low: float | None, high: float | None, unit: str) -> str:
    """A 95 % interval of a positive quantity as "a to b unit", never with a negative end."""
    if low is None or high is None:
        return "-"
    first, second = bound(low, unit), bound(high, unit)
    number, _, rest = first.partition(" ")
    if rest and second.endswith(" " + rest):  # the unit once: "10.5 to 10.8 steps/s"
        return f"{number} to {second}"
    return f"{first} to {second}"


@dataclass
class Column:
    """One column of a table: its header, and whether its cells are numbers (right-aligned, kept
    on one line) or text (folded at spaces)."""

    header: str
    numeric: bool = False


def _table(columns: Sequence[Column], rows: Sequence[Sequence[str]], title: str | None, lines: bool) -> Table:
    table = Table(
        title=title,
        show_lines=lines,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        title_style="bold",
        padding=(0, 1, 0, 0),
    )
    for column in columns:
        table.add_column(column.header, justify="right" if column.numeric else "left", no_wrap=True, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def table_fits(out: Console, columns: Sequence[Column | str], rows: Sequence[Sequence[str]]) -> bool:
    """Whether the table of `rows` fits `out` with every cell whole on its lines."""
    columns = [column if isinstance(column, Column) else Column(column) for column in columns]
    return _table(columns, rows, None, False).__rich_measure__(out, out.options).maximum <= out.width


def print_table(
    out: Console,
    columns: Sequence[Column | str],
    rows: Sequence[Sequence[str]],
    title: str | None = None,
    lines: bool = False,
    inline: bool = False,
) -> bool:
    """Print `rows` as a table when it fits `out` whole, else stacked: the first cell as the entry's
    heading, then its other cells one per line ("header  cell"), or with `inline` on one folded
    line ("header cell; header cell"). Cells are rich markup. Returns True for a table."""
    columns = [column if isinstance(column, Column) else Column(column) for column in columns]
    table = _table(columns, rows, title, lines)
    if table.__rich_measure__(out, out.options).maximum <= out.width:
        out.print(table)
        return True
    if title:
        out.print(f"[bold]{title}[/bold]")
    for row in rows:
        out.print(Text.from_markup(row[0], style="bold"))
        cells = [(column.header, cell.replace("\n", "; ")) for column, cell in zip(columns[1:], row[1:])]
        if inline:
            grid = Table.grid(padding=(0, 0))
            grid.add_column(width=4, no_wrap=True)
            grid.add_column(overflow="fold")
            grid.add_row("", Text.from_markup("; ".join(f"{header} {cell}" for header, cell in cells)))
            out.print(grid)
        else:
            field_lines(out, cells, indent=2)
        if lines:
            out.print()
    return False


def field_lines(out: Console, fields: Sequence[tuple[str, str]], indent: int = 0) -> None:
    """Lines of "name  value" (both rich markup): a long value folds at spaces under itself,
    never cut."""
    grid = Table.grid(padding=(0, 2, 0, 0))
    if indent:
        grid.add_column(width=indent - 2 if indent > 2 else indent, no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in fields:
        grid.add_row(*([""] if indent else []), Text.from_markup(name), Text.from_markup(value))
    out.print(grid)


PLAIN_EVERY_S = 30.0
"""Outside a terminal, a progress line at least this often..."""
PLAIN_EVERY_FRACTION = 0.10
"""...and whenever a run has gone another tenth of its steps."""


def progress_text(state: dict) -> str:
    """One progress line: "run 2 of 3 · training · step 40 of 80 · loss 2.31 · 12.3 steps/s · about
    1 min 05 s left (estimate)"."""
    from trainmark.scorer.units import duration

    parts = [
        f"run {state['run']} of {state['runs']}" + (f" ({state['label']})" if state["label"] else ""),
        state["phase"],
    ]
    if state["phase"] == "training" and state["step"] is not None:
        parts.append(f"step {state['step']} of {state['steps']}")
        if state["loss"] is not None:
            parts.append(f"loss {state['loss']:.3f}")
        if state["steps_per_second"]:
            parts.append(human(state["steps_per_second"], "{step}/s"))
    if state["left_s"] is None:
        parts.append("time left: known from the first step")
    else:
        parts.append(f"about {duration(round(state['left_s']))} left (estimate)")
    parts.append(f"{duration(round(state['elapsed_s']))} so far")
    return " · ".join(parts)


class ProgressDisplay:
    """Shows a job's progress: a live line in a terminal; outside one (a log, a pipe) a plain
    line at every phase change, every tenth of a run's steps, and at least every 30 s."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self.live = None
        self.last_printed = 0.0
        self.last_key: tuple = ()
        self.last_tenth = -1
        if out.is_terminal:
            from rich.live import Live

            self.live = Live(Text(""), console=out, refresh_per_second=4, transient=True)
            self.live.start()

    def update(self, progress) -> None:
        import time

        state = progress.snapshot()
        text = progress_text(state)
        if self.live is not None:
            self.live.update(Text(text))
            return
        key = (state["run"], state["phase"])
        tenth = -1
        if state["phase"] == "training" and state["step"] is not None and state["steps"]:
            tenth = int(10 * state["step"] / state["steps"])
        now = time.monotonic()
        if key != self.last_key or tenth > self.last_tenth or now - self.last_printed >= PLAIN_EVERY_S:
            self.out.print(Text(text), soft_wrap=True)  # one line a log can be searched by
            self.last_key, self.last_tenth, self.last_printed = key, tenth, now

    def note(self, text: str) -> None:
        """A line that stays (a run ended), above the live line in a terminal."""
        self.out.print(Text(text), soft_wrap=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
