"""The runner's temporary folders, named for the process that owns them, so that what a killed
process could not remove is found and removed later.

A launcher killed outright (SIGKILL) cannot remove its `trainmark-run-*` folder, so the next
`trainmark run` removes every `trainmark-<kind>-<pid>-*` folder whose process is gone. A run's
worker removes its own `trainmark-checkpoint-*` folder on SIGTERM (the signal it gets when its
launcher dies), since it exits instead of dying at once.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

_OWNED = re.compile(r"trainmark-(?:run|checkpoint)-(?P<pid>\d+)-")


def scratch_folder(kind: str) -> tempfile.TemporaryDirectory:
    """A temporary folder of this process, `trainmark-<kind>-<pid>-...` in the system's temp folder."""
    return tempfile.TemporaryDirectory(prefix=f"trainmark-{kind}-{os.getpid()}-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to judge
        return True
    return True


def sweep_stale_scratch(folder: Path | None = None) -> list[Path]:
    """Remove the runner's temporary folders whose owning process is gone; returns what went."""
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob("trainmark-*-*-*"):
        owned = _OWNED.match(path.name)
        if owned and path.is_dir() and not path.is_symlink() and not _alive(int(owned["pid"])):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
