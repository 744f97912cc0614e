"""The trainmark artifact-bundle standard: models, validation, reading and writing bundles.

`trainmark.spec` depends on no other trainmark package. `SCHEMA_VERSION` is the version of the standard
this code implements, the `schema_version` that bundles carry; it comes from the generated
models, loaded on first use so that `import trainmark.spec` stays cheap.
"""

from __future__ import annotations

__all__ = ["SCHEMA_VERSION", "producer_version"]


def producer_version() -> str:
    """The installed trainmark version, as bundles record it in `producer` and metric `tool`s."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trainmark")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str):
    if name == "SCHEMA_VERSION":
        from trainmark.spec.models import version

        return version
    raise AttributeError(f"module 'trainmark.spec' has no attribute {name!r}")
