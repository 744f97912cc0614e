"""trainmark: an open standard and toolset for reporting what training an AI model costs.

The public Python API, one namespace::

    import trainmark

    with trainmark.track(model=model, batch_size=64, out="bundle/") as run:  # measure your own loop
        for batch in loader:
            with run.step() as step:
                ...

    report = trainmark.validate("bundle/")         # a ValidationReport: findings with pointers
    score = trainmark.score("bundle/")             # a ScoreReport: R, F, H, C, gates, badges
    with trainmark.open_bundle("b.tar.gz") as root:  # a directory or an archive, as a directory
        ...
    trainmark.pack("bundle/", "bundle.tar.gz")
    trainmark.finalize("bundle/")                  # close the runs a killed producer left open

`BundleWriter` writes bundles, `TrainmarkError` is the root of every error trainmark raises,
and `SCHEMA_VERSION` is the version of the standard this code writes and reads.

`track` needs the runner's extra (`pip install 'trainmark[runner]'`: torch); the callbacks for
Hugging Face `Trainer` and Lightning are in `trainmark.integrations`.

The four parts are subpackages: `trainmark.spec` (the standard), `trainmark.reference_runner`,
`trainmark.scorer` and `trainmark.registry`. No logic lives here: every name is handed on, and
loaded on first use, so that `import trainmark` (and so the `trainmark` command) stays cheap and
never imports torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from trainmark.spec import producer_version

if TYPE_CHECKING:  # the names as type checkers and IDEs see them
    from trainmark.api import score, validate
    from trainmark.reference_runner.track import track
    from trainmark.spec import SCHEMA_VERSION
    from trainmark.spec.archive import open_bundle, pack
    from trainmark.spec.bundle import BundleWriter, finalize
    from trainmark.spec.errors import TrainmarkError

__version__ = producer_version()

__all__ = [
    "SCHEMA_VERSION",
    "BundleWriter",
    "TrainmarkError",
    "finalize",
    "open_bundle",
    "pack",
    "score",
    "track",
    "validate",
]

# name -> the module that defines it
_HOMES = {
    "SCHEMA_VERSION": "trainmark.spec",
    "BundleWriter": "trainmark.spec.bundle",
    "TrainmarkError": "trainmark.spec.errors",
    "finalize": "trainmark.api",
    "open_bundle": "trainmark.api",
    "pack": "trainmark.api",
    "score": "trainmark.api",
    "validate": "trainmark.api",
    "track": "trainmark.reference_runner.track",
}


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'trainmark' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
