"""The `trainmark` command: a thin shell over the library.

Each command parses its arguments, calls one library function and renders the result. Imports
of the parts happen inside the commands, so `trainmark validate` never pays for torch.
Errors: one line on stderr that says what is wrong and how to fix it, exit status 1; usage
errors exit 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    name="trainmark",
    help="Report what training an AI model costs (compute, memory, energy) so that reports compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bundle_app = typer.Typer(help="Pack, finalize and inspect bundles.", no_args_is_help=True)
app.add_typer(bundle_app, name="bundle")
import_app = typer.Typer(help="Convert third-party results into bundles.", no_args_is_help=True)
app.add_typer(import_app, name="import")
registry_app = typer.Typer(help="Create and upgrade a registry's database.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")
keys_app = typer.Typer(help="API keys for submitting to a registry.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

_debug = {"on": False}


def _version(value: bool) -> None:
    if value:
        from trainmark import __version__

        typer.echo(f"trainmark {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback when something fails.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    _debug["on"] = debug


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _plain(text: object) -> str:
    """Text from a bundle or an error, escaped so that brackets in it are not read as markup."""
    from rich.markup import escape

    return escape(str(text))


def _existing(path: Path) -> Path:
    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist")
    return path


# ---------------------------------------------------------------- validate

@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="A bundle directory or .tar.gz archive.", callback=_existing)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    full_jsonschema: Annotated[bool, typer.Option(
        "--jsonschema", help="Also check full JSON Schema conformance (slower; for registries and auditors).")] = False,
    max_findings: Annotated[int, typer.Option(min=1, help="Show at most this many findings.")] = 200,
) -> None:
    """Check a bundle against the standard: manifest, every trace record, digests and file list.

    Exits 0 when the bundle is valid, 1 when it is not, 2 on usage errors.

    Example: trainmark validate spec/examples/valid/gpu-h100-gpt2 --json
    """
    from trainmark.spec.validate import validate_bundle

    report = validate_bundle(path, full_jsonschema=full_jsonschema, max_findings=max_findings)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        console = _console()
        if report.valid:
            console.print(f"[green]valid[/green] bundle {report.bundle_id}  (schema {_plain(report.schema_version)})")
        else:
            console.print(f"[red]invalid[/red]: {report.error_count} error(s) in {_plain(path)}")
        for finding in report.findings:
            colour = {"error": "red", "warning": "yellow", "info": "blue"}[finding.severity.value]
            console.print(f"  [{colour}]{finding.severity.value:7}[/{colour}] {finding.code:22} "
                          f"{_plain(finding.location())}  {_plain(finding.message)}")
        if report.findings_total > len(report.findings):
            console.print(f"  ... {report.findings_total - len(report.findings)} more finding(s) not shown "
                          f"(cap {report.max_findings}; raise it with --max-findings)")
    raise typer.Exit(0 if report.valid else 1)


# ---------------------------------------------------------------- run

def _knobs(pairs: list[str] | None, named: dict) -> dict:
    """--set knob=value pairs, then the named options that were given."""
    overrides = {}
    for item in pairs or []:
        name, separator, value = item.partition("=")
        if not separator:
            raise typer.BadParameter(f"--set takes knob=value, not {item!r}")
        overrides[name.strip()] = value.strip()
    overrides.update({name: value for name, value in named.items() if value is not None})
    return overrides


@app.command(context_settings={"allow_extra_args": False})
def run(
    out: Annotated[Path, typer.Option("--out", help="The bundle directory to create (must not exist or be empty).")],
    preset: Annotated[Optional[str], typer.Option(help="tiny (CPU, under a minute a run), small, gpt2-125m.")] = None,
    config_file: Annotated[Optional[Path], typer.Option("--config", help="A TOML or YAML file of knobs.")] = None,
    repeats: Annotated[int, typer.Option(help="Independent runs (fresh process, own seed) in the bundle.")] = 3,
    knob: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override a knob: --set max_steps=40 (repeatable; see docs/runner.md for every knob).")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Optimizer steps per run.")] = None,
    precision: Annotated[Optional[str], typer.Option(help="fp32, bf16_autocast or fp16_autocast (CUDA).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the first run; run k uses seed + k - 1.")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Train on this text file or folder (byte-level).")] = None,
    nproc_per_node: Annotated[int, typer.Option(help="Processes per node (torchrun, DDP).")] = 1,
    nnodes: Annotated[int, typer.Option(help="Nodes (torchrun); --out must be shared.")] = 1,
    node_rank: Annotated[int, typer.Option(help="This node's rank when nnodes > 1.")] = 0,
    master_addr: Annotated[str, typer.Option(help="Node 0's address when nnodes > 1.")] = "127.0.0.1",
    master_port: Annotated[int, typer.Option(help="Node 0's port when nnodes > 1.")] = 29500,
    replay: Annotated[Optional[Path], typer.Option(help="Replay a GPU sensor recording instead of live sensors.")]
    = None,
    calibration: Annotated[Optional[Path], typer.Option(
        help="A calibration record (trainmark calibrate) of this configuration and hardware to compare with.")]
    = None,
) -> None:
    """Train for real, measuring compute, memory and energy, and write one bundle of N runs.

    Knobs come from the preset (default tiny), then --config, then --set and the named options.

    Example: trainmark run --preset tiny --repeats 3 --out runs/tiny
    """
    from trainmark.reference_runner.config import build_config
    from trainmark.reference_runner.launch import Topology, run_bundle

    named = {"max_steps": max_steps, "precision": precision, "device": device, "seed": seed,
             "data": str(data) if data else None}
    config = build_config(preset, config_file, _knobs(knob, named))
    topology = Topology(nproc_per_node, nnodes, node_rank, master_addr, master_port)
    outcome = run_bundle(config, repeats, out, topology, replay, calibration)
    console = _console()
    statuses = ", ".join(f"{run_id} {status}" for run_id, status in outcome.statuses.items())
    if outcome.bundle_id:
        console.print(f"wrote bundle {outcome.bundle_id} to {_plain(out)} in {outcome.seconds:.0f} s ({statuses})")
    else:
        console.print(f"node {node_rank} ran its ranks ({statuses}); node 0 writes the manifest")


@app.command()
def repeat(
    out: Annotated[Path, typer.Option("--out", help="The bundle directory to create (must not exist or be empty).")],
    command: Annotated[list[str], typer.Argument(help="The command to run, after --: it uses trainmark.track.")],
    runs: Annotated[int, typer.Option("-n", "--runs", help="Independent runs (a fresh process each).")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the first run (TRAINMARK_SEED); run k gets seed + k - 1.")] = 0,
) -> None:
    """Run your own training script N times as the independent runs of one bundle.

    Each run is a fresh process with TRAINMARK_BUNDLE, TRAINMARK_RUN_ID and TRAINMARK_SEED set;
    the script's trainmark.track appends its run; the manifest is written after the last run. A
    run that crashes is kept as failed with its exit status; a run whose configuration or
    hardware differs from the first is refused.

    Example: trainmark repeat -n 3 --out bundles/mlp -- python examples/plain_loop.py
    """
    from trainmark.reference_runner.repeat import repeat as repeat_runs

    console = _console(stderr=True)
    outcome = repeat_runs(command, runs, out, seed, on_run=lambda progress: console.print(progress.line()))
    statuses = ", ".join(f"{run_id} {status}" for run_id, status in outcome.statuses.items())
    _console().print(f"wrote bundle {outcome.bundle_id} to {_plain(out)} in {outcome.seconds:.0f} s ({statuses})")


@app.command()
def calibrate(
    out: Annotated[Path, typer.Option("--out", help="The calibration record (JSON) to write.")],
    bundle: Annotated[Optional[Path], typer.Option(help="Where to keep the calibration runs' bundle "
                                                        "(default: beside the record).")] = None,
    preset: Annotated[Optional[str], typer.Option(help="Default: gpt2-125m on a GPU, tiny on a CPU.")] = None,
    repeats: Annotated[int, typer.Option(help="Calibration runs (at least 3).")] = 5,
    knob: Annotated[Optional[list[str]], typer.Option("--set", help="Override a knob: --set max_steps=40.")] = None,
    replay: Annotated[Optional[Path], typer.Option(help="Replay a GPU sensor recording instead of live sensors.")]
    = None,
) -> None:
    """Run the calibration configuration several times here and write a calibration record.

    Later runs of the same configuration on this hardware (trainmark run --calibration RECORD)
    report their deviation from it with an error margin.

    Example: trainmark calibrate --preset tiny --repeats 5 --out calibration/this-machine.json
    """
    import torch

    from trainmark.reference_runner.config import build_config
    from trainmark.reference_runner.launch import calibrate as run_calibration

    chosen = preset or ("gpt2-125m" if torch.cuda.is_available() and replay is None else "tiny")
    config = build_config(chosen, None, _knobs(knob, {}))
    record = run_calibration(config, repeats, out, bundle or out.with_suffix(".bundle"), replay=replay)
    console = _console()
    console.print(f"calibration record {_plain(out)}: {record['hardware']['description']}, {config.name}")
    for name, stats in record["metrics"].items():
        console.print(f"  {name:18} {stats['mean']:.6g} {_plain(stats['unit'])} +- {stats['ci95_half_width']:.3g} "
                      f"(95 %, n = {stats['n']})")


# ---------------------------------------------------------------- score

class Rubric(str, Enum):
    r1 = "r1"


@app.command()
def score(
    path: Annotated[Path, typer.Argument(help="A bundle directory or .tar.gz archive.", callback=_existing)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the score report as JSON.")] = False,
    rubric: Annotated[Rubric, typer.Option(help="The rubric version to score with.")] = Rubric.r1,
) -> None:
    """Compute the reproducibility score: gates, fidelity F, completeness H, confidence C, badges.

    Every point lost comes with a finding that points into the bundle. Exits 0 when the bundle
    was scored (ranked or not), 1 when it is not a readable bundle, 2 on usage errors.

    Example: trainmark score spec/examples/valid/cpu-tiny --json
    """
    from trainmark.scorer.score import score_bundle

    report = score_bundle(path, rubric.value)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        _render_score(report)


def _render_score(report) -> None:
    from rich.table import Table

    console = _console()
    ranked = "[green]ranked[/green]" if report.ranked else "[red]not ranked[/red] (a gate failed)"
    console.print(f"[bold]score {report.score:.3f}[/bold]  {ranked}  rubric {report.rubric_version}  "
                  f"bundle {report.bundle_id}")
    for letter, name in (("F", "fidelity"), ("H", "completeness")):
        parts = ", ".join(f"{part} {'n/a' if value is None else f'{value:.3f}'}"
                          for part, value in report.components[name].items())
        console.print(f"  {letter} {name:13} {getattr(report, name):.3f}   ({_plain(parts)})")
    console.print(f"  C confidence    {report.confidence:.3f}")
    console.print(f"  badges: {', '.join(report.badges) or 'none'}")
    for gate in report.gates:
        mark = "[green]pass[/green]" if gate.passed else "[red]FAIL[/red]"
        console.print(f"  gate {gate.code:10} {mark}  {_plain(gate.message)}")
    table = Table("metric", "unit", "n", "mean", "CV", "95 % interval", "headline", "method")
    for name, stats in report.statistics.items():
        def number(value):
            return "-" if value is None else f"{value:.4g}"
        interval = "-" if stats.ci95_low is None else f"{stats.ci95_low:.4g} .. {stats.ci95_high:.4g}"
        table.add_row(name, _plain(stats.unit), str(stats.n), number(stats.mean),
                      "-" if stats.cv is None else f"{stats.cv * 100:.2f} %", interval, number(stats.headline),
                      _plain(stats.headline_method))
    console.print(table)
    for severity in ("error", "warning", "info"):
        group = [finding for finding in report.findings if finding.severity.value == severity]
        if group:
            console.print(f"[bold]{severity}s ({len(group)})[/bold]")
            for finding in group:
                console.print(f"  {finding.code:22} {_plain(finding.location())}  {_plain(finding.message)}")


# ---------------------------------------------------------------- import

@import_app.command("mlperf")
def import_mlperf(
    result_dir: Annotated[Path, typer.Argument(help="A folder of result_<i>.txt (and power/, scaling.json).",
                                               callback=_existing)],
    out: Annotated[Path, typer.Option("--out", help="The bundle directory to create.")],
    system: Annotated[Optional[Path], typer.Option(help="The system description JSON (default: system.json in "
                                                        "RESULT_DIR, if there).")] = None,
    benchmark: Annotated[Optional[str], typer.Option(help="The benchmark, when the logs do not name it.")] = None,
    origin: Annotated[Optional[str], typer.Option(help="Where the logs come from (repository, commit, path).")]
    = None,
) -> None:
    """Convert an MLPerf Training result folder into a bundle: runs, power traces, energy, and the originals.

    Every problem met in the logs is recorded in the bundle (source.issues) for the scorer.

    Example: trainmark import mlperf ../shared/data/mlperf/lenovo_v5.0_llama2_70b_lora --out lenovo
    """
    from trainmark.spec.importers.mlperf import import_mlperf as convert

    if not result_dir.is_dir():
        raise typer.BadParameter(f"{result_dir} is not a folder")
    bundle_id = convert(result_dir, out, system, benchmark, origin)
    _console().print(f"imported {_plain(result_dir)} as bundle {bundle_id} in {_plain(out)}")


# ---------------------------------------------------------------- schema

class SchemaFormat(str, Enum):
    linkml = "linkml"
    json_schema = "json-schema"
    markdown = "markdown"


class SchemaRoot(str, Enum):
    manifest = "Manifest"
    step = "StepRecord"
    power = "PowerSample"
    memory = "MemorySample"
    epoch = "EpochRecord"
    kernels = "KernelBreakdown"
    allocator = "AllocatorEvent"


@app.command()
def schema(
    output_format: Annotated[SchemaFormat, typer.Option("--format", help="Which form of the standard to print.")]
    = SchemaFormat.linkml,
    root: Annotated[SchemaRoot, typer.Option(help="With --format json-schema: the document or record type.")]
    = SchemaRoot.manifest,
) -> None:
    """Print the bundle standard: the LinkML source, a JSON Schema, or the Markdown field reference.

    Example: trainmark schema --format json-schema --root StepRecord > step_record.schema.json
    """
    if output_format is SchemaFormat.linkml:
        from trainmark.spec.reference_doc import schema_text

        typer.echo(schema_text(), nl=False)
    elif output_format is SchemaFormat.json_schema:
        from trainmark.spec.conformance import schema_document

        typer.echo(json.dumps(schema_document(root.value), indent=2))
    else:
        from trainmark.spec.reference_doc import render_markdown

        typer.echo(render_markdown(), nl=False)


# ---------------------------------------------------------------- trade-off studies

@app.command()
def sweep(
    out: Annotated[Path, typer.Option("--out", help="The folder of the sweep: one bundle per point, and sweep.json.")],
    vary: Annotated[list[str], typer.Option("--vary", help="A knob and its values: --vary precision=fp32,bf16_autocast "
                                                           "(repeatable: the grid is every combination).")],
    preset: Annotated[Optional[str], typer.Option(help="tiny (CPU, under a minute a run), small, gpt2-125m.")] = None,
    config_file: Annotated[Optional[Path], typer.Option("--config", help="A TOML or YAML file of knobs.")] = None,
    knob: Annotated[Optional[list[str]], typer.Option("--set", help="A knob fixed for every point: --set max_steps=40.")]
    = None,
    repeats: Annotated[int, typer.Option(help="Independent runs per point.")] = 3,
) -> None:
    """Train a grid of configurations, one bundle of N runs per point; resumable.

    Every point is checked before anything trains. A point already complete (same configuration,
    every run completed) is skipped when the sweep runs again; a half-done one is trained again.

    Example: trainmark sweep --preset tiny --vary precision=fp32,bf16_autocast --repeats 3 --out sweeps/precision
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from trainmark.reference_runner.sweep import grid, parse_vary, run_sweep

    points = grid(preset, config_file, _knobs(knob, {}), parse_vary(vary))
    console = _console()
    console.print(f"{len(points)} point(s) x {repeats} run(s) into {_plain(out)}")
    # A live bar in a terminal; in a log (not a terminal) one plain line per finished run instead.
    live = console.is_terminal
    with Progress(TextColumn("[bold]sweep[/bold]"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
                  TimeElapsedColumn(), TextColumn("{task.fields[left]}  {task.fields[status]}"),
                  console=console, transient=False, disable=not live) as bar:
        task = bar.add_task("sweep", total=None, left="", status="")

        def progress(state: dict) -> None:
            done, total = state["runs_done"], state["runs_total"]
            times = state["run_seconds"]
            left = f"about {_duration(sum(times) / len(times) * (total - done))} left" if times else ""
            status = f"{state['point']}: {state['run_id']} {state['status']}" if state.get("run_id") else \
                f"{state['skipped']} point(s) already complete" if state["skipped"] else ""
            bar.update(task, total=total, completed=done, left=left, status=_plain(status))
            if not live and state.get("run_id"):
                console.print(f"run {done}/{total}  {_plain(status)} in {_duration(times[-1])}; {left}")

        outcome = run_sweep(points, repeats, out, progress)
    for name in outcome.skipped:
        console.print(f"  {_plain(name)}: already complete, skipped")
    for name in outcome.trained:
        console.print(f"  {_plain(name)}: trained")
    console.print(f"sweep done in {_duration(outcome.seconds)}: compare it with  trainmark compare {_plain(out)}")


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


@app.command()
def compare(
    bundles: Annotated[list[Path], typer.Argument(help="Bundles, or folders of bundles (a sweep).",
                                                  callback=lambda paths: [_existing(path) for path in paths])],
    baseline: Annotated[Optional[Path], typer.Option(help="The bundle the others are compared with (path, folder "
                                                          "name or bundle id; default: the first).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write a self-contained HTML page.")] = None,
) -> None:
    """Compare configurations side by side, with 95 % intervals and ratios to a baseline.

    A change whose interval includes "no change" is shown as such. Differences in hardware or
    software between the bundles are stated.

    Example: trainmark compare sweeps/precision --baseline precision=fp32
    """
    from rich.table import Table

    from trainmark.scorer.compare import QUANTITIES
    from trainmark.scorer.compare import compare as compare_bundles
    from trainmark.scorer.report import comparison_html, show

    comparison = compare_bundles(bundles, baseline)
    if html is not None:
        html.write_text(comparison_html(comparison))
    if as_json:
        typer.echo(json.dumps(comparison.as_dict(), indent=2))
        return
    console = _console()

    def cell_text(cell) -> str:
        if cell.headline is None:
            return "[dim]not measured[/dim]"
        text = show(cell.headline, cell.unit)
        if cell.ci95_low is not None:
            text += f"\n[{show(cell.ci95_low, cell.unit)}, {show(cell.ci95_high, cell.unit)}]"
        if cell.ratio is not None:
            colour = "green" if "better" in cell.verdict else "red" if "worse" in cell.verdict else "dim"
            interval = "" if cell.ratio_low is None else f" [{cell.ratio_low:.3f}, {cell.ratio_high:.3f}]"
            text += f"\n[{colour}]x{cell.ratio:.3f}{interval}\n{cell.verdict}[/{colour}]"
        elif cell.verdict == "baseline":
            text += "\n[dim]baseline[/dim]"
        return text

    configurations = comparison.configurations
    if console.width >= 30 + 17 * len(QUANTITIES):  # one row per configuration, as the HTML page has it
        table = Table("configuration", *[label for _, label, _ in QUANTITIES], title="trainmark compare",
                      show_lines=True)
        for configuration in configurations:
            table.add_row(_plain(configuration.label),
                          *[cell_text(configuration.cells[name]) for name, _, _ in QUANTITIES])
    else:  # a narrow terminal: one column per configuration
        table = Table("quantity", *[_plain(configuration.label) for configuration in configurations],
                      title="trainmark compare (one column per configuration)", show_lines=True)
        for name, label, _ in QUANTITIES:
            table.add_row(label, *[cell_text(configuration.cells[name]) for configuration in configurations])
    console.print(table)
    for line in comparison.differences:
        console.print(f"differs: {_plain(line)}")
    for caveat in comparison.caveats:
        console.print(f"[yellow]caveat:[/yellow] {_plain(caveat)}")
    if html is not None:
        console.print(f"wrote {_plain(html)}")


@app.command()
def report(
    path: Annotated[Path, typer.Argument(help="A bundle directory or .tar.gz archive.", callback=_existing)],
    html: Annotated[Optional[Path], typer.Option("--html", help="Where to write the report (default: "
                                                                "BUNDLE-report.html beside the bundle).")] = None,
) -> None:
    """Write a self-contained HTML report of one bundle: what was run, the score and its findings,
    the per-stage table, the kernel breakdown, and plots of every run.

    Example: trainmark report runs/tiny --html tiny.html
    """
    from trainmark.scorer.report import bundle_report_html

    target = html or path.parent / f"{path.name.removesuffix('.tar.gz')}-report.html"
    text, score_report = bundle_report_html(path)
    target.write_text(text)
    _console().print(f"wrote {_plain(target)} (score {score_report.score:.3f}, "
                     f"{'ranked' if score_report.ranked else 'not ranked'})")


# ---------------------------------------------------------------- registry

DbOption = Annotated[Optional[str], typer.Option(
    "--db", envvar="TRAINMARK_DB", show_envvar=True,
    help="Database URL: sqlite:///PATH or postgresql://USER@HOST/DB (default: ./trainmark-registry/registry.db).")]
BlobsOption = Annotated[Optional[Path], typer.Option(
    "--blobs", envvar="TRAINMARK_BLOBS", show_envvar=True,
    help="The trace blob folder (default: ./trainmark-registry/blobs).")]


def _open_store(db: str | None, blobs: Path | None):
    from trainmark.registry.database import default_blobs, default_url
    from trainmark.registry.store import Store

    return Store(db or default_url(), blobs or default_blobs())


@registry_app.command("init")
def registry_init(db: DbOption = None, blobs: BlobsOption = None) -> None:
    """Create a registry (or bring an existing one to this trainmark's schema).

    Example: trainmark registry init --db sqlite:///registry/registry.db --blobs registry/blobs
    """
    _migrate(db, blobs)


@registry_app.command("upgrade")
def registry_upgrade(db: DbOption = None, blobs: BlobsOption = None) -> None:
    """Apply the database migrations this trainmark needs (the server refuses an older database).

    Example: trainmark registry upgrade --db postgresql://trainmark@db.example.org/registry
    """
    _migrate(db, blobs)


def _migrate(db: str | None, blobs: Path | None) -> None:
    from trainmark.registry.blobs import BlobStore
    from trainmark.registry.database import default_blobs, default_url, upgrade

    url, folder = db or default_url(), blobs or default_blobs()
    revision = upgrade(url)
    BlobStore(folder)
    _console().print(f"registry ready: {_plain(url)} at schema revision {revision}; blobs in {_plain(folder)}")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who the key is for (shown in the audit log).")],
    db: DbOption = None, blobs: BlobsOption = None,
) -> None:
    """Create an API key for submitting; it is printed once and only its hash is stored.

    Example: trainmark keys create --name "Example Lab"
    """
    store = _open_store(db, blobs)
    try:
        key = store.create_key(name)
    finally:
        store.close()
    typer.echo(key)
    _console(stderr=True).print("store this key now: the registry keeps only its hash and cannot show it again")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on.")] = 8000,
    rate_limit: Annotated[float, typer.Option(help="Submissions a minute per API key.", min=0.1)] = 60.0,
    db: DbOption = None, blobs: BlobsOption = None,
) -> None:
    """Serve the registry: the leaderboard at /, the API under /api/v1, its documentation at /docs.

    Refuses a database that is not at this trainmark's schema and names the command that upgrades it.

    Example: trainmark serve --port 8000
    """
    import uvicorn

    from trainmark.registry.api import create_app, prepare_serving_process

    store = _open_store(db, blobs)
    app = create_app(store, submissions_per_minute=rate_limit)
    prepare_serving_process()
    _console(stderr=True).print(f"trainmark registry on http://{host}:{port}/  (API documentation: /docs)")
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        store.close()


