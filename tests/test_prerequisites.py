"""tools/test-prerequisites, the step `make test` and CI take before any test."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.bundles import REPO

SCRIPT = REPO / "tools" / "test-prerequisites"


def _path_without_chromium(folder: Path, extra: dict[str, str] | None = None) -> str:
    """A PATH holding only the commands the script calls (and `extra` fakes), no chromium."""
    folder.mkdir()
    for command in ("bash", "ls", "id", "useradd"):
        found = shutil.which(command)
        if found:
            (folder / command).symlink_to(found)
    for command, body in (extra or {}).items():
        fake = folder / command
        fake.write_text(body)
        fake.chmod(0o755)
    folder.chmod(0o755)
    return str(folder)


def _run(path: str, *, as_unprivileged: bool) -> subprocess.CompletedProcess:
    environment = {"PATH": path, "LANG": "C.UTF-8"}
    command = [shutil.which("bash"), str(SCRIPT)]
    if as_unprivileged and os.geteuid() == 0:
        command = [shutil.which("setpriv"), "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)


def test_nothing_happens_when_everything_is_there():
    done = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""


def test_without_root_it_names_the_one_command_and_stops():
    # pytest's tmp_path is private to root, so the unprivileged user gets a folder it can enter
    with tempfile.TemporaryDirectory(prefix="trainmark-path-") as scratch:
        Path(scratch).chmod(0o755)
        done = _run(_path_without_chromium(Path(scratch) / "bin"), as_unprivileged=True)
    assert done.returncode == 1
    assert "chromium chromium-driver" in done.stderr
    assert (
        "sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium chromium-driver" in done.stderr
    )


def test_as_root_it_installs_what_is_missing(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("installing needs root (CI runs as root)")
    log = tmp_path / "apt.log"
    fake_apt = f'#!/bin/sh\necho "$@" >> {log}\n'  # Debian's packages are real in CI; here the call is what counts
    done = _run(_path_without_chromium(tmp_path / "bin", {"apt-get": fake_apt}), as_unprivileged=False)
    assert done.returncode == 0, done.stderr
    assert "installing what the tests need: chromium chromium-driver" in done.stdout
    assert log.read_text().splitlines() == [
        "update -qq",
        "install -y -qq --no-install-recommends chromium chromium-driver",
    ]
