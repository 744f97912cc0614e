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
from typing import Annotated

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
calibration_app = typer.Typer(
    help="Calibrations the registry holds (rubric r2's Calibrated badge).", no_args_is_help=True
)
registry_app.add_typer(calibration_app, name="calibration")
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
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    _debug["on"] = debug


def _console(stderr: bool = False):
    from trainmark.terminal import console

    return console(stderr)


def _plain(text: object) -> str:
    """Text from a bundle or an error, escaped so that brackets in it are not read as markup."""
    from trainmark.terminal import plain

    return plain(text)


JsonOption = Annotated[bool, typer.Option("--json", help="Print the outcome as JSON (exact values) for machines.")]


def _existing(path: Path) -> Path:
    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist")
    return path


# ---------------------------------------------------------------- validate


@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="A bundle directory or .tar.gz archive.", callback=_existing)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    full_jsonschema: Annotated[
        bool,
        typer.Option(
            "--jsonschema", help="Also check full JSON Schema conformance (slower; for registries and auditors)."
        ),
    ] = False,
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
            console.print(
                f"  [{colour}]{finding.severity.value:7}[/{colour}] {finding.code:22} "
                f"{_plain(finding.location())}  {_plain(finding.message)}"
            )
        if report.findings_total > len(report.findings):
            console.print(
                f"  ... {report.findings_total - len(report.findings)} more finding(s) not shown "
                f"(cap {report.max_findings}; raise it with --max-findings)"
            )
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
    preset: Annotated[str | None, typer.Option(help="tiny (CPU, under a minute a run), small, gpt2-125m.")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="A TOML or YAML file of knobs.")] = None,
    repeats: Annotated[int, typer.Option(help="Independent runs (fresh process, own seed) in the bundle.")] = 3,
    knob: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a knob: --set max_steps=40 (repeatable; see docs/runner.md for every knob)."
        ),
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps per run.")] = None,
    precision: Annotated[str | None, typer.Option(help="fp32, bf16_autocast or fp16_autocast (CUDA).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the first run; run k uses seed + k - 1.")] = None,
    data: Annotated[Path | None, typer.Option(help="Train on this text file or folder (byte-level).")] = None,
    nproc_per_node: Annotated[int, typer.Option(help="Processes per node (torchrun, DDP).")] = 1,
    nnodes: Annotated[int, typer.Option(help="Nodes (torchrun); --out must be shared.")] = 1,
    node_rank: Annotated[int, typer.Option(help="This node's rank when nnodes > 1.")] = 0,
    master_addr: Annotated[str, typer.Option(help="Node 0's address when nnodes > 1.")] = "127.0.0.1",
    master_port: Annotated[int, typer.Option(help="Node 0's port when nnodes > 1.")] = 29500,
    replay: Annotated[Path | None, typer.Option(help="Replay a GPU sensor recording instead of live sensors.")] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            help="A calibration record (trainmark calibrate) of this configuration and hardware to compare with."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train for real, measuring compute, memory and energy, and write one bundle of N runs.

    Knobs come from the preset (default tiny), then --config, then --set and the named options.

    Example: trainmark run --preset tiny --repeats 3 --out runs/tiny
    """
    from trainmark.reference_runner.config import build_config
    from trainmark.reference_runner.launch import Topology, run_bundle

    named = {
        "max_steps": max_steps,
        "precision": precision,
        "device": device,
        "seed": seed,
        "data": str(data) if data else None,
    }
    config = build_config(preset, config_file, _knobs(knob, named))
    topology = Topology(nproc_per_node, nnodes, node_rank, master_addr, master_port)
    outcome = _with_progress(
        as_json,
        lambda display: run_bundle(
            config,
            repeats,
            out,
            topology,
            replay,
            calibration,
            on_progress=display.update,
            on_run=lambda run_id, status, seconds: display.note(f"{run_id} {status} in {_duration(seconds)}"),
        ),
    )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "bundle": str(out),
                    "bundle_id": outcome.bundle_id,
                    "runs": outcome.statuses,
                    "duration_s": outcome.seconds,
                },
                indent=2,
            )
        )
        return
    from trainmark.scorer.units import duration

    console = _console()
    statuses = ", ".join(f"{run_id} {status}" for run_id, status in outcome.statuses.items())
    if outcome.bundle_id:
        console.print(f"wrote bundle {outcome.bundle_id} to {_plain(out)} in {duration(outcome.seconds)} ({statuses})")
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
    bundle: Annotated[
        Path | None, typer.Option(help="Where to keep the calibration runs' bundle (default: beside the record).")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="Default: gpt2-125m on a GPU, tiny on a CPU.")] = None,
    repeats: Annotated[int, typer.Option(help="Calibration runs (at least 3).")] = 5,
    knob: Annotated[list[str] | None, typer.Option("--set", help="Override a knob: --set max_steps=40.")] = None,
    replay: Annotated[Path | None, typer.Option(help="Replay a GPU sensor recording instead of live sensors.")] = None,
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
    record = _with_progress(
        False,
        lambda display: run_calibration(
            config, repeats, out, bundle or out.with_suffix(".bundle"), replay=replay, on_progress=display.update
        ),
    )
    console = _console()
    console.print(f"calibration record {_plain(out)}: {record['hardware']['description']}, {config.name}")
    for name, stats in record["metrics"].items():
        console.print(
            f"  {name:18} {stats['mean']:.6g} {_plain(stats['unit'])} +- {stats['ci95_half_width']:.3g} "
            f"(95 %, n = {stats['n']})"
        )


# ---------------------------------------------------------------- score


class Rubric(str, Enum):
    r1 = "r1"
    r2 = "r2"


@app.command()
def score(
    path: Annotated[Path, typer.Argument(help="A bundle directory or .tar.gz archive.", callback=_existing)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the score report as JSON.")] = False,
    rubric: Annotated[
        Rubric,
        typer.Option(
            help="The rubric version to score with (r2, the current one, by default; r1 reproduces earlier scores)."
        ),
    ] = Rubric.r2,
) -> None:
    """Compute the reproducibility score: gates, fidelity F, completeness H, confidence C, badges.

    Every point lost comes with a finding that points into the bundle. Exits 0 when the bundle
    was scored (ranked or not), 1 when it is not a readable bundle, 2 on usage errors.

    Example: trainmark score spec/examples/valid/cpu-tiny --json
    """
    from trainmark.scorer.advice import score_advice
    from trainmark.scorer.score import score_bundle

    report = score_bundle(path, rubric.value)
    if as_json:
        typer.echo(
            json.dumps({**report.as_dict(), "advice": [item.as_dict() for item in score_advice(report)]}, indent=2)
        )
    else:
        _render_score(report)


def _render_score(report) -> None:
    from trainmark.scorer.units import human
    from trainmark.terminal import Column, field_lines, interval, print_table

    console = _console()
    ranked = "[green]ranked[/green]" if report.ranked else "[red]not ranked[/red] (a gate failed)"
    console.print(f"[bold]score {report.score:.3f}[/bold]  {ranked}  rubric {report.rubric_version}")
    fields = [("bundle", report.bundle_id)]
    if report.provenance:
        fields.append(("provenance", _plain(report.provenance)))
    fields += [("not ranked because", _plain(gate.message)) for gate in report.gates if not gate.passed]
    for letter, name in (("F", "fidelity"), ("H", "completeness")):
        parts = ", ".join(
            f"{part} {'n/a' if value is None else f'{value:.3f}'}" for part, value in report.components[name].items()
        )
        fields.append((f"{letter} {name}", f"{getattr(report, name):.3f}  ({_plain(parts)})"))
    fields.append(("C confidence", f"{report.confidence:.3f}"))
    fields.append(("badges", ", ".join(report.badges) or "none"))
    for gate in report.gates:
        mark = "[green]pass[/green]" if gate.passed else "[red]FAIL[/red]"
        fields.append((f"gate {gate.code}", f"{mark}  {_plain(gate.message)}"))
    field_lines(console, fields, indent=2)
    methods = {stats.headline_method for stats in report.statistics.values()}
    rows, shares = [], []
    for name, stats in report.statistics.items():
        headline = "-" if stats.headline is None else human(stats.headline, stats.unit)
        if len(methods) > 1:
            headline += f" ({stats.headline_method})"
        row = [
            _plain(name.removeprefix("kernel_time_share_")),
            _plain(headline),
            _plain(interval(stats.ci95_low, stats.ci95_high, stats.unit)),
            "-" if stats.cv is None else f"{stats.cv * 100:.2f} %",
            str(stats.n),
        ]
        (shares if name.startswith("kernel_time_share_") else rows).append(row)
    title = "statistics over the runs" + (f" (headline: {_plain(next(iter(methods)))})" if len(methods) == 1 else "")
    print_table(
        console,
        ["metric", Column("headline", True), Column("95 % interval", True), Column("CV", True), Column("n", True)],
        rows,
        title=title,
        inline=True,
    )
    if shares:
        print_table(
            console,
            [
                "kernel category",
                Column("time share", True),
                Column("95 % interval", True),
                Column("CV", True),
                Column("n", True),
            ],
            shares,
            title="kernel time shares (kernel_time_share_*)",
            inline=True,
        )
    _render_advice(console, report)
    for severity in ("error", "warning", "info"):
        group = [finding for finding in report.findings if finding.severity.value == severity]
        if group:
            console.print(f"[bold]{severity}s ({len(group)})[/bold]")
            for finding in group:
                field_lines(
                    console, [(finding.code, _plain(finding.location())), ("", _plain(finding.message))], indent=2
                )


def _render_advice(console, report) -> None:
    """What would raise the score: each part below full, its points (of 100), how, and its findings."""
    from collections import Counter

    from trainmark.scorer.advice import score_advice
    from trainmark.terminal import field_lines

    advice = score_advice(report)
    if not advice:
        return
    console.print(
        "[bold]what would raise this score[/bold] (points of 100; a finding's share is an even split "
        "of its part's points)"
    )
    rows = []
    for item in advice:
        name = item.part if item.part == item.component else f"{item.component} {item.part}"
        rows.append((f"+{item.points:.1f}", _plain(f"{name} {item.value:.3f}: {item.how}")))
        codes = Counter(finding["code"] for finding in item.findings)
        if codes:
            each = item.points / len(item.findings)
            rows.append(
                (
                    "",
                    _plain(
                        ", ".join(f"{count} x {code}" for code, count in codes.items()) + f", about {each:.2f} each"
                    ),
                )
            )
    field_lines(console, rows, indent=2)


# ---------------------------------------------------------------- import


@import_app.command("mlperf")
def import_mlperf(
    result_dir: Annotated[
        Path, typer.Argument(help="A folder of result_<i>.txt (and power/, scaling.json).", callback=_existing)
    ],
    out: Annotated[Path, typer.Option("--out", help="The bundle directory to create.")],
    system: Annotated[
        Path | None, typer.Option(help="The system description JSON (default: system.json in RESULT_DIR, if there).")
    ] = None,
    benchmark: Annotated[str | None, typer.Option(help="The benchmark, when the logs do not name it.")] = None,
    origin: Annotated[str | None, typer.Option(help="Where the logs come from (repository, commit, path).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Convert an MLPerf Training result folder into a bundle: runs, power traces, energy, and the originals.

    Every problem met in the logs is recorded in the bundle (source.issues) for the scorer.

    Example: trainmark import mlperf ../shared/data/mlperf/lenovo_v5.0_llama2_70b_lora --out lenovo
    """
    from trainmark.spec.importers.mlperf import import_mlperf as convert

    if not result_dir.is_dir():
        raise typer.BadParameter(f"{result_dir} is not a folder")
    bundle_id = convert(result_dir, out, system, benchmark, origin)
    if as_json:
        typer.echo(json.dumps({"bundle": str(out), "bundle_id": bundle_id, "source": str(result_dir)}, indent=2))
        return
    _console().print(f"imported {_plain(result_dir)} as bundle {bundle_id} in {_plain(out)}")


