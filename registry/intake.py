"""The boundary where archives are opened: an uploaded (or packed) bundle is unpacked safely here,
and the store is given the opened bundle. The API and the CLI submit archives through here."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from trainmark.registry.store import (
    RegistryLimits,
    Store,
    SubmissionRejected,
    SubmitOutcome,
    bundle_invalid,
    store_unwritable,
)
from trainmark.spec.archive import is_archive, open_bundle
from trainmark.spec.errors import BundleInvalid, BundleUnreadable


@contextlib.contextmanager
def opened_upload(archive: Path, limits: RegistryLimits, scratch: Path) -> Iterator[Path]:
    """The bundle in an uploaded archive, unpacked safely under `scratch`. Refusals (SubmissionRejected):
    `upload-limit`, `archive-invalid`, `bundle-unreadable`."""
    size = archive.stat().st_size
    if size > limits.max_upload_bytes:
        raise SubmissionRejected(
            f"the upload is {size} bytes, over the limit of {limits.max_upload_bytes}", "upload-limit"
        )
    if not is_archive(archive):
        raise SubmissionRejected(
            "the upload is not a gzip-compressed tar archive; send the .tar.gz that trainmark bundle pack makes",
            "archive-invalid",
        )
    try:
        with open_bundle(archive, limits.archive_limits(), scratch) as root:
            yield root
    except BundleUnreadable as error:
        raise SubmissionRejected(f"not a readable bundle ({error})", "bundle-unreadable") from None
    except BundleInvalid as error:  # an unsafe member, say
        raise bundle_invalid(error) from None


def submit_archive(store: Store, archive: Path, key_id: int | None = None) -> SubmitOutcome:
    """Open `archive` in the store's scratch space and submit the bundle in it. A refusal to open it
    is audited like the store's own refusals; nothing is stored."""
    opened = False
    try:
        with (
            store.blobs.scratch_folder("bundle") as scratch,
            opened_upload(archive, store.limits, Path(scratch)) as root,
        ):
            opened = True
            return store.submit(root, key_id)  # audits its own refusals
    except SubmissionRejected as rejected:
        if not opened:
            store.audit_refusal(key_id, rejected)
        raise
    except OSError as error:  # the registry's own scratch folder, not the bundle
        if opened:
            raise
        rejected = store_unwritable(error)
        store.audit_refusal(key_id, rejected)
        raise rejected from None
