"""Fixtures shared by the registry tests: a real SQLite file and a real PostgreSQL server.

One PostgreSQL cluster serves the whole session. A test that needs a registry at the current
schema gets a fresh database copied from one that `upgrade` migrated once per session (a file copy
for SQLite, CREATE DATABASE ... TEMPLATE for PostgreSQL): the same tables and revision, without
running every migration again for each test. The migrations themselves are tested on empty
databases (`registry_url`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import Cluster, server_binaries

MEMORY_TMP = Path("/dev/shm")
MEMORY_TMP_FREE_BYTES = 4 * 1024**3  # room for the tests, a 300 MB blob and its archive among them


def pytest_configure(config):
    """Temporary files (tmp_path, the PostgreSQL cluster, SQLite registries, blobs, and those of the
    processes the tests start) go to memory (/dev/shm) when the machine has it with 4 GiB free and
    TMPDIR is not set: the tests sync SQLite and blob files thousands of times, and on a busy disk each
    sync waits for it. Set TMPDIR (or pass --basetemp) to choose another place."""
    if (
        "TMPDIR" not in os.environ
        and MEMORY_TMP.is_dir()
        and os.access(MEMORY_TMP, os.W_OK | os.X_OK)
        and shutil.disk_usage(MEMORY_TMP).free >= MEMORY_TMP_FREE_BYTES
    ):
        os.environ["TMPDIR"] = str(MEMORY_TMP)
        tempfile.tempdir = str(MEMORY_TMP)


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL cluster for the session (the binaries must be installed; .ci/run sees to it)."""
    binaries = server_binaries()
    if binaries is None:
        if os.environ.get("TRAINMARK_TESTS_WITHOUT_POSTGRES"):
            pytest.skip("TRAINMARK_TESTS_WITHOUT_POSTGRES is set and no PostgreSQL server binaries were found")
        pytest.fail(
            "the PostgreSQL server binaries (initdb, pg_ctl) were not found: install postgresql "
            "(.ci/run does) or point TRAINMARK_PG_BIN at their folder"
        )
    cluster = Cluster(binaries)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request, tmp_path: Path):
    """An empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    cluster = request.getfixturevalue("postgres")
    url = cluster.database()
    yield url
    cluster.drop(url)


@pytest.fixture(scope="session")
def migrated_templates() -> dict[str, str]:
    """Kind -> a database of that kind that `upgrade` brought to the head revision, made on first use."""
    return {}


@contextlib.contextmanager
def _copy_at_head(kind: str, request, folder: Path, templates: dict[str, str]) -> Iterator[str]:
    """A new database of `kind` at the head revision: a copy of the session's migrated one."""
    from trainmark.registry.database import upgrade

    cluster = request.getfixturevalue("postgres") if kind == "postgresql" else None
    if kind not in templates:
        templates[kind] = (
            cluster.database()
            if cluster
            else f"sqlite:///{request.getfixturevalue('tmp_path_factory').mktemp('template') / 'registry.db'}"
        )
        upgrade(templates[kind])  # its engines are disposed after: no connection stays open to be copied
    if cluster is None:
        copy = folder / "registry.db"
        shutil.copyfile(templates[kind].split("///", 1)[1], copy)
        yield f"sqlite:///{copy}"
        return
    url = cluster.database(template=templates[kind].rsplit("/", 1)[1])
    yield url
    cluster.drop(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_at_head(request, tmp_path: Path, migrated_templates) -> Iterator[str]:
    """A fresh database of each kind at the current schema revision, for one test."""
    with _copy_at_head(request.param, request, tmp_path, migrated_templates) as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_registry_at_head(request, tmp_path_factory, migrated_templates) -> Iterator[str]:
    """A database of each kind at the current schema revision, shared by the tests of a module
    that only read it (or check that a request changed nothing)."""
    with _copy_at_head(request.param, request, tmp_path_factory.mktemp("registry"), migrated_templates) as url:
        yield url


@pytest.fixture
def store(registry_at_head: str, tmp_path: Path):
    from trainmark.registry.store import Store

    opened = Store(registry_at_head, tmp_path / "blobs")
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def archives(tmp_path_factory) -> dict[str, Path]:
    """Archived bundles: the two examples as a submitter would send them (without the synthetic marker)
    and variants of the CPU one (other submitters, fewer runs)."""
    from tests.registry_bundles import CPU, GPU, archive, variant

    folder = tmp_path_factory.mktemp("archives")
    made = {
        "gpu": archive(variant(GPU, folder / "gpu"), folder / "gpu.tar.gz"),
        "cpu": archive(variant(CPU, folder / "cpu"), folder / "cpu.tar.gz"),
    }
    made["cpu-two-runs"] = archive(
        variant(CPU, folder / "two", submitter="Lab Two", keep_runs=2), folder / "two.tar.gz"
    )
    made["cpu-script"] = archive(
        variant(
            CPU, folder / "script", submitter="<script>alert(1)</script> Lab", description='=HYPERLINK("http://evil")'
        ),
        folder / "script.tar.gz",
    )
    return made
