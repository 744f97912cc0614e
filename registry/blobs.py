"""The content-addressed blob store: blobs/sha256/<first 2 hex>/<other 62 hex>.

A blob's name is the sha256 of its bytes, so the same trace submitted twice is stored once and
a blob never changes. Writes go to a temporary file in the store and are renamed into place, so
a reader never sees half a blob. A submission writes its blobs only once it is accepted, and
removes those it wrote when it then fails; what a killed process leaves (a partial `.incoming-*`
file, an unreferenced blob, its scratch folders) is found and removed by `Store.sweep`, which
`trainmark serve` runs at startup and `trainmark registry check` on demand.

Beside `sha256/` the folder holds `archives/` (each submission's .tar.gz, packed once at ingest
and named by its bundle id, which fixes every byte of it) and `scratch/` (uploads and unpacked
bundles while a submission is checked; each name carries the pid of the process using it).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

from trainmark.spec.archive import pack
from trainmark.spec.errors import TrainmarkError

CHUNK = 1 << 20
INCOMING = ".incoming-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def _owner_pid(name: str, prefix: str) -> int | None:
    """The pid a scratch or temporary name carries (`<prefix><pid>-<random>`), if any."""
    head = name.removeprefix(prefix).split("-", 1)[0]
    return int(head) if name.startswith(prefix) and head.isdigit() else None


class BlobChanged(TrainmarkError):
    """A file's bytes no longer have the digest they were validated with."""


class BlobStore:
    """Blobs under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "sha256").mkdir(parents=True, exist_ok=True)
        self.scratch = root / "scratch"
        self.archives = root / "archives"

    def scratch_folder(self, purpose: str) -> tempfile.TemporaryDirectory:
        """A scratch folder for one submission (removed when closed; a killed process's is swept)."""
        self.scratch.mkdir(exist_ok=True)
        return tempfile.TemporaryDirectory(prefix=f"{purpose}-{os.getpid()}-", dir=self.scratch)

    def archive_path(self, bundle_id: str) -> Path:
        """Where the submission's packed archive lives (it may not be built yet)."""
        self.path(bundle_id)  # the same shape as a digest
        return self.archives / bundle_id[:2] / f"{bundle_id}.tar.gz"

    def put_archive(self, bundle_id: str, bundle: Path) -> bool:
        """Pack the bundle directory once, as its archive; True when this call wrote it."""
        target = self.archive_path(bundle_id)
        if target.is_file():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        pack(bundle, target)
        return True

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / "sha256" / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put_file(self, source: Path, digest: str) -> bool:
        """Store a file whose sha256 the caller verified; True when this call wrote it (False: the
        store had it). The bytes are hashed again as they are copied, so a file that changed since
        (a bundle directory still being written) raises BlobChanged and stores nothing."""
        target = self.path(digest)
        if target.is_file():
            return False

        def copy(out) -> None:
            hasher = hashlib.sha256()
            with source.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
            if hasher.hexdigest() != digest:
                raise BlobChanged(f"{source.name} changed while it was being stored; submit it again once it is final")

        self._install(target, copy)
        return True

    def put_bytes(self, data: bytes) -> tuple[str, bool]:
        """Store bytes; return their sha256 and whether this call wrote them."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.is_file():
            return digest, False
        self._install(target, lambda out: out.write(data))
        return digest, True

    def remove(self, digest: str) -> None:
        """Delete a blob (the caller has made sure nothing references it)."""
        self.path(digest).unlink(missing_ok=True)

    def remove_archive(self, bundle_id: str) -> None:
        self.archive_path(bundle_id).unlink(missing_ok=True)

    @staticmethod
    def _install(target: Path, write) -> None:
        """Write a blob beside its place and rename it in, so that it appears whole or not at all."""
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f"{INCOMING}{os.getpid()}-", dir=target.parent)
        try:
            with os.fdopen(descriptor, "wb") as out:
                write(out)
            os.chmod(temporary, 0o444)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def orphans(self, referenced: set[str]) -> list[str]:
        """Digests of stored blobs no submission references."""
        found = []
        for directory in (self.root / "sha256").iterdir():
            for blob in directory.iterdir():
                if not blob.name.startswith(".") and directory.name + blob.name not in referenced:
                    found.append(directory.name + blob.name)
        return sorted(found)

    def archive_ids(self) -> list[str]:
        """Bundle ids that have a packed archive."""
        if not self.archives.is_dir():
            return []
        return sorted(
            archive.name.removesuffix(".tar.gz")
            for directory in self.archives.iterdir()
            for archive in directory.iterdir()
            if archive.name.endswith(".tar.gz") and not archive.name.startswith(".")
        )

    def stale_temporaries(self, older_than_s: float) -> list[Path]:
        """What a killed writer left: partial `.incoming-*` blobs, `.pack-*` archives and scratch
        folders whose process is gone (or, when they name none, older than `older_than_s`)."""
        now = time.time()
        found = []

        def stale(path: Path, prefix: str) -> bool:
            pid = _owner_pid(path.name, prefix)
            if pid is not None and pid != os.getpid():
                return not _pid_alive(pid)
            return pid is None and now - path.lstat().st_mtime > older_than_s

        for area, prefix in (("sha256", INCOMING), ("archives", ".pack-")):
            if (self.root / area).is_dir():
                for directory in (self.root / area).iterdir():
                    found += [
                        path for path in directory.iterdir() if path.name.startswith(prefix) and stale(path, prefix)
                    ]
        if self.scratch.is_dir():
            for path in self.scratch.iterdir():
                purpose = path.name.split("-", 1)[0] + "-"
                if stale(path, purpose):
                    found.append(path)
        return sorted(found)
