"""Verified imports (rubric r2, docs/scoring.md II.8): an imported bundle keeps its third-party
originals under `source/`; the registry runs the importer again on them and refuses a bundle whose
manifest differs from what they give. What a bundle says about itself is not evidence; what its
kept sources give is.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from trainmark.spec import models
from trainmark.spec.errors import TrainmarkError

MAY_DIFFER = ("schema_version", "producer", "submitter", "description", "supersedes", "provenance", "files")
"""Manifest blocks a verified import may differ in: who submits it and how they describe it, and what
depends on the trainmark version (the file list is checked by the bundle's own digests)."""


def _mlperf(sources: Path, out: Path, manifest: models.Manifest) -> None:
    from trainmark.spec.importers.mlperf import import_mlperf

    system = sources / "system.json"
    import_mlperf(
        sources,
        out,
        system_json=system if system.is_file() else None,
        benchmark=manifest.model.name,
        origin=manifest.source.origin if manifest.source is not None else None,
    )


def _codecarbon(sources: Path, out: Path, manifest: models.Manifest) -> None:
    """CodeCarbon's emissions.csv (the first kept file) and its log (the second, when kept). The CSV's
    timestamps carry no zone and the manifest does not name the one the importer was given: when the
    import says UTC was assumed it runs again so; otherwise it runs in UTC once to learn the fixed
    offset the submitted run times imply, and again with it (a zone whose offset changed between the
    rows then gives another manifest, and the import is not verified)."""
    from trainmark.spec.importers.codecarbon import import_codecarbon

    kept = manifest.source.files if manifest.source is not None else []
    csv_name = kept[0].removeprefix("source/") if kept else "emissions.csv"
    log = sources / kept[1].removeprefix("source/") if len(kept) > 1 else None
    origin = manifest.source.origin if manifest.source is not None else None
    assumed_utc = any(
        issue.code == "assumed-value" and "UTC is assumed" in issue.message
        for issue in (manifest.source.issues or [] if manifest.source is not None else [])
    )
    if assumed_utc:
        import_codecarbon(sources / csv_name, out, log=log, origin=origin)
        return
    probe = out.parent / "utc-probe"
    import_codecarbon(sources / csv_name, probe, log=log, origin=origin)
    probe_runs = json.loads((probe / "manifest.json").read_text())["runs"]
    offset_s = (
        (datetime.fromisoformat(probe_runs[0]["ended_at"]) - manifest.runs[0].ended_at).total_seconds()
        if probe_runs and manifest.runs
        else 0.0
    )
    hours, rest = divmod(round(offset_s), 3600)
    if rest or not -14 <= hours <= 12:
        raise ZoneUnknown(f"the run times imply a UTC offset of {offset_s:g} s, not a whole-hour zone")
    # Etc/GMT-2 is UTC+2 (POSIX signs); Etc/GMT is UTC.
    import_codecarbon(
        sources / csv_name, out, log=log, origin=origin, timezone_name=f"Etc/GMT{-hours:+d}" if hours else "UTC"
    )


class ZoneUnknown(TrainmarkError):
    """The time zone a CodeCarbon import was given cannot be told from its manifest."""


IMPORTERS: dict[str, Callable[[Path, Path, models.Manifest], None]] = {
    "trainmark import mlperf": _mlperf,
    "trainmark import codecarbon": _codecarbon,
}
"""The importers the registry can run again, by the name a bundle's `source.importer` gives."""


def _comparable(document: dict) -> dict:
    kept = {key: value for key, value in document.items() if key not in MAY_DIFFER}
    if "source" in kept:
        kept["source"] = {key: value for key, value in kept["source"].items() if key != "importer"}
    return kept


def verify_import(root: Path, manifest: models.Manifest) -> tuple[bool | None, str]:
    """(True, how) when the kept sources give this manifest again; (False, where it differs) when they
    do not; (None, why) when the bundle is not an import or its importer is not one the registry runs."""
    if manifest.source is None:
        return None, "not an imported bundle"
    name = manifest.source.importer.name
    importer = IMPORTERS.get(name)
    if importer is None:
        return None, f"the registry cannot run the importer {name!r} again, so this import is not verified"
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "again"
        try:
            importer(root / "source", out, manifest)
        except ZoneUnknown as error:
            return (
                None,
                f"the registry cannot run {name!r} again as it was run ({error}), so this import is not verified",
            )
        except TrainmarkError as error:
            return False, f"the kept sources under source/ do not import again ({type(error).__name__}: {error})"
        again = _comparable(json.loads((out / "manifest.json").read_text()))
    submitted = _comparable(json.loads((root / "manifest.json").read_text()))
    if again == submitted:
        return True, f"verified import: {name} gives this manifest again from the kept sources"
    differing = sorted(key for key in set(again) | set(submitted) if again.get(key) != submitted.get(key))
    return False, (
        f"the manifest differs from what {name} gives from the kept sources under source/ in "
        f"{', '.join('/' + key for key in differing)}; submit the bundle the importer wrote"
    )
