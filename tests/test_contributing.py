"""docs/contributing.md's worked examples run as written: every python block, in order, in one empty folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.bundles import REPO

CONTRIBUTING = REPO / "docs" / "contributing.md"
PYTHON_BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```", re.DOTALL | re.MULTILINE)
SECTIONS = (
    "A new importer",
    "A new sensor or device vendor",
    "A new finding or rubric rule",
    "A new record type",
    "A new CLI command",
)


def _sections(text: str) -> dict[str, str]:
    """Heading (level 2) -> the text under it."""
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_extension_point_has_a_section_and_the_readme_links_it():
    sections = _sections(CONTRIBUTING.read_text())
    assert set(SECTIONS) <= set(sections)
    for heading in ("A new importer", "A new sensor or device vendor", "A new CLI command"):
        assert PYTHON_BLOCK.search(sections[heading]), f"{heading} has no worked example"
    assert "(docs/contributing.md)" in (REPO / "README.md").read_text()


def test_the_worked_examples_run(tmp_path):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TRAINMARK_")}
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    blocks = [
        (heading, match["code"])
        for heading, body in _sections(CONTRIBUTING.read_text()).items()
        for match in PYTHON_BLOCK.finditer(body)
    ]
    assert blocks
    for index, (heading, code) in enumerate(blocks):
        script = tmp_path / f"block-{index}.py"
        script.write_text(code)
        done = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, (
            f"the example under '{heading}' failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        )
