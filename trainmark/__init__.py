"""trainmark: the `trainmark` command and the package version. No logic lives here."""

from spec import producer_version

__version__ = producer_version()