@app.command()
def submit(
    path: Annotated[Path, typer.Argument(help="A bundle directory or .tar.gz archive.", callback=_existing)],
    to: Annotated[Optional[str], typer.Option("--to", help="A registry's URL, e.g. https://registry.example.org")]
    = None,
    key: Annotated[Optional[str], typer.Option(envvar="TRAINMARK_KEY", show_envvar=True,
                                               help="Your API key (with --to).")] = None,
    db: DbOption = None, blobs: BlobsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"id", "score", "ranked", "findings"}.')] = False,
) -> None:
    """Submit a bundle to a registry: over HTTP (--to URL --key KEY) or straight into a database (--db).

    The registry validates, scores and stores it; the same bundle twice gets the same id.

    Example: trainmark submit runs/tiny --to http://127.0.0.1:8000 --key tmk_...
    """
    import tempfile

    from trainmark.registry.client import RegistryError, submit_archive
    from trainmark.registry.store import SubmissionRejected
    from trainmark.spec.archive import pack

    if to is not None and key is None:
        raise typer.BadParameter("--to needs --key (or TRAINMARK_KEY)")
    if to is not None and db is not None:
        raise typer.BadParameter("give either --to (a registry server) or --db (a database), not both")
    with tempfile.TemporaryDirectory(prefix="trainmark-submit-") as scratch:
        archive = path
        if path.is_dir():
            archive = Path(scratch) / "bundle.tar.gz"
            pack(path, archive)
        try:
            if to is not None:
                status, answer = submit_archive(to, key, archive)
                created = status == 201
                page = to.rstrip("/") + answer.get("page", "")
            else:
                store = _open_store(db, blobs)
                try:
                    outcome = store.submit(archive)
                finally:
                    store.close()
                answer, created, page = outcome.as_dict(), outcome.created, None
        except (RegistryError, SubmissionRejected) as refused:
            if as_json:
                body = refused.body if isinstance(refused, RegistryError) else {
                    "error": str(refused), "findings": [finding.as_dict() for finding in refused.findings]}
                typer.echo(json.dumps(body or {"error": str(refused)}, indent=2))
                raise typer.Exit(1) from None
            raise
    if as_json:
        typer.echo(json.dumps({name: answer[name] for name in ("id", "score", "ranked", "findings")}, indent=2))
        return
    console = _console()
    state = "accepted" if created else "already in the registry"
    ranked = "[green]ranked[/green]" if answer["ranked"] else "[red]not ranked[/red]"
    console.print(f"{state}: {answer['id']}  score {answer['score']:.3f}  {ranked}  "
                  f"{len(answer['findings'])} finding(s)")
    if page:
        console.print(f"  {_plain(page)}")


