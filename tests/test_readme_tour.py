"""The README's tour, run line by line as a new user would, in an 80-column terminal's setting
(COLUMNS=80, output piped): every line succeeds, no output is cut (no '…'), every file it writes
is under tour/, and it creates no registry or key outside it.

To stay a test of minutes, the two training lines train 3 steps (--set max_steps=3, two runs)
instead of the tour's 80 and 20: the output they print has the same shape. `serve` is started,
asked for the board and its offline /docs, and stopped.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.bundles import MLPERF_DATA, REPO

pytestmark = pytest.mark.training  # trains for real: left out of make test-fast

SHORT_TRAINING = ["--set", "max_steps=3", "--set", "idle_seconds=0", "--repeats", "2"]


def tour_lines() -> list[str]:
    """The tour's code block: its shell lines, comments stripped."""
    text = (REPO / "README.md").read_text()
    block = text[text.index("## A short tour") :]
    block = block[: block.index("\n## ", 3)] if "\n## " in block[3:] else block
    lines = [line[4:] for line in block.splitlines() if line.startswith("    ")]
    return [line.split("  #", 1)[0].strip() for line in lines if line.strip()]


def test_the_tour_is_found_and_every_line_is_a_trainmark_command():
    lines = tour_lines()
    assert lines[0].startswith("export TRAINMARK_DB=") and len(lines) >= 15
    assert all(line.startswith(".venv/bin/trainmark ") for line in lines[1:]), lines
    assert not any("keys create" in line for line in lines)  # no key that the tour never uses
    timed = [line for line in (REPO / "README.md").read_text().splitlines() if ".venv/bin/trainmark " in line]
    assert all(re.search(r"# (about )?[0-9]+ (s|min)", line) for line in timed), "every line says how long it takes"


@pytest.fixture()
def workplace(tmp_path) -> Path:
    """A folder laid out like the repository root for the tour: spec/, examples/, tests/, .venv/ and
    ../shared/data."""
    root = tmp_path / "repository"
    root.mkdir()
    for part in ("spec", "examples", "tests", ".venv"):  # what tour lines read (the examples, a CodeCarbon log)
        (root / part).symlink_to(REPO / part)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(MLPERF_DATA.parent)
    return root


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_every_tour_line_runs_at_80_columns_and_nothing_is_cut(workplace):
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    exported = tour_lines()[0].removeprefix("export ")
    env.update(dict(item.split("=", 1) for item in shlex.split(exported)))
    trainmark = [sys.executable, "-m", "trainmark"]
    for line in tour_lines()[1:]:
        arguments = shlex.split(line)[1:]
        if arguments[0] in ("run", "sweep"):
            arguments += SHORT_TRAINING
        if arguments[0] == "repeat":  # the example loop's own options, after `--`: a few steps, no idle wait
            arguments += ["--steps", "5", "--idle-seconds", "0"]
        if arguments[0] == "serve":
            port = _free_port()
            server = subprocess.Popen(
                [*trainmark, *arguments, "--port", str(port)],
                cwd=workplace,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.5)
                board = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
                assert board.status_code == 200 and "tiny" in board.text
                docs = httpx.get(f"http://127.0.0.1:{port}/docs", timeout=10)
                assert docs.status_code == 200 and "/static-docs/swagger-ui-bundle.js" in docs.text
            finally:
                server.send_signal(signal.SIGINT)
                output = server.communicate(timeout=60)[0]
            assert "…" not in output
            continue
        result = subprocess.run(
            [*trainmark, *arguments], cwd=workplace, env=env, capture_output=True, text=True, timeout=900
        )
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
        printed = result.stdout + result.stderr
        assert "…" not in printed, f"{line} cut its output:\n{printed}"
        if "--json" in arguments or arguments[0] == "schema":
            json.loads(result.stdout)
        else:  # what people read: 80 columns at most, but for one-line log records of progress
            wide = [text for text in result.stdout.splitlines() if len(text) > 80 and not text.startswith("run ")]
            assert wide == [], f"{line} printed past 80 columns:\n" + "\n".join(wide)
    written = {path.name for path in workplace.iterdir() if not path.is_symlink()}
    assert written == {"tour"}, written  # everything under tour/, no registry elsewhere
    assert (workplace / "tour" / "registry" / "registry.db").is_file()
