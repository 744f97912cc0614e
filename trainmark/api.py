"""The public functions of `import trainmark`: each hands on to the part that owns it.

They take a path as `str` or any `os.PathLike` (the parts themselves take `pathlib.Path`);
nothing else happens here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from trainmark.spec.archive import open_bundle as _open_bundle
from trainmark.spec.archive import pack as _pack
from trainmark.spec.bundle import FinalizeReport
from trainmark.spec.bundle import finalize as _finalize
from trainmark.spec.validate import ValidationReport, validate_bundle

PathLike = str | os.PathLike[str]


def validate(path: PathLike, *, full_jsonschema: bool = False) -> ValidationReport:
    """Validate the bundle at `path` (a directory or a .tar.gz).

    Bad input becomes findings (`report.findings`, each with file, line and JSON pointer) and
    `report.valid` is False; nothing is raised for a bundle that breaks the standard.
    `full_jsonschema` also checks every record against the published JSON Schema.
    """
    return validate_bundle(Path(path), full_jsonschema=full_jsonschema)


def score(path: PathLike, *, rubric: str | None = None):
    """Score the bundle at `path` (a directory or a .tar.gz): a `trainmark.scorer.score.ScoreReport`.

    `rubric` names the rubric version (the current one when None; docs/scoring.md). Raises
    `trainmark.spec.errors.BundleInvalid` when `path` is not a readable bundle; a readable bundle
    that fails a gate is scored and marked not ranked.
    """
    from trainmark.scorer import rubric as rubrics
    from trainmark.scorer.score import score_bundle

    return score_bundle(Path(path), rubric or rubrics.RUBRIC_VERSION)


@contextlib.contextmanager
def open_bundle(path: PathLike) -> Iterator[Path]:
    """Yield a directory that holds the bundle at `path`: the directory itself, or a .tar.gz
    unpacked safely (size, member and path limits) into a temporary folder removed afterwards."""
    with _open_bundle(Path(path)) as root:
        yield root


def pack(directory: PathLike, output: PathLike) -> Path:
    """Pack the bundle `directory` as a reproducible .tar.gz at `output` (written beside and
    renamed into place, so a failure leaves nothing half-written); returns `output`."""
    _pack(Path(directory), Path(output))
    return Path(output)


def finalize(directory: PathLike) -> FinalizeReport:
    """Turn what a killed producer left in `directory` into a valid bundle: open runs become
    `interrupted` with the metrics their traces support, and the manifest is written."""
    return _finalize(Path(directory))
