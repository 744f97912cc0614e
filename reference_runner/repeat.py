"""`trainmark repeat -n N --out DIR -- COMMAND...`: N independent runs of your own script, one bundle.

Each run is a fresh process of COMMAND with TRAINMARK_BUNDLE=DIR, TRAINMARK_RUN_ID=run-k and
TRAINMARK_SEED=base+k-1 in its environment; the script's `trainmark.track` appends its run to
the bundle's draft manifest, and this module writes the manifest (and the README) after the
last run. A run whose process fails is kept, marked `failed` with its exit status and the
metrics its traces support; a run whose configuration or hardware differs from the first is
refused by `track` before it trains, and repeat stops with that message.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from trainmark.reference_runner.readme import bundle_readme
from trainmark.spec.bundle import BundleWriter, _drop_partial_last_line, bundle_files, close_run_from_traces, finalize
from trainmark.spec.errors import TrainmarkError
from trainmark.spec.jsontext import load_document
from trainmark.spec.layout import DRAFT_NAME, role_of

# The names trainmark.track reads (reference_runner/track.py); repeated here so that repeat never imports torch.
ENV_BUNDLE, ENV_RUN_ID, ENV_SEED, ENV_REFUSAL = (
    "TRAINMARK_BUNDLE",
    "TRAINMARK_RUN_ID",
    "TRAINMARK_SEED",
    "TRAINMARK_REFUSAL_FILE",
)


@dataclass
class RepeatProgress:
    """What `on_run` hears after each run."""

    index: int  # 1-based
    total: int
    run_id: str
    status: str
    run_seconds: float
    elapsed_seconds: float
    estimate_left_seconds: float  # mean run time so far x runs left: an estimate

    def line(self) -> str:
        """`run 2/3 completed in 12.1 s; elapsed 25 s, about 12 s left (estimate)`."""
        left = "done" if self.index == self.total else f"about {self.estimate_left_seconds:.0f} s left (estimate)"
        return (
            f"run {self.index}/{self.total} ({self.run_id}) {self.status} in {self.run_seconds:.1f} s; "
            f"elapsed {self.elapsed_seconds:.0f} s, {left}"
        )


@dataclass
class RepeatOutcome:
    """What `repeat` did."""

    bundle: Path
    bundle_id: str
    statuses: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def _read_draft(out: Path) -> dict | None:
    path = out / DRAFT_NAME
    return load_document(path.read_bytes(), file=DRAFT_NAME) if path.is_file() else None


def _drop_cut_lines(out: Path, run_id: str) -> list[str]:
    """A process killed mid-write leaves a cut last line; drop it, as `finalize` does."""
    dropped = []
    for relative in bundle_files(out):
        role = role_of(relative)
        if (
            role is not None
            and role.run_id == run_id
            and relative.endswith(".jsonl")
            and _drop_partial_last_line(out / relative)
        ):
            dropped.append(relative)
    return dropped


def _close(out: Path, entry: dict, code: int, began_iso: str) -> dict:
    """The manifest entry of a run whose process failed (or never closed its run)."""
    if entry.get("status") == "completed":
        return {
            **entry,
            "status": "failed",
            "status_reason": f"the run was measured to its end, but the command then exited with status {code}",
        }
    if entry.get("status"):
        return {**entry, "status_reason": f"{entry.get('status_reason', '')} (exit status {code})"[:2000]}
    dropped = _drop_cut_lines(out, entry["run_id"])
    reason = (
        f"the command exited with status {code}"
        if code
        else "the command exited with status 0 without closing its trainmark.track run"
    )
    if dropped:
        reason += f"; dropped an incomplete last line in {', '.join(dropped)}"
    return close_run_from_traces(out, {"started_at": began_iso, **entry}, "failed", reason)


def repeat(
    command: list[str],
    repeats: int,
    out: Path,
    base_seed: int = 0,
    on_run: Callable[[RepeatProgress], None] | None = None,
) -> RepeatOutcome:
    """Run `command` `repeats` times as the runs of one bundle in `out` (new or empty)."""
    from trainmark.reference_runner.launch import _stop
    from trainmark.reference_runner.summary import iso

    if repeats < 1:
        raise TrainmarkError("-n must be at least 1 (the statistics need 3 or more runs)")
    if not command:
        raise TrainmarkError("give the command to repeat after --: trainmark repeat -n 3 --out DIR -- python train.py")
    if not 0 <= base_seed < 2**53:
        raise TrainmarkError("--seed must be in [0, 2**53)")
    writer = BundleWriter.create(out)
    began = time.monotonic()
    outcome = RepeatOutcome(out, "")
    never_tracked: list[dict] = []  # runs that failed before their script reached trainmark.track
    run_seconds: list[float] = []
    with tempfile.TemporaryDirectory(prefix="trainmark-repeat-") as scratch:
        for index in range(repeats):
            run_id, seed = f"run-{index + 1}", base_seed + index
            refusal = Path(scratch) / f"{run_id}.refused"
            environment = {
                **os.environ,
                ENV_BUNDLE: str(out.resolve()),
                ENV_RUN_ID: run_id,
                ENV_SEED: str(seed),
                ENV_REFUSAL: str(refusal),
            }
            started_iso, run_began = iso(time.time_ns()), time.monotonic()
            try:
                process = subprocess.Popen(command, env=environment)
            except OSError as error:
                raise TrainmarkError(f"cannot start {command[0]!r}: {error}") from None
            try:
                code = process.wait()
            except KeyboardInterrupt:
                _stop(process)
                if _read_draft(out) is None:
                    raise TrainmarkError(
                        f"interrupted before any run reached trainmark.track; {out} holds no bundle"
                    ) from None
                report = finalize(out)
                raise TrainmarkError(
                    f"interrupted; the bundle was closed with run(s) {', '.join(report.closed_runs)} "
                    f"marked interrupted: {out} (bundle {report.bundle_id})"
                ) from None
            if refusal.exists():
                message = refusal.read_text()
                kept = _close_bundle(writer, out, never_tracked, outcome)
                raise TrainmarkError(f"{message}. {kept}")
            draft = _read_draft(out)
            entry = next((run for run in (draft or {}).get("runs", []) if run.get("run_id") == run_id), None)
            if entry is None:
                reason = (
                    f"the command exited with status {code} before its script reached trainmark.track"
                    if code
                    else "the command exited with status 0 without calling trainmark.track"
                )
                failed = {"run_id": run_id, "seed": seed, "started_at": started_iso}
                never_tracked.append(close_run_from_traces(out, failed, "failed", reason))
                status = "failed"
            elif code != 0 or not entry.get("status"):
                closed = _close(out, entry, code, started_iso)
                draft["runs"] = [closed if run.get("run_id") == run_id else run for run in draft["runs"]]
                writer.write_draft(draft)
                status = closed["status"]
            else:
                status = entry["status"]
            outcome.statuses[run_id] = status
            run_seconds.append(time.monotonic() - run_began)
            if on_run is not None:
                mean = sum(run_seconds) / len(run_seconds)
                on_run(
                    RepeatProgress(
                        index + 1,
                        repeats,
                        run_id,
                        status,
                        run_seconds[-1],
                        time.monotonic() - began,
                        mean * (repeats - index - 1),
                    )
                )
    _close_bundle(writer, out, never_tracked, outcome)
    outcome.seconds = time.monotonic() - began
    return outcome


def _close_bundle(writer: BundleWriter, out: Path, never_tracked: list[dict], outcome: RepeatOutcome) -> str:
    """Write the manifest and README from the draft; say what the bundle holds."""
    draft = _read_draft(out)
    if draft is None:
        raise TrainmarkError(
            f"no run reached trainmark.track, so nothing describes the configuration; {out} holds "
            "no bundle (each run's output above says why it failed)"
        )
    draft["runs"] = sorted(draft["runs"] + never_tracked, key=lambda run: int(run["run_id"].rpartition("-")[2]))
    never_tracked.clear()
    from trainmark.reference_runner.summary import iso

    draft["created_at"] = iso(time.time_ns())
    writer.write_document("README.md", bundle_readme(draft))
    _, outcome.bundle_id = writer.finish(draft)
    return f"The bundle {out} was written with the {len(draft['runs'])} run(s) before (bundle {outcome.bundle_id})"
