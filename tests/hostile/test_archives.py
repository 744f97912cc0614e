"""Archives that lie about what they hold: limits count what is written, and every member is
checked before the first byte is written."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from trainmark.spec.archive import ArchiveLimits, extract
from trainmark.spec.errors import BundleInvalid
from trainmark.spec.validate import validate_bundle

from tests.registry_bundles import CPU, member, tar_with

MIB = 1024 * 1024


def sparse_archive(folder: Path, expanded_bytes: int) -> Path:
    """A real GNU sparse archive (`tar --sparse`) of a bundle whose README is `expanded_bytes`
    of holes and one byte: a few KB of archive."""
    bundle = folder / "bundle"
    shutil.copytree(CPU, bundle)
    readme = bundle / "README.md"
    with readme.open("wb") as handle:
        handle.truncate(expanded_bytes - 1)
        handle.seek(expanded_bytes - 1)
        handle.write(b"x")
    archive = folder / "sparse.tar.gz"
    subprocess.run(["tar", "--sparse", "-czf", str(archive), "-C", str(bundle), "."], check=True)
    readme.unlink()
    return archive


def written_bytes(folder: Path) -> int:
    return sum(path.stat().st_blocks * 512 for path in folder.rglob("*") if path.is_file())


def test_a_sparse_member_is_refused_before_anything_is_written(tmp_path):
    archive = sparse_archive(tmp_path, 100 * MIB)
    assert archive.stat().st_size < 64 * 1024
    with tarfile.open(archive) as tar:
        assert any(member.issparse() for member in tar)  # the hostile shape, for real
    destination = tmp_path / "out"
    destination.mkdir()
    limits = ArchiveLimits(max_archive_bytes=MIB, max_unpacked_bytes=10 * MIB, max_members=100)
    with pytest.raises(BundleInvalid) as refused:
        extract(archive, destination, limits)
    assert refused.value.code == "archive-limit"
    assert "expand to more than" in refused.value.message
    assert list(destination.iterdir()) == []  # refused before the first byte


def test_a_5_gib_sparse_member_is_refused_in_seconds(tmp_path):
    archive = sparse_archive(tmp_path, 5 * 1024 * MIB)
    destination = tmp_path / "out"
    destination.mkdir()
    began = time.monotonic()
    with pytest.raises(BundleInvalid, match="expand to more than"):
        extract(archive, destination, ArchiveLimits(max_unpacked_bytes=4 * 1024 * MIB))
    assert time.monotonic() - began < 10
    assert written_bytes(destination) == 0


def test_a_member_under_a_file_name_is_refused_cleanly(tmp_path):
    # runs/run-1/steps.jsonl is a file, then the folder of another member: once a FileExistsError, an HTTP 500
    for order in (
        ["runs/run-1/steps.jsonl", "runs/run-1/steps.jsonl/x.md"],
        ["runs/run-1/steps.jsonl/x.md", "runs/run-1/steps.jsonl"],
    ):
        archive = tar_with(
            tmp_path / "clash.tar.gz", [member("manifest.json", b"{}")] + [member(name, b"data") for name in order]
        )
        destination = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"
        destination.mkdir()
        with pytest.raises(BundleInvalid) as refused:
            extract(archive, destination)
        assert refused.value.code == "archive-invalid"
        assert "both for a file and for a folder" in refused.value.message
        assert list(destination.iterdir()) == []
        report = validate_bundle(archive)
        assert [finding.code for finding in report.findings] == ["archive-invalid"]
