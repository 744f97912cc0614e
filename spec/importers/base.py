"""What every importer of a third-party format shares: originals kept, issues recorded, atomic output.

An importer opens a `BundleImport` on the output path, copies each original it reads with `keep`
(byte for byte, under `source/`), records each problem with `issue` (the standard's `SourceIssue`;
a problem repeated in one file becomes one issue with a count), writes its traces through
`writer`, and ends with `finish`, which takes the manifest's blocks as generated models. Everything
is written into a hidden temporary folder beside the output and moved into place only when the
manifest is complete and valid; a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

import pydantic
from trainmark.spec import SCHEMA_VERSION, models, producer_version
from trainmark.spec.bundle import BundleWriter
from trainmark.spec.errors import TrainmarkError


class BundleImport:
    """One import in progress: a temporary bundle folder that becomes `out` on `finish`.

    Use as a context manager; leaving it without `finish` (an error) removes the temporary folder.
    """

    def __init__(self, out: Path, importer: str, source_format: str) -> None:
        self.out = Path(out)
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise TrainmarkError(f"{self.out} already exists and is not an empty directory; choose a new output path")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.importer = importer
        self.source_format = source_format
        self.root = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.importing-", dir=self.out.parent))
        os.chmod(self.root, 0o755)  # mkdtemp makes it private; a bundle is for reading
        self.writer = BundleWriter(self.root)
        self.kept: list[str] = []
        self._issues: dict[tuple, models.SourceIssue] = {}
        self._finished = False

    def __enter__(self) -> BundleImport:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if not self._finished:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def producer(self) -> models.NamedVersion:
        """The importer as the bundle's producer."""
        return models.NamedVersion(name=self.importer, version=producer_version())

    def keep(self, original: Path, relative: str) -> str:
        """Copy `original` byte for byte to source/`relative`; return its bundle path.

        A link or anything but a regular file is refused: an import copies what it was given, not what a
        link points to.
        """
        if original.is_symlink() or not original.is_file():
            raise TrainmarkError(f"{original} is a link or not a regular file; give the importer the file itself")
        path = f"source/{relative}"
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(original, target)
        self.kept.append(path)
        return path

    def issue(
        self,
        code: str,
        file: str,
        message: str,
        *,
        line: int | None = None,
        pointer: str | None = None,
        repeated: str | None = None,
        count: int = 1,
    ) -> None:
        """Record a problem met `count` times in the original `file` (a bundle path under source/).

        Problems with the same `repeated` key in one file are one issue: the first occurrence's line
        and message, and a count. Without `repeated`, the message itself is the key.
        """
        key = (file, code, repeated or message, None if repeated else line)
        found = self._issues.get(key)
        if found is None:
            self._issues[key] = models.SourceIssue(
                code=code, file=file, message=message, line=line, pointer=pointer, count=count if count > 1 else None
            )
        else:
            found.count = (found.count or 1) + count

    @property
    def issues(self) -> list[models.SourceIssue]:
        """Every issue recorded so far, in the order first met."""
        return list(self._issues.values())

    def provenance(
        self,
        *,
        origin: str | None = None,
        parameters: list[models.Hyperparameter] | None = None,
        reported: list[models.Metric] | None = None,
    ) -> models.SourceProvenance:
        """The manifest's `source` block: format, importer, originals, issues, and what the source reports."""
        return models.SourceProvenance(
            format=self.source_format,
            importer=self.producer,
            origin=origin,
            files=list(self.kept),
            parameters=parameters or None,
            issues=self.issues or None,
            reported=reported or None,
        )

    def finish(self, blocks: dict[str, pydantic.BaseModel | list | str | None]) -> str:
        """Write the manifest from its blocks (models; `files` is added), move the bundle into place, return its id."""
        document = {
            "schema_version": SCHEMA_VERSION,
            "producer": self.producer,
            **{key: value for key, value in blocks.items() if value is not None},
        }
        _, bundle_id = self.writer.finish(document)
        if self.out.is_dir():
            self.out.rmdir()  # empty, checked when the import began
        os.rename(self.root, self.out)
        self._finished = True
        return bundle_id
