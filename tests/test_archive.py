"""Packing bundles, and unpacking hostile archives safely."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trainmark.spec import archive as archive_module
from trainmark.spec.archive import ArchiveLimits, extract, open_bundle, pack
from trainmark.spec.errors import BundleInvalid, BundleUnreadable
from trainmark.spec.validate import validate_bundle

from tests.bundles import VALID_BUNDLES

CPU_BUNDLE = next(path for path in VALID_BUNDLES if path.name == "cpu-tiny")


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _file(name: str, data: bytes = b"{}") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info, None


def test_pack_then_extract_gives_the_same_files(tmp_path):
    archive = tmp_path / "bundle.tar.gz"
    pack(CPU_BUNDLE, archive)
    extract(archive, tmp_path / "out")
    originals = sorted(p.relative_to(CPU_BUNDLE) for p in CPU_BUNDLE.rglob("*") if p.is_file())
    copies = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert originals == copies
    for relative in originals:
        assert (CPU_BUNDLE / relative).read_bytes() == (tmp_path / "out" / relative).read_bytes()


def test_pack_is_reproducible(tmp_path):
    pack(CPU_BUNDLE, tmp_path / "a.tar.gz")
    pack(CPU_BUNDLE, tmp_path / "b.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()


def test_archive_validates_like_its_directory(tmp_path):
    pack(CPU_BUNDLE, tmp_path / "bundle.tar.gz")
    from_archive = validate_bundle(tmp_path / "bundle.tar.gz")
    from_directory = validate_bundle(CPU_BUNDLE)
    assert from_archive.valid and from_directory.valid
    assert from_archive.bundle_id == from_directory.bundle_id


def test_archive_with_a_top_folder_or_dot_prefix_is_accepted(tmp_path):
    for prefix in ("cpu-tiny/", "./"):
        archive = tmp_path / f"{prefix.strip('./') or 'dot'}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for path in sorted(CPU_BUNDLE.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=prefix + path.relative_to(CPU_BUNDLE).as_posix())
        assert validate_bundle(archive).valid, prefix


@pytest.mark.parametrize(
    "name, members, message",
    [
        ("absolute", [_file("/etc/passwd")], "unsafe|plain relative path"),
        ("dotdot", [_file("runs/../../evil.json")], "unsafe|plain relative path"),
        ("symlink", [_special("runs/link", tarfile.SYMTYPE, "/etc/passwd")], "link or device"),
        ("hardlink", [_file("a.md"), _special("b.md", tarfile.LNKTYPE, "a.md")], "link or device"),
        ("device", [_special("dev", tarfile.CHRTYPE)], "link or device"),
        ("fifo", [_special("pipe", tarfile.FIFOTYPE)], "link or device"),
        ("hidden", [_file(".manifest.json")], "plain relative path"),
        ("too-deep", [_file("a/b/c/d/e.json")], "plain relative path"),
        ("duplicate", [_file("manifest.json"), _file("manifest.json", b"[]")], "appears twice"),
        ("backslash", [_file("runs\\run-1\\steps.jsonl")], "plain relative path"),
    ],
)
def test_hostile_members_are_refused_before_anything_is_written(tmp_path, name, members, message):
    archive = _tar(tmp_path / f"{name}.tar.gz", members)
    destination = tmp_path / "out"
    destination.mkdir()
    with pytest.raises(BundleInvalid, match=message) as error:
        extract(archive, destination)
    assert error.value.code in {"archive-unsafe", "archive-invalid"}
    assert not any(path.is_symlink() for path in destination.rglob("*"))
    assert not (tmp_path.parent / "evil.json").exists()


def test_member_count_limit(tmp_path):
    archive = _tar(tmp_path / "many.tar.gz", [_file(f"doc{i}.md") for i in range(20)])
    with pytest.raises(BundleInvalid, match="more than 10 members"):
        extract(archive, tmp_path, ArchiveLimits(max_members=10))


def test_decompression_bomb_stops_before_unpacking(tmp_path):
    archive = _tar(tmp_path / "bomb.tar.gz", [_file("doc.md", b"\0" * 20_000_000)])
    assert archive.stat().st_size < 100_000
    with pytest.raises(BundleInvalid, match="unpacks to more than 1000000 bytes") as error:
        extract(archive, tmp_path / "out", ArchiveLimits(max_unpacked_bytes=1_000_000))
    assert error.value.code == "archive-limit"
    assert not (tmp_path / "out").exists()


def test_a_second_gzip_stream_is_refused_not_skipped(tmp_path):
    # gzip readers go on into a concatenated stream; the size check must not stop at the first.
    first = _tar(tmp_path / "small.tar.gz", [_file("doc.md")]).read_bytes()
    bomb = gzip.compress(b"\0" * 20_000_000)
    (tmp_path / "two.tar.gz").write_bytes(first + bomb)
    with pytest.raises(BundleInvalid, match="goes on after the end of its gzip stream") as error:
        extract(tmp_path / "two.tar.gz", tmp_path / "out", ArchiveLimits(max_unpacked_bytes=1_000_000))
    assert error.value.code == "archive-invalid"
    assert not (tmp_path / "out").exists()


def test_a_tar_stream_too_big_for_memory_unpacks_from_a_temporary_file(tmp_path, monkeypatch):
    monkeypatch.setattr(archive_module, "IN_MEMORY_TAR_BYTES", 4096)
    spills = []
    real_temporary_file = tempfile.TemporaryFile
    monkeypatch.setattr(
        archive_module.tempfile,
        "TemporaryFile",
        lambda **kwargs: spills.append(kwargs) or real_temporary_file(**kwargs),
    )
    payloads = {f"doc{index}.md": os.urandom(3000) for index in range(5)}
    archive = _tar(tmp_path / "big.tar.gz", [_file(name, data) for name, data in payloads.items()])
    extract(archive, tmp_path / "out")
    assert {path.name: path.read_bytes() for path in (tmp_path / "out").iterdir()} == payloads
    assert len(spills) == 1


def test_a_bomb_too_big_for_memory_writes_nothing_before_it_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(archive_module, "IN_MEMORY_TAR_BYTES", 4096)
    monkeypatch.setattr(
        archive_module.tempfile,
        "TemporaryFile",
        lambda **kwargs: pytest.fail("a temporary file was written before the size check"),
    )
    archive = _tar(tmp_path / "bomb.tar.gz", [_file("doc.md", b"\0" * 20_000_000)])
    with pytest.raises(BundleInvalid, match="unpacks to more than 1000000 bytes"):
        extract(archive, tmp_path / "out", ArchiveLimits(max_unpacked_bytes=1_000_000))


def test_compressed_size_limit(tmp_path):
    pack(CPU_BUNDLE, tmp_path / "bundle.tar.gz")
    with pytest.raises(BundleInvalid, match="over the limit"):
        extract(tmp_path / "bundle.tar.gz", tmp_path / "out", ArchiveLimits(max_archive_bytes=1000))


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="max_members must be positive"):
        ArchiveLimits(max_members=0)


def test_truncated_archive_is_reported(tmp_path):
    pack(CPU_BUNDLE, tmp_path / "bundle.tar.gz")
    data = (tmp_path / "bundle.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    report = validate_bundle(tmp_path / "cut.tar.gz")
    assert not report.valid
    assert report.findings[0].code == "archive-invalid"
    assert "truncated" in report.findings[0].message


def test_not_an_archive_is_unreadable(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BundleUnreadable, match="neither a bundle directory nor a .tar.gz"):
        with open_bundle(tmp_path / "notes.txt"):
            pass


def test_gzip_of_something_else_is_reported(tmp_path):
    (tmp_path / "x.tar.gz").write_bytes(gzip.compress(b"this is not a tar stream" * 50))
    report = validate_bundle(tmp_path / "x.tar.gz")
    assert [finding.code for finding in report.findings] == ["archive-invalid"]


def test_unpacked_bundle_is_removed_afterwards(tmp_path):
    pack(CPU_BUNDLE, tmp_path / "bundle.tar.gz")
    with open_bundle(tmp_path / "bundle.tar.gz") as root:
        assert (root / "manifest.json").is_file()
        kept = root
    assert not kept.exists()


def test_pack_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    def broken_addfile(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tarfile.TarFile, "addfile", broken_addfile)
    with pytest.raises(OSError, match="disk full"):
        pack(CPU_BUNDLE, tmp_path / "bundle.tar.gz")
    assert os.listdir(tmp_path) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000), gzip_it=st.booleans())
def test_arbitrary_bytes_as_archive_give_findings(tmp_path, data, gzip_it):
    path = tmp_path / "input.tar.gz"
    path.write_bytes(gzip.compress(data) if gzip_it else b"\x1f\x8b" + data)
    report = validate_bundle(path)
    assert not report.valid
    assert all(finding.message for finding in report.findings)
