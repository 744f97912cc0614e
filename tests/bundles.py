"""Helpers the tests share: the example bundles, and building broken variants of them."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

from trainmark.spec.bundle import describe_file

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "spec" / "examples"
VALID_BUNDLES = sorted(path for path in (EXAMPLES / "valid").iterdir() if path.is_dir())
INVALID_EXAMPLES = sorted((EXAMPLES / "invalid").glob("*.json"))


def _shared_data() -> Path:
    """The project's shared third-party data: $TRAINMARK_SHARED_DATA, ../shared/data beside this checkout,
    or /work/shared/data (where a fresh clone elsewhere, such as CI's, finds it)."""
    candidates = [Path(os.environ["TRAINMARK_SHARED_DATA"])] if os.environ.get("TRAINMARK_SHARED_DATA") else []
    candidates += [REPO.parent / "shared" / "data", Path("/work/shared/data")]
    return next((path for path in candidates if (path / "mlperf" / "INDEX.md").is_file()), candidates[0])


MLPERF_DATA = _shared_data() / "mlperf"

_MARKERS = {'"__NaN__"': "NaN", '"__1e999__"': "1e999"}


def _parent(document, pointer: str):
    parts = [part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:]]
    node = document
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, parts[-1]


def apply_patch(document, operations: list[dict]):
    """RFC 6902 add/remove/replace on a copy of `document`."""
    document = copy.deepcopy(document)
    for operation in operations:
        if operation["path"] == "":
            document = copy.deepcopy(operation["value"])
            continue
        parent, key = _parent(document, operation["path"])
        if isinstance(parent, list):
            index = len(parent) if key == "-" else int(key)
            if operation["op"] == "add":
                parent.insert(index, copy.deepcopy(operation["value"]))
            elif operation["op"] == "remove":
                del parent[index]
            else:
                parent[index] = copy.deepcopy(operation["value"])
        elif operation["op"] == "remove":
            del parent[key]
        else:
            parent[key] = copy.deepcopy(operation["value"])
    return document


def render(document, *, indent: int | None = 2) -> str:
    """JSON text with the NaN/1e999 markers written as bare tokens."""
    text = json.dumps(document, indent=indent, ensure_ascii=False, separators=None if indent else (",", ":"))
    for marker, token in _MARKERS.items():
        text = text.replace(marker, token)
    return text


def copy_bundle(source: Path, destination: Path) -> Path:
    """A writable copy of a bundle directory."""
    shutil.copytree(source, destination)
    return destination


def reseal(root: Path) -> None:
    """Write the manifest's file entries again from the files, keeping everything else."""
    manifest_path = root / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"] = [
        describe_file(root, entry["path"]) if (root / entry["path"]).exists() else entry for entry in manifest["files"]
    ]
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def class_of(file: str) -> str:
    """The schema class of a bundle file (by its path)."""
    from trainmark.spec.layout import MANIFEST_NAME, role_of
    from trainmark.spec.records import RECORD_TYPES

    if file == MANIFEST_NAME:
        return "Manifest"
    return RECORD_TYPES[role_of(file).record_type].class_name


def load_example(path: Path) -> dict:
    """One invalid example's description."""
    return json.loads(path.read_text())


def broken_document(example: dict):
    """(original document, patched document as text) of an invalid example."""
    base = EXAMPLES / "valid" / example["base"]
    target = base / example["file"]
    if example["line"] is None:
        original = json.loads(target.read_text())
        return original, render(apply_patch(original, example["patch"]))
    line = target.read_text().splitlines()[example["line"] - 1]
    original = json.loads(line)
    return original, render(apply_patch(original, example["patch"]), indent=None)


def materialize(example: dict, destination: Path) -> Path:
    """A bundle directory with the example's breakage applied (digests rewritten for traces)."""
    root = copy_bundle(EXAMPLES / "valid" / example["base"], destination)
    target = root / example["file"]
    _, text = broken_document(example)
    if example["line"] is None:
        target.write_text(text + "\n")
    else:
        lines = target.read_text().splitlines()
        lines[example["line"] - 1] = text
        target.write_text("\n".join(lines) + "\n")
    if example["file"] != "manifest.json":
        reseal(root)
    return root


def manifest_blocks(base: str = "cpu-tiny") -> dict:
    """Every manifest block of a valid example except runs and files, to build new bundles on."""
    manifest = json.loads((EXAMPLES / "valid" / base / "manifest.json").read_text())
    return {key: value for key, value in manifest.items() if key not in ("runs", "files")}


def edit_manifest(root: Path, change) -> None:
    """Apply `change(manifest_dict)` to a bundle's manifest.json in place."""
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def edit_trace(root: Path, relative: str, change) -> None:
    """Replace a JSON Lines trace's records by `change(list_of_dicts)` and write the digests again."""
    path = root / relative
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records = change(records)
    path.write_text("".join(json.dumps(record, separators=(",", ":")) + "\n" for record in records))
    reseal(root)


def metric_position(run: dict, name: str, scope: str = "global", device: int | None = None) -> int:
    """Where a run's metric `name` (at `scope`, on `device`) sits in its `metrics` list.

    Tests name a metric by what it is: a position written into a test would silently point at
    another metric when the producer adds or reorders metrics."""
    found = [
        index
        for index, metric in enumerate(run["metrics"])
        if metric["name"] == name and metric["scope"] == scope and metric.get("device") == device
    ]
    assert len(found) == 1, f"{len(found)} metrics {name} at scope {scope}, device {device}, in run {run['run_id']}"
    return found[0]


def find_metric(run: dict, name: str, scope: str = "global", device: int | None = None) -> dict:
    """A run's metric `name` (at `scope`, on `device`), as a dict of the manifest."""
    return run["metrics"][metric_position(run, name, scope, device)]


def metric_pointer(
    root: Path, run: int, name: str, scope: str = "global", device: int | None = None, field: str | None = None
) -> str:
    """A finding's location of the metric `name` of run number `run` (from 0) in a bundle's manifest.json."""
    manifest = json.loads((root / "manifest.json").read_text())
    pointer = f"manifest.json#/runs/{run}/metrics/{metric_position(manifest['runs'][run], name, scope, device)}"
    return f"{pointer}/{field}" if field else pointer
