"""The content-addressed blob store: blobs/sha256/<first 2 hex>/<other 62 hex>.

A blob's name is the sha256 of its bytes, so the same trace submitted twice is stored once and
a blob never changes. Writes go to a temporary file in the store and are renamed into place, so
a reader never sees half a blob; a blob written for a submission that then fails is an orphan,
harmless, and `BlobStore.orphans` lists them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

CHUNK = 1 << 20


class BlobStore:
    """Blobs under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "sha256").mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / "sha256" / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put_file(self, source: Path, digest: str) -> None:
        """Store a file whose sha256 is already known (and verified by the caller)."""
        target = self.path(digest)
        if not target.is_file():
            with source.open("rb") as handle:
                self._install(target, lambda out: shutil.copyfileobj(handle, out, CHUNK))

    def put_bytes(self, data: bytes) -> str:
        """Store bytes; return their sha256."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if not target.is_file():
            self._install(target, lambda out: out.write(data))
        return digest

    @staticmethod
    def _install(target: Path, write) -> None:
        """Write a blob beside its place and rename it in, so that it appears whole or not at all."""
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".incoming-", dir=target.parent)
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