@app.command()
def leaderboard(
    db: DbOption = None, blobs: BlobsOption = None,
    metric: Annotated[str, typer.Option(help="steps_per_second, flops_per_joule or energy_per_step.")]
    = "steps_per_second",
    device_model: Annotated[Optional[str], typer.Option(help="Only this device model.")] = None,
    precision: Annotated[Optional[str], typer.Option(help="Only this precision policy.")] = None,
    include_unranked: Annotated[bool, typer.Option("--all", help="Also list entries that are not ranked.")]
    = False,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many entries.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON.")] = False,
) -> None:
    """Print the leaderboard: ranked by score, then by the 95 % bound of the efficiency metric.

    Example: trainmark leaderboard --metric flops_per_joule
    """
    from rich import box
    from rich.table import Table

    from trainmark.registry.store import BoardQuery

    store = _open_store(db, blobs)
    try:
        page = store.leaderboard(BoardQuery(metric=metric, device_model=device_model, precision=precision,
                                            include_unranked=include_unranked, limit=limit))
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(page.rows, indent=2))
        return
    bound = "high" if metric == "energy_per_step" else "low"
    console = _console()
    wide = console.width >= 150
    short = {"steps_per_second": "steps/s", "flops_per_joule": "FLOP/J", "energy_per_step": "J/step"}.get(metric, metric)
    # A narrow terminal gets fewer, wider columns (configuration in one, badges and what is
    # missing in another), no vertical rules and a blank line between entries, so that nothing
    # is cut short.
    if wide:
        columns = ["#", "submitter", "model", "hardware", "precision", "score", f"{short} (95 % {bound})", "badges",
                   "missing"]
    else:
        columns = ["#", "submitter", "configuration", "score", f"{short} (95 % {bound})", "badges; missing"]
    table = Table(title="trainmark leaderboard", box=box.HEAVY_HEAD if wide else box.SIMPLE_HEAD,
                  leading=0 if wide else 1, pad_edge=wide)
    for name in columns:  # a name longer than its column folds onto the next line, whole
        table.add_column(name, overflow="fold", max_width=None if wide or name != "submitter" else 12)
    for position, row in enumerate(page.rows, start=1):
        value, limit_value = row[metric], row[f"{metric}_{bound}"]
        shown = "not measured" if value is None else _number(value) + (
            "" if limit_value is None else f" ({_number(limit_value)})")
        hardware = f"{row['device_count']} x {row['device_model']}"
        badges = ", ".join(row["badges"])
        if wide:
            described = [_plain(row["model_name"]), _plain(hardware), row["precision"]]
            notes = [_plain(badges), _plain(row["missing"])]
        else:
            described = [_plain(f"{row['model_name']}, {row['precision']}\n{hardware}")]
            notes = [_plain("\n".join(filter(None, [badges, row["missing"] and f"missing {row['missing']}"])))]
        table.add_row(str(position) if row["ranked"] else "-", _plain(row["submitter"]), *described,
                      f"{row['score']:.3f}", shown, *notes)
    console.print(table, soft_wrap=False)  # soft wrapping would let the table run past the width
    if not page.rows:
        console.print("no entries yet: trainmark submit BUNDLE --db ... adds one")


