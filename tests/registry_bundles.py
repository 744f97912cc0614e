"""Bundles and archives for the registry tests, made from the valid examples."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

from trainmark.spec.archive import pack

from tests.bundles import EXAMPLES, copy_bundle, edit_manifest

GPU = EXAMPLES / "valid" / "gpu-h100-gpt2"
CPU = EXAMPLES / "valid" / "cpu-tiny"


def variant(
    source: Path,
    destination: Path,
    *,
    submitter: str | None = None,
    description: str | None = None,
    keep_runs: int | None = None,
    supersedes: str | None = None,
    synthetic: bool = False,
) -> Path:
    """A copy of a bundle with another submitter, description or fewer runs; the id changes with it.
    Unless `synthetic`, the copy drops the examples' `provenance: synthetic` marker, as a submitter's
    bundle would not have it (a synthetic bundle is never ranked)."""
    root = copy_bundle(source, destination)

    def change(manifest: dict) -> None:
        if not synthetic:
            manifest.pop("provenance", None)
        if submitter is not None:
            manifest["submitter"] = {**manifest.get("submitter", {}), "name": submitter}
        if description is not None:
            manifest["description"] = description
        if supersedes is not None:
            manifest["supersedes"] = supersedes
        if keep_runs is not None:
            kept = {run["run_id"] for run in manifest["runs"][:keep_runs]}
            manifest["runs"] = manifest["runs"][:keep_runs]
            manifest["files"] = [
                entry for entry in manifest["files"] if entry.get("run_id") is None or entry["run_id"] in kept
            ]

    edit_manifest(root, change)
    if keep_runs is not None:
        kept = {run["run_id"] for run in json.loads((root / "manifest.json").read_text())["runs"]}
        for folder in (root / "runs").iterdir():
            if folder.name not in kept:
                shutil.rmtree(folder)
    return root


def archive(root: Path, destination: Path) -> Path:
    pack(root, destination)
    return destination


def tar_with(destination: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """A hand-made .tar.gz (for hostile archives)."""
    with tarfile.open(destination, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return destination


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = link
    info.mode = 0o644
    return info, (data if kind == tarfile.REGTYPE else None)
