"""Fixtures shared by the registry tests: a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.postgres import Cluster, server_binaries


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
def registry_url(request, tmp_path: Path) -> str:
    """An empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return request.getfixturevalue("postgres").database()


@pytest.fixture
def store(registry_url: str, tmp_path: Path):
    from trainmark.registry.database import upgrade
    from trainmark.registry.store import Store

    upgrade(registry_url)
    opened = Store(registry_url, tmp_path / "blobs")
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
