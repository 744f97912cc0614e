"""The code in docs/tracking.md and docs/standard.md section 9 runs as written.

A fenced block right after `<!-- run -->` is run (python, or sh with the venv's commands on
PATH); one after `<!-- save as NAME -->` is saved as NAME for a later block. All blocks of a
document run in order, in one empty folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import trainmark
from tests.bundles import REPO

pytestmark = pytest.mark.training  # trains for real: left out of make test-fast

MARKED_BLOCK = re.compile(r"<!-- (run|save as (?P<name>[\w.]+)) -->\n```(?P<language>\w+)\n(?P<code>.*?)```", re.DOTALL)


def _blocks(text: str) -> list[tuple[str | None, str, str]]:
    return [(match["name"], match["language"], match["code"]) for match in MARKED_BLOCK.finditer(text)]


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    return text[start : text.index("\n## ", start + 1)]


DOCUMENTS = {
    "tracking.md": (REPO / "docs" / "tracking.md").read_text(),
    "standard.md section 9": _section(
        (REPO / "docs" / "standard.md").read_text(), "## 9. Producing bundles with your own tools"
    ),
}


@pytest.mark.parametrize("document", sorted(DOCUMENTS))
def test_every_code_block_is_marked_so_none_is_skipped(document):
    fenced = re.findall(r"^```\w+\n", DOCUMENTS[document], re.MULTILINE)
    assert fenced and len(_blocks(DOCUMENTS[document])) == len(fenced)


def _run_blocks(text: str, folder: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TRAINMARK_")}
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    for index, (name, language, code) in enumerate(_blocks(text)):
        if name:
            (folder / name).write_text(code)
            continue
        if language == "python":
            script = folder / f"block-{index}.py"
            script.write_text(code)
            command = [sys.executable, str(script)]
        else:
            assert language == "sh", language
            command = ["bash", "-e", "-c", code]
        done = subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True)
        assert done.returncode == 0, f"block {index} ({language}) failed:\n{code}\n{done.stderr[-3000:]}"


@pytest.mark.parametrize("document", sorted(DOCUMENTS))
def test_the_code_blocks_run(tmp_path, document):
    _run_blocks(DOCUMENTS[document], tmp_path)
    if document == "tracking.md":
        for bundle in ("mlp", "mlp-3", "gpt2", "lightning", "ddp"):
            assert trainmark.validate(tmp_path / "bundles" / bundle).valid, bundle
        manifest = json.loads((tmp_path / "bundles" / "mlp-3" / "manifest.json").read_text())
        assert [run["status"] for run in manifest["runs"]] == ["completed"] * 3
        assert trainmark.score(tmp_path / "bundles" / "mlp-3").ranked
    else:
        assert trainmark.validate(tmp_path / "my-bundle").valid
