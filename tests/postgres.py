"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl on a free loopback port.

The server refuses to run as root, so under root (CI) the cluster belongs to the `postgres`
system user and its commands run as that user; the tests connect over TCP with trust auth.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "trainmark"


def server_binaries() -> Path | None:
    """$TRAINMARK_PG_BIN, Debian's /usr/lib/postgresql/<newest>/bin, or initdb on PATH."""
    if os.environ.get("TRAINMARK_PG_BIN"):
        return Path(os.environ["TRAINMARK_PG_BIN"])
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if versions:
        return Path(versions[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """One running cluster; `database()` hands out a fresh, empty database."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.user = "postgres" if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="trainmark-pg-"))
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.port = _free_port()
        self.count = 0

    def _run(self, *arguments: str) -> None:
        result = subprocess.run(
            [str(self.binaries / arguments[0]), *arguments[1:]],
            user=self.user,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{arguments[0]} failed ({result.returncode}): {result.stderr[-2000:]}\n{tail}")

    def start(self) -> None:
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self.root / "server.log"), "-w", "start")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def database(self, template: str | None = None) -> str:
        """A new database's URL: empty, or a copy of the database `template` (which must have no
        open connection), e.g. one that `upgrade` brought to the head revision once."""
        import psycopg

        self.count += 1
        name = f"registry_{os.getpid()}_{self.count}"
        copy = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drop the database at `url`, closing whatever connections a test left open to it."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
