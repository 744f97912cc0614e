"""Opening the registry database: SQLite by default (WAL, a busy timeout, one writer at a time),
PostgreSQL by URL; and its schema version, managed by Alembic from revision 1.

The server and every command refuse a database whose revision is not this code's head, and say
which command upgrades it.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from trainmark.spec.errors import StoreOutOfDate, TrainmarkError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_DIRECTORY = Path("trainmark-registry")
BUSY_TIMEOUT_S = 60


def default_url() -> str:
    """$TRAINMARK_DB, or a SQLite file in ./trainmark-registry/."""
    return os.environ.get("TRAINMARK_DB") or f"sqlite:///{DEFAULT_DIRECTORY / 'registry.db'}"


def default_blobs() -> Path:
    """$TRAINMARK_BLOBS, or ./trainmark-registry/blobs."""
    return Path(os.environ.get("TRAINMARK_BLOBS") or DEFAULT_DIRECTORY / "blobs")


def normalize_url(url: str) -> str:
    """postgresql:// and postgres:// use psycopg 3; a sqlite path's folder must exist."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if not (url.startswith("sqlite") or url.startswith("postgresql+psycopg")):
        raise TrainmarkError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def engine_for(url: str, writer: bool = False) -> Engine:
    """An engine with the settings the registry relies on.

    On SQLite a `writer` engine opens every transaction with BEGIN IMMEDIATE: it takes the write
    lock up front (waiting up to the busy timeout for another process to finish) instead of
    upgrading a read snapshot later, which SQLite refuses at once with "database is locked".
    """
    url = normalize_url(url)
    if is_sqlite(url):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record):  # WAL: readers never wait for the writer
            connection.isolation_level = None  # SQLAlchemy, not the driver, says when a transaction begins
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection):
            connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str) -> str:
    """Create or upgrade the database to this code's schema; return the revision."""
    engine_for(url).dispose()  # creates a SQLite file's folder
    command.upgrade(alembic_config(url), "head")
    return head_revision()


def require_current(engine: Engine, url: str) -> None:
    """Raise StoreOutOfDate unless the database is at this code's head revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "has no registry schema" if current is None else f"is at schema revision {current}"
        raise StoreOutOfDate(
            f"the registry database {state}; this trainmark needs {head}. Run: trainmark registry "
            f"{'init' if current is None else 'upgrade'} --db {url}"
        )
