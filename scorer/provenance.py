"""Where a bundle's numbers come from (rubric r2, docs/scoring.md part II section 8).

- `synthetic`: the bundle says it was made up (the standard's examples, test fixtures). Never ranked.
- `imported`: converted from third-party logs kept under `source/` (`trainmark import`).
- `measured`: written by trainmark's own runner or `trainmark.track` (producer `trainmark`), with the
  environment probe it takes (host CPU, installed-package digest).
- `declared`: anything else (hand-written, or another tool's output).

A bundle can always say less of itself (synthetic) but its claim to more is only a label: the
label is derived from what the bundle contains, and the registry alone can check an import
against its kept sources. The label is shown everywhere the score is; only `synthetic` changes
the ranking.
"""

from __future__ import annotations

from trainmark.spec import models

PROVENANCES = ("measured", "imported", "declared", "synthetic")
RUNNER_PRODUCERS = frozenset({"trainmark"})


def provenance_of(manifest: models.Manifest) -> str:
    """One of PROVENANCES for the bundle."""
    declared = getattr(manifest, "provenance", None)
    if declared is not None and getattr(declared, "value", declared) == "synthetic":
        return "synthetic"
    if manifest.source is not None:
        return "imported"
    probed = manifest.software.packages_digest is not None and all(
        host.cpu_model for host in manifest.system.hosts or []
    )
    if manifest.producer.name in RUNNER_PRODUCERS and probed:
        return "measured"
    return "declared"
