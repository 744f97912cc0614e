"""`trainmark run` killed from outside: its training process ends with it, and `finalize`
refuses while anything still writes the bundle and can be run again."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from trainmark.reference_runner.scratch import sweep_stale_scratch
from trainmark.spec.bundle import finalize, read_manifest
from trainmark.spec.errors import TrainmarkError
from trainmark.spec.validate import validate_bundle

from tests.bundles import REPO

pytestmark = pytest.mark.training  # trains for real: left out of make test-fast

RUN = [
    sys.executable,
    "-m",
    "trainmark",
    "run",
    "--preset",
    "tiny",
    "--repeats",
    "2",
    "--set",
    "max_steps=2000",
    "--set",
    "idle_seconds=0",
]


def start_run(out: Path) -> tuple[subprocess.Popen, int]:
    """A real `trainmark run`, once its first run has logged a dozen steps; (launcher, worker pid)."""
    launcher = subprocess.Popen(
        [*RUN, "--out", str(out)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    steps = out / "runs/run-1/steps.jsonl"
    deadline = time.monotonic() + 180
    while not (steps.exists() and len(steps.read_bytes().splitlines()) >= 12):
        assert time.monotonic() < deadline and launcher.poll() is None, "the run did not start training"
        time.sleep(0.1)
    [worker] = children(launcher.pid)
    return launcher, worker


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def open_files(pid: int) -> list[Path]:
    try:
        return list(Path(f"/proc/{pid}/fd").iterdir())
    except (FileNotFoundError, PermissionError):
        return []


def ended(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z" and not open_files(pid):  # dead, every thread gone, waiting to be reaped
            return True
        time.sleep(0.05)
    return False


def test_sigterm_to_the_launcher_closes_the_bundle_like_ctrl_c(tmp_path):
    out = tmp_path / "terminated"
    launcher, worker = start_run(out)
    launcher.terminate()
    assert launcher.wait(timeout=90) == 1
    assert ended(worker, within_s=5)
    validation = validate_bundle(out)
    assert validation.valid, validation.findings[:5]
    _, manifest = read_manifest(out)
    assert [run.status for run in manifest.runs] == ["interrupted"]


PRODUCER = """
import sys, time
from pathlib import Path
from trainmark.spec.bundle import BundleWriter
writer = BundleWriter(Path(sys.argv[1]))
print("holding", flush=True)
time.sleep(600)
"""


def test_sigkill_to_the_launcher_ends_its_worker_then_finalize_refuses_while_a_writer_lives_and_can_run_again(tmp_path):
    out = tmp_path / "bundle"
    launcher, worker = start_run(out)
    launcher.kill()  # the launcher alone: its worker is not in the signal's way
    launcher.wait()
    assert ended(worker, within_s=30), "the worker kept training after its launcher died"
    scratch = Path(tempfile.gettempdir())
    assert not list(scratch.glob(f"trainmark-checkpoint-{worker}-*"))  # the worker removed its own on SIGTERM
    left = list(scratch.glob(f"trainmark-run-{launcher.pid}-*"))  # SIGKILL: the launcher could not
    assert len(left) == 1
    assert left[0] in sweep_stale_scratch() and not left[0].exists()  # the next trainmark run removes it
    holder = subprocess.Popen([sys.executable, "-c", PRODUCER, str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(TrainmarkError, match="still being written"):
            finalize(out)
        assert (out / "manifest.draft.json").exists() and not (out / "manifest.json").exists()
    finally:
        holder.kill()
        holder.wait()
    first = finalize(out)
    assert first.closed_runs == ["run-1"]
    validation = validate_bundle(out)
    assert validation.valid, validation.findings[:5]
    # a late record (what a worker that outlived the first finalize wrote): the bundle no longer matches
    steps = out / "runs/run-1/steps.jsonl"
    last = json.loads(steps.read_text().splitlines()[-1])
    late = {**last, "step": last["step"] + 1, "start_unix_ns": last["start_unix_ns"] + 10**8}
    with steps.open("a") as handle:
        handle.write(json.dumps(late) + "\n")
    assert not validate_bundle(out).valid
    again = finalize(out)
    assert again.closed_runs == ["run-1"] and again.bundle_id != first.bundle_id
    validation = validate_bundle(out)
    assert validation.valid, validation.findings[:5]
    _, manifest = read_manifest(out)
    steps_completed = {m.name: m for m in manifest.runs[0].metrics}["steps_completed"]
    assert steps_completed.value == len(steps.read_text().splitlines())


def test_finalize_refuses_a_manifest_its_producer_wrote(tmp_path):
    from tests.bundles import copy_bundle
    from tests.registry_bundles import CPU

    bundle = copy_bundle(CPU, tmp_path / "final")
    with pytest.raises(TrainmarkError, match="its producer wrote"):
        finalize(bundle)