@import_app.command("codecarbon")
def import_codecarbon(
    csv_file: Annotated[Path, typer.Argument(help="CodeCarbon's emissions.csv.", callback=_existing)],
    out: Annotated[Path, typer.Option("--out", help="The bundle directory to create.")],
    log: Annotated[
        Path | None,
        typer.Option(
            help="CodeCarbon's log of the same runs (info level): it names the "
            "CPU tracking method, which the CSV does not."
        ),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            help="IANA zone of the CSV's timestamps (CodeCarbon writes local "
            "time without one; default: UTC, stated as an assumption)."
        ),
    ] = None,
    origin: Annotated[str | None, typer.Option(help="Where the file comes from.")] = None,
) -> None:
    """Convert CodeCarbon's emissions.csv into a bundle: one run per run_id, energies with CodeCarbon's method.

    RAPL and NVML counters stay counters; CodeCarbon's TDP-based estimate (no sensor) is `modeled`.

    Example: trainmark import codecarbon emissions.csv --log codecarbon.log --out cc
    """
    from trainmark.spec.importers.codecarbon import import_codecarbon as convert

    bundle_id = convert(csv_file, out, log, timezone, origin)
    _console().print(f"imported {_plain(csv_file)} as bundle {bundle_id} in {_plain(out)}")