# ---------------------------------------------------------------- bundle

@bundle_app.command("pack")
def bundle_pack(
    directory: Annotated[Path, typer.Argument(help="The bundle directory.", callback=_existing)],
    output: Annotated[Path, typer.Option("-o", "--output", help="The .tar.gz to write.")],
) -> None:
    """Validate a bundle directory and pack it as a reproducible .tar.gz for transport.

    Refuses an invalid bundle (run trainmark validate to see why).

    Example: trainmark bundle pack runs/tiny -o tiny.tar.gz
    """
    from trainmark.spec.archive import pack
    from trainmark.spec.errors import TrainmarkError
    from trainmark.spec.validate import validate_bundle

    if not directory.is_dir():
        raise typer.BadParameter(f"{directory} is not a directory")
    report = validate_bundle(directory, max_findings=1)
    if not report.valid:
        first = report.findings[0]
        raise TrainmarkError(f"{directory} is not a valid bundle ({report.error_count} error(s), first: "
                             f"{first.location()} {first.message}); see trainmark validate {directory}")
    pack(directory, output)
    _console().print(f"packed bundle {report.bundle_id} into {output}")


@bundle_app.command("finalize")
def bundle_finalize(
    directory: Annotated[Path, typer.Argument(help="What a killed or crashed producer left behind.",
                                              callback=_existing)],
) -> None:
    """Close the runs a killed producer left open (status interrupted) and write the manifest.

    Example: trainmark bundle finalize out/tiny
    """
    from trainmark.spec.bundle import finalize

    report = finalize(directory)
    console = _console()
    console.print(f"finalized bundle {report.bundle_id}")
    for run_id in report.closed_runs:
        console.print(f"  run {run_id}: interrupted")
    for path in report.dropped_partial_lines:
        console.print(f"  dropped an incomplete last line in {path}")


