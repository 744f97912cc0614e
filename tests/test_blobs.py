"""The registry's content-addressed blob store."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest
from trainmark.registry.blobs import BlobStore


def _files(store: BlobStore) -> list[str]:
    return sorted(path.name for path in (store.root / "sha256").rglob("*") if path.is_file())


def test_the_same_bytes_are_stored_once_under_their_digest(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    digest, written = store.put_bytes(b"one trace")
    assert digest == hashlib.sha256(b"one trace").hexdigest() and written
    assert store.put_bytes(b"one trace") == (digest, False)  # stored once: the second call writes nothing
    source = tmp_path / "trace.jsonl"
    source.write_bytes(b"one trace")
    assert store.put_file(source, digest) is False
    assert store.path(digest).read_bytes() == b"one trace" and _files(store) == [digest[2:]]
    assert stat.S_IMODE(store.path(digest).stat().st_mode) == 0o444  # a blob never changes
    assert store.orphans({digest}) == [] and store.orphans(set()) == [digest]


@pytest.mark.parametrize("how", ["bytes", "file"])
def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch, how):
    store = BlobStore(tmp_path / "blobs")
    source = tmp_path / "trace.jsonl"
    source.write_bytes(b"half a trace")

    def full_disk(*args):
        raise OSError("no space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="no space left"):
        if how == "bytes":
            store.put_bytes(b"half a trace")
        else:
            store.put_file(source, hashlib.sha256(b"half a trace").hexdigest())
    assert _files(store) == []


def test_only_a_sha256_names_a_blob(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    for name in ("../../etc/passwd", "ab" * 31, "G" * 64):
        with pytest.raises(ValueError, match="not a sha256 digest"):
            store.path(name)