# ---------------------------------------------------------------- schema


class SchemaFormat(str, Enum):
    linkml = "linkml"
    json_schema = "json-schema"
    markdown = "markdown"


def _schema_roots() -> type[Enum]:
    from trainmark.spec.records import JSON_SCHEMA_FILES  # a plain table: importing it costs nothing

    return Enum("SchemaRoot", {name: name for name in JSON_SCHEMA_FILES}, type=str)


SchemaRoot = _schema_roots()
"""The published JSON Schemas' root classes (spec/records.py), as `--root` choices."""


@app.command()
def schema(
    output_format: Annotated[
        SchemaFormat, typer.Option("--format", help="Which form of the standard to print.")
    ] = SchemaFormat.linkml,
    root: Annotated[
        SchemaRoot, typer.Option(help="With --format json-schema: the document or record type.")
    ] = SchemaRoot.Manifest,
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
    vary: Annotated[
        list[str],
        typer.Option(
            "--vary",
            help="A knob and its values: --vary precision=fp32,bf16_autocast "
            "(repeatable: the grid is every combination).",
        ),
    ],
    preset: Annotated[str | None, typer.Option(help="tiny (CPU, under a minute a run), small, gpt2-125m.")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="A TOML or YAML file of knobs.")] = None,
    knob: Annotated[
        list[str] | None, typer.Option("--set", help="A knob fixed for every point: --set max_steps=40.")
    ] = None,
    repeats: Annotated[int, typer.Option(help="Independent runs per point.")] = 3,
    as_json: JsonOption = False,
) -> None:
    """Train a grid of configurations, one bundle of N runs per point; resumable.

    Every point is checked before anything trains. A point already complete (same configuration,
    every run completed) is skipped when the sweep runs again; a half-done one is trained again.

    Example: trainmark sweep --preset tiny --vary precision=fp32,bf16_autocast --repeats 3 --out sweeps/precision
    """
    from trainmark.reference_runner.sweep import grid, parse_vary, run_sweep

    points = grid(preset, config_file, _knobs(knob, {}), parse_vary(vary))
    console = _console(stderr=as_json)
    console.print(f"{len(points)} point(s) x {repeats} run(s) into {_plain(out)}")
    outcome = _with_progress(
        as_json,
        lambda display: run_sweep(
            points,
            repeats,
            out,
            on_progress=display.update,
            on_run=lambda point, run_id, status, seconds: display.note(
                f"{point}: {run_id} {status} in {_duration(seconds)}"
            ),
        ),
    )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "sweep": str(out),
                    "trained": outcome.trained,
                    "skipped": outcome.skipped,
                    "duration_s": outcome.seconds,
                },
                indent=2,
            )
        )
        return
    for name in outcome.skipped:
        console.print(f"  {_plain(name)}: already complete, skipped")
    for name in outcome.trained:
        console.print(f"  {_plain(name)}: trained")
    console.print(f"sweep done in {_duration(outcome.seconds)}: compare it with  trainmark compare {_plain(out)}")


