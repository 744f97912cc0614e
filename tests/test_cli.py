"""The command line: exit codes, output shapes, documentation, and import cost."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from tests.bundles import INVALID_EXAMPLES, REPO, VALID_BUNDLES, load_example, materialize
from trainmark.cli import app, main

runner = CliRunner()
GPU = next(path for path in VALID_BUNDLES if path.name == "gpu-h100-gpt2")
CPU = next(path for path in VALID_BUNDLES if path.name == "cpu-tiny")


def _commands() -> list[tuple[str, object]]:
    """(full name, click command) of every leaf command."""
    found = []

    def walk(command, prefix):
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, f"{prefix} {name}".strip())
        else:
            found.append((prefix, command))

    walk(get_command(app), "")
    return found


def test_every_command_is_documented_with_an_example():
    docs = (REPO / "docs" / "cli.md").read_text()
    commands = _commands()
    assert {name for name, _ in commands} >= {
        "validate",
        "score",
        "schema",
        "bundle pack",
        "bundle finalize",
        "bundle show",
    }
    for name, command in commands:
        assert f"## `trainmark {name}`" in docs, name
        assert "Example: trainmark" in (command.help or ""), f"{name} --help has no example"


@pytest.mark.parametrize("bundle", VALID_BUNDLES, ids=lambda path: path.name)
def test_validate_valid_bundle_exits_0(bundle):
    result = runner.invoke(app, ["validate", str(bundle)])
    assert result.exit_code == 0
    assert result.output.startswith("valid bundle ")


def test_validate_json_shape():
    result = runner.invoke(app, ["validate", str(GPU), "--json"])
    report = json.loads(result.output)
    assert set(report) == {"valid", "bundle_id", "schema_version", "findings", "findings_total", "findings_cap"}
    assert report["valid"] is True and re.fullmatch(r"[0-9a-f]{64}", report["bundle_id"])


@pytest.mark.parametrize("path", INVALID_EXAMPLES[::5], ids=lambda path: path.stem)
def test_validate_invalid_bundle_exits_1_with_the_pointer(path, tmp_path):
    example = load_example(path)
    root = materialize(example, tmp_path / "b")
    result = runner.invoke(app, ["validate", str(root), "--json", "--max-findings", "1000"])
    assert result.exit_code == 1
    findings = json.loads(result.output)["findings"]
    assert all(set(finding) == {"code", "severity", "pointer", "message"} for finding in findings)
    where = example["file"] + (f":{example['line']}" if example["line"] is not None else "")
    expected = where + (f"#{example['expect']['pointer']}" if example["expect"]["pointer"] else "")
    assert expected in {finding["pointer"] for finding in findings}


def test_validate_human_output_escapes_and_lists_findings(tmp_path):
    example = load_example(next(p for p in INVALID_EXAMPLES if p.stem == "metric-unit-mismatch"))
    result = runner.invoke(app, ["validate", str(materialize(example, tmp_path / "b"))])
    assert result.exit_code == 1
    assert "rule-violation" in result.output and f"manifest.json#{example['expect']['pointer']}" in result.output


@pytest.mark.parametrize(
    "arguments",
    [
        ["validate", "/no/such/bundle"],
        ["validate"],
        ["validate", ".", "--bogus"],
        ["validate", ".", "--max-findings", "0"],
        ["nonsense"],
    ],
)
def test_usage_errors_exit_2(arguments):
    assert runner.invoke(app, arguments).exit_code == 2


def test_schema_formats():
    linkml = runner.invoke(app, ["schema"]).output
    assert linkml == (REPO / "spec" / "schema" / "trainmark.yaml").read_text()
    step_schema = json.loads(runner.invoke(app, ["schema", "--format", "json-schema", "--root", "StepRecord"]).output)
    assert step_schema == json.loads((REPO / "spec" / "jsonschema" / "step_record.schema.json").read_text())
    assert runner.invoke(app, ["schema", "--format", "markdown"]).output == (REPO / "docs" / "reference.md").read_text()


def test_bundle_show_json_and_text():
    overview = json.loads(runner.invoke(app, ["bundle", "show", str(CPU), "--json"]).output)
    assert overview["runs"][0]["metrics"]["total_energy"]["value"] is None
    text = runner.invoke(app, ["bundle", "show", str(CPU)]).output
    assert "not measured (null)" in text
    assert re.search(r"\n +total_energy +no energy sensor", text)


def test_pack_refuses_an_invalid_bundle_with_one_line(tmp_path):
    example = load_example(next(p for p in INVALID_EXAMPLES if p.stem == "run-ends-before-start"))
    root = materialize(example, tmp_path / "b")
    process = subprocess.run(
        [
            sys.executable,
            "-c",
            "from trainmark.cli import main; main()",
            "bundle",
            "pack",
            str(root),
            "-o",
            str(tmp_path / "x.tar.gz"),
        ],
        capture_output=True,
        text=True,
    )
    assert process.returncode == 1
    assert process.stderr.count("\n") == 1 and process.stderr.startswith("error: ")
    assert "Traceback" not in process.stderr
    assert not (tmp_path / "x.tar.gz").exists()


def test_debug_shows_the_traceback(tmp_path):
    process = subprocess.run(
        [
            sys.executable,
            "-c",
            "from trainmark.cli import main; main()",
            "--debug",
            "bundle",
            "finalize",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert process.returncode == 1 and "Traceback" in process.stderr


def test_pack_then_validate_the_archive(tmp_path):
    archive = tmp_path / "cpu.tar.gz"
    assert runner.invoke(app, ["bundle", "pack", str(CPU), "-o", str(archive)]).exit_code == 0
    assert runner.invoke(app, ["validate", str(archive), "--jsonschema"]).exit_code == 0


def test_finalize_error_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["trainmark", "bundle", "finalize", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    assert "no manifest.draft.json" in capsys.readouterr().err


def test_the_cli_imports_neither_torch_nor_linkml():
    code = (
        "import sys, trainmark.cli; from trainmark.cli import app; "
        "assert not {'torch', 'linkml', 'trainmark.spec.models'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_validate_as_a_real_process_never_imports_torch():
    code = (
        "import sys\nfrom trainmark.cli import main\nsys.argv = ['trainmark', 'validate', sys.argv[1]]\n"
        "try:\n    main()\nexcept SystemExit as done:\n    assert 'torch' not in sys.modules\n    raise\n"
    )
    process = subprocess.run([sys.executable, "-c", code, str(CPU)], capture_output=True, text=True)
    assert process.returncode == 0, process.stderr
    assert process.stdout.startswith("valid bundle ")


def test_score_json_and_exit_codes(tmp_path):
    result = runner.invoke(app, ["score", str(CPU), "--json"])
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["rubric_version"] == "r2" and report["provenance"] in ("declared", "synthetic")
    assert json.loads(runner.invoke(app, ["score", str(CPU), "--json", "--rubric", "r1"]).output)["ranked"] is True
    assert 0 <= report["score"] <= 1
    assert runner.invoke(app, ["score", str(CPU), "--rubric", "r9"]).exit_code == 2
    (tmp_path / "empty").mkdir()
    process = subprocess.run(
        [sys.executable, "-c", "from trainmark.cli import main; main()", "score", str(tmp_path / "empty")],
        capture_output=True,
        text=True,
    )
    assert process.returncode == 1
    assert (
        process.stderr.startswith("error: manifest.json: not a readable bundle") and "Traceback" not in process.stderr
    )


def test_score_human_output_groups_findings(tmp_path):
    output = runner.invoke(app, ["score", str(CPU), "--rubric", "r1"]).output
    assert output.startswith("score 0.")
    assert re.search(r"gate integrity +pass", output) and re.search(r"badges +Reproduced", output)
    assert "warnings (" in output and "missing-sensor" in output and "infos (" in output


def test_score_of_a_broken_bundle_still_exits_0_and_says_not_ranked(tmp_path):
    example = load_example(next(p for p in INVALID_EXAMPLES if p.stem == "step-negative-duration"))
    root = materialize(example, tmp_path / "b")
    result = runner.invoke(app, ["score", str(root), "--json"])
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["ranked"] is False
    assert {"code": "validity", "passed": False} == {k: report["gates"][1][k] for k in ("code", "passed")}