@bundle_app.command("show")
def bundle_show(
    path: Annotated[Path, typer.Argument(help="A bundle directory or .tar.gz archive.", callback=_existing)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the overview as JSON.")] = False,
) -> None:
    """Print what a bundle reports: system, model, training, and each run's headline metrics.

    Example: trainmark bundle show spec/examples/valid/cpu-tiny
    """
    from trainmark.spec.archive import open_bundle
    from trainmark.spec.bundle import bundle_id, read_manifest
    from trainmark.spec.overview import bundle_overview

    with open_bundle(path) as root:
        document, manifest = read_manifest(root)
        overview = bundle_overview(manifest, bundle_id(document))
    if as_json:
        typer.echo(json.dumps(overview, indent=2))
        return
    _render_overview(overview)


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() and abs(value) < 1e15 else f"{value:.4g}"


def _render_overview(overview: dict) -> None:
    from rich.table import Table

    from trainmark.spec.overview import HEADLINE_METRICS

    console = _console()
    system, model, training = overview["system"], overview["model"], overview["training"]
    parameters = model["parameters_total"]
    lines = [
        f"bundle    {overview['bundle_id']}  schema {overview['schema_version']}",
        f"producer  {overview['producer']}",
        *([overview["description"]] if overview["description"] else []),
        f"system    {system['nodes']} node(s): {', '.join(system['devices'])}; host {system['host_cpu']}",
        f"software  {overview['software']}",
        f"model     {model['name']} ({model['architecture_family']}, "
        f"{_number(parameters) if parameters is not None else 'unknown'} parameters, {model['precision_policy']})",
        f"training  global batch {training['global_batch_size']}, sequence {training['sequence_length']}, "
        f"world size {training['world_size']}, {training['max_steps']} steps planned",
        f"files     {overview['files']} ({overview['bytes']} bytes)",
    ]
    for line in lines:
        console.print(line, markup=False)
    runs = overview["runs"]
    table = Table("metric (global)", "unit", "method", *[_plain(f"{run['run_id']} ({run['status']}, seed {run['seed']})")
                                               for run in runs])
    reasons: dict[str, str] = {}
    for name in HEADLINE_METRICS:
        views = [run["metrics"].get(name) for run in runs]
        present = [view for view in views if view is not None]
        if not present:
            continue
        cells = []
        for view in views:
            if view is None:
                cells.append("-")
            elif view["value"] is None:
                cells.append("null")
                reasons[name] = view["unavailable_reason"]
            else:
                cells.append(_number(view["value"]))
        methods = sorted({view["method"] for view in present if view["value"] is not None})
        table.add_row(name, _plain(present[0]["unit"]), _plain("/".join(methods) or "-"),
                      *[_plain(cell) for cell in cells])
    console.print(table)
    for name, reason in reasons.items():
        console.print(f"null {name}: {reason}", markup=False)


def main() -> None:
    """Entry point: run the app; turn trainmark's own errors into one line and exit status 1."""
    from trainmark.spec.errors import TrainmarkError

    try:
        app()
    except TrainmarkError as error:
        if _debug["on"]:
            raise
        _console(stderr=True).print(f"[red]error:[/red] {_plain(error)}")
        sys.exit(1)