def _duration(seconds: float) -> str:
    from trainmark.scorer.units import duration

    return duration(seconds)


def _with_progress(to_stderr: bool, job):
    """Run `job(display)` with a progress display: a live line in a terminal, plain lines in a log
    (on stderr when stdout carries JSON)."""
    from trainmark.terminal import ProgressDisplay

    display = ProgressDisplay(_console(stderr=to_stderr))
    try:
        return job(display)
    finally:
        display.close()


@app.command()
def compare(
    bundles: Annotated[
        list[Path],
        typer.Argument(
            help="Bundles, or folders of bundles (a sweep).", callback=lambda paths: [_existing(path) for path in paths]
        ),
    ],
    baseline: Annotated[
        Path | None,
        typer.Option(
            help="The bundle the others are compared with (path, folder name or bundle id; default: the first)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
    html: Annotated[Path | None, typer.Option("--html", help="Also write a self-contained HTML page.")] = None,
) -> None:
    """Compare configurations side by side, with 95 % intervals and ratios to a baseline.

    A change whose interval includes "no change" is shown as such. Differences in hardware or
    software between the bundles are stated.

    Example: trainmark compare sweeps/precision --baseline precision=fp32
    """
    from trainmark.scorer.compare import compare as compare_bundles
    from trainmark.scorer.report import comparison_html

    comparison = compare_bundles(bundles, baseline)
    if html is not None:
        html.write_text(comparison_html(comparison))
    if as_json:
        typer.echo(json.dumps(comparison.as_dict(), indent=2))
        return
    _render_comparison(comparison)
    console = _console()
    from trainmark.terminal import field_lines

    field_lines(
        console, [("differs" if index == 0 else "", _plain(line)) for index, line in enumerate(comparison.differences)]
    )
    field_lines(console, [("[yellow]caveat[/yellow]", _plain(caveat)) for caveat in comparison.caveats])
    if html is not None:
        console.print(f"wrote {_plain(html)}")


def _render_comparison(comparison) -> None:
    """One column per bundle (named by its folder) when that fits whole, else one block per quantity."""
    from trainmark.scorer.compare import QUANTITIES
    from trainmark.scorer.units import human, si
    from trainmark.terminal import Column, field_lines, interval, print_table

    console = _console()
    from trainmark.scorer.report import bundle_names

    configurations = comparison.configurations
    names = bundle_names(comparison)
    console.print(
        f"[bold]trainmark compare: {len(configurations)} bundles, against {_plain(names[comparison.baseline])}[/bold]"
    )
    field_lines(
        console,
        [
            (
                _plain(name),
                _plain(
                    f"{configuration.label}; {configuration.runs_completed} of "
                    f"{configuration.runs_total} runs completed"
                ),
            )
            for name, configuration in zip(names, configurations)
        ],
        indent=2,
    )

    def cell_text(cell) -> str:
        if cell.headline is None:
            return "[dim]not measured[/dim]"
        text = _plain(human(cell.headline, cell.unit))
        if cell.ci95_low is not None:
            text += f"\n95 %: {_plain(interval(cell.ci95_low, cell.ci95_high, cell.unit))}"
        if cell.ratio is not None:
            colour = "green" if "better" in cell.verdict else "red" if "worse" in cell.verdict else "dim"
            ratio = f"x{si(cell.ratio)}" + (
                "" if cell.ratio_low is None else f" ({si(max(0.0, cell.ratio_low))} to {si(cell.ratio_high)})"
            )
            text += f"\n[{colour}]{ratio}\n{_plain(cell.verdict)}[/{colour}]"
        elif cell.verdict == "baseline":
            text += "\n[dim]baseline[/dim]"
        return text

    rows = [
        [label, *[cell_text(configuration.cells[name]) for configuration in configurations]]
        for name, label, _ in QUANTITIES
    ]
    print_table(
        console,
        ["quantity", *[Column(_plain(name), True) for name in names]],
        rows,
        lines=True,
        title="headline, its 95 % interval, and the ratio of means to the baseline",
    )


@app.command()
def report(
    path: Annotated[Path, typer.Argument(help="A bundle directory or .tar.gz archive.", callback=_existing)],
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Where to write the report (default: BUNDLE-report.html beside the bundle)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write a self-contained HTML report of one bundle: what was run, the score and its findings,
    the per-stage table, the kernel breakdown, and plots of every run.

    Example: trainmark report runs/tiny --html tiny.html
    """
    from trainmark.scorer.report import bundle_report_html

    target = html or path.parent / f"{path.name.removesuffix('.tar.gz')}-report.html"
    text, score_report = bundle_report_html(path)
    target.write_text(text)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "html": str(target),
                    "bundle_id": score_report.bundle_id,
                    "score": score_report.score,
                    "ranked": score_report.ranked,
                },
                indent=2,
            )
        )
        return
    _console().print(
        f"wrote {_plain(target)} (score {score_report.score:.3f}, {'ranked' if score_report.ranked else 'not ranked'})"
    )


# ---------------------------------------------------------------- registry

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="TRAINMARK_DB",
        show_envvar=True,
        help="Database URL: sqlite:///PATH or postgresql://USER@HOST/DB (default: ./trainmark-registry/registry.db).",
    ),
]
BlobsOption = Annotated[
    Path | None,
    typer.Option(
        "--blobs",
        envvar="TRAINMARK_BLOBS",
        show_envvar=True,
        help="The trace blob folder (default: ./trainmark-registry/blobs).",
    ),
]


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


@registry_app.command("rescore")
def registry_rescore(
    db: DbOption = None,
    blobs: BlobsOption = None,
    rubric: Annotated[Rubric, typer.Option(help="The rubric to score every submission under.")] = Rubric.r2,
) -> None:
    """Score every submission again under the current rubric (or the one named) from its stored
    bundle; the reports under earlier rubrics are kept, the board shows the new scores.

    Example: trainmark registry rescore --db sqlite:///registry/registry.db --blobs registry/blobs
    """
    store = _open_store(db, blobs)
    try:
        changes = store.rescore(rubric.value)
    finally:
        store.close()
    console = _console()
    for change in changes:
        old, new = change["old"], change["new"]
        console.print(
            f"{change['id'][:12]}  {old['rubric_version']} {old['score']:.3f}"
            f"{'' if old['ranked'] else ' (not ranked)'} -> {new['rubric_version']} {new['score']:.3f}"
            f"{'' if new['ranked'] else ' (not ranked)'}"
        )
    console.print(f"{len(changes)} submission(s) scored under {rubric.value}")


@calibration_app.command("add")
def registry_calibration_add(
    document: Annotated[
        Path | None, typer.Argument(help="The calibration document (JSON); or give --reference and --measured.")
    ] = None,
    reference: Annotated[
        Path | None, typer.Option(help="A bundle of the configuration's reference runs (e.g. trainmark calibrate's).")
    ] = None,
    measured: Annotated[
        Path | None, typer.Option(help="A bundle of the same configuration on the devices being calibrated.")
    ] = None,
    configuration: Annotated[
        str | None, typer.Option(help="What both ran, in words (default: the bundles' workload).")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="A registry's URL, e.g. https://registry.example.org")] = None,
    key: Annotated[
        str | None, typer.Option(envvar="TRAINMARK_KEY", show_envvar=True, help="Your API key (with --to).")
    ] = None,
    db: DbOption = None,
    blobs: BlobsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the calibration and its verdict as JSON.")] = False,
) -> None:
    """Give a registry a calibration: devices, configuration and per-run readings (reference and
    measured). The registry computes the verdict itself; a document that states one is refused.

    Example: trainmark registry calibration add --reference runs/calibration --measured runs/tiny --db sqlite:///r.db
    """
    from trainmark.registry.calibrations import document_from_bundles
    from trainmark.registry.client import post_calibration
    from trainmark.spec.jsontext import load_document

    if to is not None and key is None:
        raise typer.BadParameter("--to needs --key (or TRAINMARK_KEY)")
    if to is not None and db is not None:
        raise typer.BadParameter("give either --to (a registry server) or --db (a database), not both")
    if (document is None) == (reference is None or measured is None):
        raise typer.BadParameter("give a calibration DOCUMENT, or --reference BUNDLE and --measured BUNDLE")
    if document is not None:
        body = load_document(_existing(document).read_bytes(), file=document.name)
    else:
        body = document_from_bundles(_existing(reference), _existing(measured), configuration)
    if to is not None:
        status, held = post_calibration(to, key, body)
        created = status == 201
    else:
        store = _open_store(db, blobs)
        try:
            held, created = store.add_calibration(body)
        finally:
            store.close()
    if as_json:
        typer.echo(json.dumps(held, indent=2))
        return
    _print_calibration(held, "held" if created else "already held")


@calibration_app.command("list")
def registry_calibration_list(
    db: DbOption = None,
    blobs: BlobsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the calibrations as JSON.")] = False,
) -> None:
    """List the calibrations a registry holds, newest first, with the verdict it computed.

    Example: trainmark registry calibration list --json
    """
    store = _open_store(db, blobs)
    try:
        held = store.calibrations()
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(held, indent=2))
        return
    for calibration in held:
        _print_calibration(calibration, calibration["created_at"])
    if not held:
        _console().print("no calibrations yet: trainmark registry calibration add DOCUMENT adds one")


def _print_calibration(held: dict, state: str) -> None:
    console = _console()
    verdict = "[green]passed[/green]" if held["passed"] else "[red]failed[/red]"
    console.print(
        f"{_plain(state)}: calibration {held['id'][:16]}  {verdict}  {_plain(held['device_summary'])}  "
        f"{_plain(held['configuration'])}"
    )
    for deviation in held["deviations"]:
        console.print(
            f"  {_plain(deviation['name'])}: {deviation['deviation_percent']:+.2f} % "
            f"(margin {deviation['margin_percent']:.2f} %){'' if deviation['within_margin'] else '  outside'}"
        )


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
    db: DbOption = None,
    blobs: BlobsOption = None,
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


@keys_app.command("list")
def keys_list(
    db: DbOption = None,
    blobs: BlobsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the keys as JSON.")] = False,
) -> None:
    """List the API keys: id, name, prefix (the key's first characters), created, revoked.

    Example: trainmark keys list
    """
    store = _open_store(db, blobs)
    try:
        keys = store.list_keys()
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(keys, indent=2))
        return
    for key in keys:
        typer.echo(
            f"{key['id']}\t{key['prefix']}\t{'revoked' if key['revoked'] else 'active'}\t"
            f"{key['created_at']}\t{key['name']}"
        )


@keys_app.command("revoke")
def keys_revoke(
    which: Annotated[str, typer.Argument(help="The key's id or prefix, as trainmark keys list shows.")],
    db: DbOption = None,
    blobs: BlobsOption = None,
) -> None:
    """Revoke an API key: from now on the registry refuses it (401). Audited.

    Example: trainmark keys revoke 3
    """
    store = _open_store(db, blobs)
    try:
        key = store.revoke_key(which)
    finally:
        store.close()
    _console().print(f"revoked key {key['id']} ({_plain(key['prefix'])}..., {_plain(key['name'])})")


@registry_app.command("check")
def registry_check(
    db: DbOption = None,
    blobs: BlobsOption = None,
    grace: Annotated[
        float,
        typer.Option(
            help="Keep unreferenced blobs younger than this many seconds (another server may be committing them).",
            min=0,
        ),
    ] = 3600.0,
) -> None:
    """Find and remove what failed or killed writers left in the blob folder: partial blobs and
    scratch folders of processes that are gone, and blobs and archives no submission references.

    Example: trainmark registry check --grace 0   (with the server stopped)
    """
    store = _open_store(db, blobs)
    try:
        removed = store.sweep(grace)
    finally:
        store.close()
    _console().print(
        f"removed {removed['temporaries']} stale temporary file(s) or folder(s), "
        f"{removed['orphan_blobs']} orphan blob(s), {removed['orphan_archives']} orphan archive(s): "
        f"{removed['bytes']} bytes"
    )
    for problem in removed["errors"]:
        _console(stderr=True).print(f"could not remove {_plain(problem)}")
    if removed["errors"]:
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on.")] = 8000,
    rate_limit: Annotated[float, typer.Option(help="Submissions a minute per API key.", min=0.1)] = 60.0,
    header_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a connection may take to send a request's headers (or stay idle between requests).", min=0.1
        ),
    ] = 10.0,
    body_timeout: Annotated[
        float, typer.Option(help="Seconds an upload may send nothing before it is dropped (408).", min=0.1)
    ] = 60.0,
    db: DbOption = None,
    blobs: BlobsOption = None,
) -> None:
    """Serve the registry: the leaderboard at /, the API under /api/v1, its documentation at /docs.

    Refuses a database that is not at this trainmark's schema and names the command that upgrades it.

    Example: trainmark serve --port 8000
    """
    import uvicorn

    from trainmark.registry.api import create_app, prepare_serving_process, serving_options

    store = _open_store(db, blobs)
    removed = store.sweep()
    if removed["temporaries"] + removed["orphan_blobs"] + removed["orphan_archives"]:
        _console(stderr=True).print(
            f"removed what an earlier server left: {removed['temporaries']} temporary "
            f"file(s) or folder(s), {removed['orphan_blobs']} orphan blob(s), "
            f"{removed['orphan_archives']} orphan archive(s) ({removed['bytes']} bytes)"
        )
    app = create_app(store, submissions_per_minute=rate_limit, body_timeout_s=body_timeout)
    prepare_serving_process()
    _console(stderr=True).print(f"trainmark registry on http://{host}:{port}/  (API documentation: /docs)")
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", **serving_options(header_timeout))
    finally:
        store.close()


@app.command()
def submit(
    path: Annotated[Path, typer.Argument(help="A bundle directory or .tar.gz archive.", callback=_existing)],
    to: Annotated[str | None, typer.Option("--to", help="A registry's URL, e.g. https://registry.example.org")] = None,
    key: Annotated[
        str | None, typer.Option(envvar="TRAINMARK_KEY", show_envvar=True, help="Your API key (with --to).")
    ] = None,
    db: DbOption = None,
    blobs: BlobsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"id", "score", "ranked", "findings"}.')] = False,
) -> None:
    """Submit a bundle to a registry: over HTTP (--to URL --key KEY) or straight into a database (--db).

    The registry validates, scores and stores it; the same bundle twice gets the same id.

    Example: trainmark submit runs/tiny --to http://127.0.0.1:8000 --key tmk_...
    """
    import tempfile

    from trainmark.registry.client import RegistryError, submit_archive
    from trainmark.registry.intake import submit_archive as open_and_submit
    from trainmark.registry.store import SubmissionRejected
    from trainmark.spec.archive import pack

    if to is not None and key is None:
        raise typer.BadParameter("--to needs --key (or TRAINMARK_KEY)")
    if to is not None and db is not None:
        raise typer.BadParameter("give either --to (a registry server) or --db (a database), not both")
    with tempfile.TemporaryDirectory(prefix="trainmark-submit-") as scratch:
        try:
            if to is not None:
                archive = path
                if path.is_dir():  # HTTP carries an archive
                    archive = Path(scratch) / "bundle.tar.gz"
                    pack(path, archive)
                status, answer = submit_archive(to, key, archive)
                created = status == 201
                page = to.rstrip("/") + answer.get("page", "")
            else:
                store = _open_store(db, blobs)
                try:
                    # A directory is the opened bundle the store takes; an archive is opened first.
                    outcome = store.submit(path) if path.is_dir() else open_and_submit(store, path)
                finally:
                    store.close()
                answer, created, page = outcome.as_dict(), outcome.created, None
        except (RegistryError, SubmissionRejected) as refused:
            if as_json:
                body = (
                    refused.body
                    if isinstance(refused, RegistryError)
                    else {"error": str(refused), "findings": [finding.as_dict() for finding in refused.findings]}
                )
                typer.echo(json.dumps(body or {"error": str(refused)}, indent=2))
                raise typer.Exit(1) from None
            raise
    if as_json:
        typer.echo(json.dumps({name: answer[name] for name in ("id", "score", "ranked", "findings")}, indent=2))
        return
    console = _console()
    state = "accepted" if created else "already in the registry"
    ranked = "[green]ranked[/green]" if answer["ranked"] else "[red]not ranked[/red]"
    console.print(
        f"{state}: {answer['id']}  score {answer['score']:.3f}  {ranked}  {len(answer['findings'])} finding(s)"
    )
    if page:
        console.print(f"  {_plain(page)}")


@app.command()
def leaderboard(
    db: DbOption = None,
    blobs: BlobsOption = None,
    metric: Annotated[
        str, typer.Option(help="steps_per_second, flops_per_joule or energy_per_step.")
    ] = "steps_per_second",
    workload: Annotated[
        str | None, typer.Option(help="Only this workload (model / dataset or benchmark / precision, as shown).")
    ] = None,
    device_model: Annotated[str | None, typer.Option(help="Only this device model.")] = None,
    precision: Annotated[str | None, typer.Option(help="Only this precision policy.")] = None,
    include_unranked: Annotated[bool, typer.Option("--all", help="Also list entries that are not ranked.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many entries.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON.")] = False,
) -> None:
    """Print the leaderboard, one table per workload (model, dataset or benchmark, precision), ranked
    within it by the 95 % bound of the efficiency metric; trust tier and score in their own columns.

    Example: trainmark leaderboard --metric flops_per_joule
    """
    from trainmark.registry.store import BoardQuery

    store = _open_store(db, blobs)
    try:
        page = store.leaderboard(
            BoardQuery(
                metric=metric,
                workload=workload,
                device_model=device_model,
                precision=precision,
                include_unranked=include_unranked,
                limit=limit,
            )
        )
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(page.rows, indent=2))
        return
    _render_board(page.rows, metric)


def _render_board(rows: list[dict], metric: str) -> None:
    """The board, one table per workload (rows come workload by workload, ranked within it): a
    table when it fits the terminal whole, else one block per entry."""
    from trainmark.scorer.units import human, si
    from trainmark.terminal import Column, bound, field_lines, print_table, table_fits

    side = "high" if metric == "energy_per_step" else "low"
    unit, short = {
        "steps_per_second": ("{step}/s", "steps/s"),
        "flops_per_joule": ("{flop}/J", "FLOP/J"),
        "energy_per_step": ("J/{step}", "J/step"),
    }.get(metric, ("", metric))
    console = _console()

    def shown(row: dict, compact: bool) -> str:
        value, limit_value = row[metric], row[f"{metric}_{side}"]
        text = (
            "not measured"
            if value is None
            else (
                si(value) + ("" if limit_value is None else f" ({si(max(0.0, limit_value))})")
                if compact  # unit in header
                else human(value, unit) + ("" if limit_value is None else f" (95 % {side} {bound(limit_value, unit)})")
            )
        )
        if row.get("time_to_train") is not None:  # an MLPerf result: what it is judged by
            text += f"; time to train {human(row['time_to_train'], 's')}" + (
                "" if row.get("energy_to_train") is None else f", energy {human(row['energy_to_train'], 'J')}"
            )
        return text

    console.print(_plain(f"trainmark leaderboard: ranked within each workload by {short} (95 % {side} bound)"))
    if not rows:
        console.print("no entries yet: trainmark submit BUNDLE --db ... adds one")
        return
    workloads: dict[str, list[dict]] = {}
    for row in rows:
        workloads.setdefault(row["workload"], []).append(row)
    columns = [
        "#",
        "submitter",
        "model",
        "hardware",
        "precision",
        "trust",
        Column("score", True),
        Column(f"{short} (95 % {side})", True),
        "badges",
        "missing",
    ]
    for workload, entries in workloads.items():
        title = f"workload: {workload or 'not recorded (run trainmark registry rescore)'}"
        positions, position = [], 0
        for row in entries:
            position += row["ranked"]
            positions.append(str(position) if row["ranked"] else "-")
        table_rows = [
            [
                number,
                _plain(row["submitter"]),
                _plain(row["model_name"]),
                _plain(f"{row['device_count']} x {row['device_model']}"),
                _plain(row["precision"]),
                _plain(row["provenance"] or "-"),
                f"{row['score']:.3f}",
                _plain(shown(row, True)),
                _plain(", ".join(row["badges"]) or "-"),
                _plain("; ".join(filter(None, (_not_ranked_gates(row), row["missing"]))) or "-"),
            ]
            for number, row in zip(positions, entries)
        ]
        if table_fits(console, columns, table_rows):
            print_table(console, columns, table_rows, title=_plain(title))
            continue
        console.print(f"[bold]{_plain(title)}[/bold]")
        for cells, row in zip(table_rows, entries):
            heading = cells[0] + "." if row["ranked"] else "- (not ranked)"
            console.print(f"[bold]{heading} {cells[2]}, {cells[4]}, on {cells[3]}[/bold]")
            field_lines(
                console,
                [
                    ("submitter", cells[1]),
                    ("trust", cells[5]),
                    ("score", cells[6]),
                    (short, _plain(shown(row, False))),
                    ("badges", cells[8]),
                    ("missing", _plain(row["missing"] or "-")),
                ]
                + ([("not ranked because", _plain(row["not_ranked_because"]))] if not row["ranked"] else []),
                indent=4,
            )


def _not_ranked_gates(row: dict) -> str:
    """'not ranked: physics, provenance' for an entry that failed gates (their codes), else ''."""
    if row["ranked"] or not row.get("not_ranked_because"):
        return ""
    codes = [part.split(":", 1)[0] for part in row["not_ranked_because"].split("; ")]
    return "not ranked: " + ", ".join(code for code in codes if code.replace("-", "").isalpha())


# ---------------------------------------------------------------- bundle


@bundle_app.command("pack")
def bundle_pack(
    directory: Annotated[Path, typer.Argument(help="The bundle directory.", callback=_existing)],
    output: Annotated[Path, typer.Option("-o", "--output", help="The .tar.gz to write.")],
    as_json: JsonOption = False,
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
        raise TrainmarkError(
            f"{directory} is not a valid bundle ({report.error_count} error(s), first: "
            f"{first.location()} {first.message}); see trainmark validate {directory}"
        )
    pack(directory, output)
    if as_json:
        typer.echo(
            json.dumps(
                {"archive": str(output), "bundle_id": report.bundle_id, "size_bytes": output.stat().st_size}, indent=2
            )
        )
        return
    _console().print(f"packed bundle {report.bundle_id} into {output}")


@bundle_app.command("finalize")
def bundle_finalize(
    directory: Annotated[
        Path, typer.Argument(help="What a killed or crashed producer left behind.", callback=_existing)
    ],
    as_json: JsonOption = False,
) -> None:
    """Close the runs a killed producer left open (status interrupted) and write the manifest.

    Example: trainmark bundle finalize out/tiny
    """
    from trainmark.spec.bundle import finalize

    report = finalize(directory)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "bundle_id": report.bundle_id,
                    "closed_runs": list(report.closed_runs),
                    "dropped_partial_lines": [str(path) for path in report.dropped_partial_lines],
                },
                indent=2,
            )
        )
        return
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
    from trainmark.overview import bundle_overview
    from trainmark.spec.archive import open_bundle
    from trainmark.spec.bundle import bundle_id, read_manifest

    with open_bundle(path) as root:
        document, manifest = read_manifest(root)
        overview = bundle_overview(manifest, bundle_id(document))
    if as_json:
        typer.echo(json.dumps(overview, indent=2))
        return
    _render_overview(overview)


def _render_overview(overview: dict) -> None:
    from trainmark.overview import HEADLINE_METRICS
    from trainmark.scorer.units import duration, human, iec_bytes
    from trainmark.terminal import Column, field_lines, print_table

    console = _console()
    system, model, training = overview["system"], overview["model"], overview["training"]
    parameters = model["parameters_total"]
    planned = training["max_steps"]
    runs = overview["runs"]
    counted = "parameter count not reported" if parameters is None else f"{human(parameters, '1')} parameters"
    field_lines(
        console,
        [
            (name, _plain(value))
            for name, value in [
                ("bundle", overview["bundle_id"]),
                ("schema", overview["schema_version"]),
                ("producer", overview["producer"]),
                *([("about", overview["description"])] if overview["description"] else []),
                ("system", f"{system['nodes']} node(s): {', '.join(system['devices'])}; host {system['host_cpu']}"),
                ("software", overview["software"]),
                ("model", f"{model['name']} ({model['architecture_family']}, {counted}, {model['precision_policy']})"),
                (
                    "training",
                    f"global batch {training['global_batch_size']}, "
                    f"sequence {training['sequence_length'] or 'length not reported'}, "
                    f"world size {training['world_size']}, "
                    + (f"{planned} steps planned" if planned is not None else "no step count planned"),
                ),
                ("files", f"{overview['files']} ({iec_bytes(overview['bytes'])})"),
                *(
                    [
                        (
                            "reported",
                            "by the source's own rules (source.reported): "
                            + "; ".join(
                                f"{name} {human(view['value'], view['unit'])}"
                                if view["value"] is not None
                                else f"{name} null ({view['unavailable_reason']})"
                                for name, view in overview["reported"].items()
                            ),
                        )
                    ]
                    if overview["reported"]
                    else []
                ),
                *[
                    (
                        "runs" if index == 0 else "",
                        f"{run['run_id']}  {run['status']}, seed {run['seed']}, {duration(run['duration_s'])}",
                    )
                    for index, run in enumerate(runs)
                ],
            ]
        ],
    )
    reasons: dict[str, str] = {}
    rows = []
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
                cells.append(human(view["value"], view["unit"]))
        methods = sorted({view["method"] for view in present if view["value"] is not None})
        if not methods:  # null in every run: one line below says why
            continue
        rows.append((name, present[0]["unit"], "/".join(methods) or "-", cells))
    wide = [
        ["metric (global), method", *[Column(run["run_id"], True) for run in runs]],
        *[[_plain(f"{name}\n  {method}"), *[_plain(cell) for cell in cells]] for name, _, method, cells in rows],
    ]
    print_table(console, wide[0], wide[1:], title="headline metrics per run")
    if reasons:
        console.print("[bold]not measured (null)[/bold]")
        field_lines(console, [(name, _plain(reason)) for name, reason in reasons.items()], indent=2)


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
