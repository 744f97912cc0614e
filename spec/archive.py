"""Bundles as `.tar.gz` archives: packing, and unpacking untrusted ones safely.

An archive is hostile until proven otherwise. Before anything is written, the gzip stream is
decompressed once to count its size (a decompression bomb stops there), kept in memory when it
is small, so the members are read without decompressing it again; then they are read one at a
time: only regular files and directories, names that are plain relative paths
(`tarfile`'s `data` filter plus the bundle path pattern), no name twice, and limits on member
count and unpacked bytes. Files are copied out by trainmark itself, never by `tarfile.extract`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from trainmark.spec.errors import BundleInvalid, BundleUnreadable
from trainmark.spec.layout import MANIFEST_NAME

GZIP_MAGIC = b"\x1f\x8b"
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_MEMBER_PATH = re.compile(rf"^{_SEGMENT}(/{_SEGMENT}){{0,3}}\Z")


@dataclass(frozen=True)
class ArchiveLimits:
    """Limits on an untrusted archive; the defaults suit a command-line check of a big bundle.

    max_archive_bytes: the .tar.gz file itself.
    max_unpacked_bytes: the decompressed tar stream (members plus headers).
    max_members: entries in the archive, directories included.
    """

    max_archive_bytes: int = 8 * 1024**3
    max_unpacked_bytes: int = 32 * 1024**3
    max_members: int = 100_000

    def __post_init__(self) -> None:
        for name in ("max_archive_bytes", "max_unpacked_bytes", "max_members"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ArchiveLimits.{name} must be positive, got {getattr(self, name)}")


def is_archive(path: Path) -> bool:
    """Whether `path` is a file that starts like a gzip stream."""
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        return handle.read(2) == GZIP_MAGIC


IN_MEMORY_TAR_BYTES = 32 * 1024**2
"""A tar stream up to this size is kept in memory while it is unpacked; a larger one is
decompressed a second time, into a temporary file, once its size is known to be within limits."""


def _inflated(path: Path, limit: int) -> Iterator[bytes]:
    """The archive's tar stream, piece by piece, counted as it grows: a decompression bomb stops
    at `limit`, and a corrupt, truncated or concatenated gzip stream is refused."""
    decompressor = zlib.decompressobj(wbits=31)  # gzip container
    total = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                data = decompressor.decompress(chunk, 1 << 22)
                while True:
                    total += len(data)
                    if total > limit:
                        raise BundleInvalid(
                            f"the archive unpacks to more than {limit} bytes; split the bundle or raise the limit",
                            file=path.name,
                            code="archive-limit",
                        )
                    yield data
                    if not decompressor.unconsumed_tail:
                        break
                    data = decompressor.decompress(decompressor.unconsumed_tail, 1 << 22)
                if decompressor.eof:
                    if decompressor.unused_data or handle.read(1):
                        # gzip allows concatenated streams; a bundle archive is one (trainmark bundle pack)
                        raise BundleInvalid(
                            "the archive goes on after the end of its gzip stream; pack the bundle again",
                            file=path.name,
                            code="archive-invalid",
                        )
                    break
    except zlib.error as error:
        raise BundleInvalid(
            f"the gzip stream is corrupt ({error}); pack the bundle again", file=path.name, code="archive-invalid"
        ) from None
    if not decompressor.eof:
        raise BundleInvalid(
            "the gzip stream ends early (truncated archive); copy or pack it again",
            file=path.name,
            code="archive-invalid",
        )


def _tar_stream(path: Path, limit: int) -> BinaryIO:
    """The archive's tar stream as a seekable file, so that reading the members never
    decompresses it again (`tarfile` over gzip starts over on every backward seek). Nothing is
    written to disk before the whole stream is known to be within `limit`."""
    in_memory: io.BytesIO | None = io.BytesIO()
    for data in _inflated(path, limit):
        if in_memory is not None:
            if in_memory.tell() + len(data) > IN_MEMORY_TAR_BYTES:
                in_memory = None  # too big to keep: count the rest, then decompress again to disk
            else:
                in_memory.write(data)
    if in_memory is not None:
        in_memory.seek(0)
        return in_memory
    spill = tempfile.TemporaryFile(prefix="trainmark-tar-")
    try:
        for data in _inflated(path, limit):
            spill.write(data)
    except BaseException:
        spill.close()
        raise
    spill.seek(0)
    return spill


def _without_dot_prefix(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def _member_name(member: tarfile.TarInfo, prefix: str) -> str:
    name = _without_dot_prefix(member.name)
    if prefix:
        name = name[len(prefix) :] if name.startswith(prefix) else name
    return name.rstrip("/") if member.isdir() else name


def _common_prefix(names: list[str]) -> str:
    """'bundle/' when every member sits in one top-level folder holding manifest.json."""
    tops = {name.split("/", 1)[0] for name in names if name}
    if len(tops) == 1:
        top = tops.pop()
        if f"{top}/{MANIFEST_NAME}" in names:
            return top + "/"
    return ""


def _copy_counted(source: BinaryIO, out: BinaryIO, budget: int, where: str, archive: Path) -> int:
    """Copy one member, counting the bytes written: a member that expands beyond what it
    declared (or beyond what is left of the limit) stops there."""
    written = 0
    while chunk := source.read(1 << 20):
        written += len(chunk)
        if written > budget:
            raise BundleInvalid(
                f"{where} unpacks to more bytes than the archive's limit allows; split the bundle or raise the limit",
                file=archive.name,
                code="archive-limit",
            )
        out.write(chunk)
    return written


def _checked_members(
    tar: tarfile.TarFile, archive: Path, destination: Path, limits: ArchiveLimits
) -> list[tuple[str, tarfile.TarInfo]]:
    """Every member that will be written, as (bundle-relative name, member), after checking them
    all: nothing is written until the whole archive has passed. The sizes counted are what the
    members expand to (a sparse member declares its full size), not their bytes in the stream."""
    members: list[tarfile.TarInfo] = []
    for member in tar:
        members.append(member)
        if len(members) > limits.max_members:
            raise BundleInvalid(
                f"the archive has more than {limits.max_members} members", file=archive.name, code="archive-limit"
            )
    prefix = _common_prefix([_without_dot_prefix(m.name) for m in members])
    seen: set[str] = set()
    folders: set[str] = set()
    files: set[str] = set()
    accepted: list[tuple[str, tarfile.TarInfo]] = []
    expanded = 0
    for member in members:
        name = _member_name(member, prefix)
        where = f"archive member {member.name[:200]!r}"
        if name in ("", ".") or name == prefix.rstrip("/"):
            if member.isdir():
                continue
            raise BundleInvalid(f"{where} has an empty name", file=archive.name, code="archive-invalid")
        if not (member.isreg() or member.isdir()):
            raise BundleInvalid(
                f"{where} is a link or device; bundles hold only regular files",
                file=archive.name,
                code="archive-unsafe",
            )
        try:
            tarfile.data_filter(member, str(destination))
        except tarfile.FilterError as error:
            reason = str(error).replace(str(destination), "the bundle folder")
            raise BundleInvalid(f"{where} is unsafe: {reason}", file=archive.name, code="archive-unsafe") from None
        if not _MEMBER_PATH.match(name):
            raise BundleInvalid(
                f"{where} is not a plain relative path (letters, digits, '.', '_', '-'; "
                "at most four levels; no '..', no leading '/' or '.')",
                file=archive.name,
                code="archive-unsafe",
            )
        if name in seen:
            raise BundleInvalid(f"{where} appears twice", file=archive.name, code="archive-unsafe")
        seen.add(name)
        parents = name.split("/")[:-1]
        enclosing = {"/".join(parents[:depth]) for depth in range(1, len(parents) + 1)}
        if enclosing & files or (member.isreg() and name in folders):
            raise BundleInvalid(
                f"{where}: the archive uses one name both for a file and for a folder",
                file=archive.name,
                code="archive-invalid",
            )
        folders |= enclosing
        if member.isdir():
            folders.add(name)
        else:
            files.add(name)
            expanded += member.size
            if expanded > limits.max_unpacked_bytes:
                raise BundleInvalid(
                    f"the archive's files expand to more than {limits.max_unpacked_bytes} bytes "
                    f"({where} passes it); split the bundle or raise the limit",
                    file=archive.name,
                    code="archive-limit",
                )
        accepted.append((name, member))
    return accepted


def extract(archive: Path, destination: Path, limits: ArchiveLimits = ArchiveLimits()) -> None:
    """Unpack an untrusted bundle archive into an empty directory, or raise `BundleInvalid`.

    Every member is checked before the first byte is written; while writing, the bytes written
    are counted against `limits.max_unpacked_bytes` (what the files expand to, sparse members
    included), so a refused archive leaves at most what was written up to the limit, and the
    caller's scratch folder is removed with it.
    """
    size = archive.stat().st_size
    if size > limits.max_archive_bytes:
        raise BundleInvalid(
            f"the archive is {size} bytes, over the limit of {limits.max_archive_bytes}",
            file=archive.name,
            code="archive-limit",
        )
    try:
        with _tar_stream(archive, limits.max_unpacked_bytes) as stream, tarfile.open(fileobj=stream, mode="r:") as tar:
            budget = limits.max_unpacked_bytes
            for name, member in _checked_members(tar, archive, destination, limits):
                target = destination / name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                with source, target.open("xb") as out:
                    budget -= _copy_counted(
                        source, out, min(budget, member.size), f"archive member {member.name[:200]!r}", archive
                    )
    except (tarfile.TarError, EOFError) as error:
        raise BundleInvalid(
            f"not a readable tar.gz archive ({error}); pack the bundle again", file=archive.name, code="archive-invalid"
        ) from None


@contextlib.contextmanager
def open_bundle(path: Path, limits: ArchiveLimits = ArchiveLimits(), scratch_dir: Path | None = None) -> Iterator[Path]:
    """Yield a directory holding the bundle at `path` (a directory, or a .tar.gz unpacked safely,
    in a temporary folder under `scratch_dir`, default the system's, removed afterwards)."""
    if path.is_dir():
        yield path
        return
    if not path.exists():
        raise BundleUnreadable(f"{path} does not exist")
    if not is_archive(path):
        raise BundleUnreadable(f"{path} is neither a bundle directory nor a .tar.gz archive")
    with tempfile.TemporaryDirectory(
        prefix=f"bundle-{os.getpid()}-" if scratch_dir else "trainmark-bundle-", dir=scratch_dir
    ) as scratch:
        root = Path(scratch)
        extract(path, root, limits)
        yield root


def pack(directory: Path, output: Path) -> None:
    """Write `directory` as a reproducible .tar.gz: sorted members, fixed owners, modes and times.

    The archive is written next to `output` and renamed into place, so a failure leaves no
    half-written file.
    """
    if not (directory / MANIFEST_NAME).is_file():
        raise BundleUnreadable(f"{directory} is not a bundle directory (it has no manifest.json)")
    files = sorted(p for p in directory.rglob("*") if p.is_file() and not p.is_symlink())
    output.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".pack-{os.getpid()}-", suffix=".tar.gz", dir=output.parent)
    try:
        os.fchmod(descriptor, 0o644)  # a file to share, not mkstemp's private 0600
        with (
            os.fdopen(descriptor, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed,
            tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for file in files:
                relative = file.relative_to(directory).as_posix()
                info = tarfile.TarInfo(relative)
                info.size = file.stat().st_size
                info.mode = 0o644
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with file.open("rb") as handle:
                    tar.addfile(info, handle)
        os.replace(temporary, output)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
