"""Where a job of runs stands, for the person waiting on it: run k of N, the phase, the step, the
loss, the rate, and one estimate of the time left for the whole job.

A run's process (rank 0) appends small JSON lines to a progress file (`ProgressWriter`); the
launcher reads them as they come (`ProgressReader`) and folds them, with what it knows of the
runs before, into a `JobProgress`, whose `snapshot()` is what `trainmark run` and `trainmark sweep`
print. The estimate is an estimate: it says so, and it is null until a rate is known (the first
training step of the first run).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

PHASES = ("set-up", "idle baseline", "training", "writing")
"""The phases of a run, in order: start the process, load data and build the model; measure the
idle power; train; evaluate, gather the ranks' measurements and write the results."""
WRITE_EVERY_S = 0.5
"""A run writes a training step's progress at most this often (phase changes always)."""


class ProgressWriter:
    """Rank 0 of a run tells the launcher where it is. Without a path it writes nothing."""

    def __init__(self, path: Path | None, steps: int | None = None) -> None:
        self.path = path
        self.steps = steps
        self.last_written = 0.0
        self.recent: list[float] = []

    def _write(self, event: dict) -> None:
        if self.path is None:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps(event) + "\n")
        self.last_written = time.monotonic()

    def phase(self, name: str) -> None:
        """The run enters phase `name` (one of PHASES)."""
        self._write({"phase": name, "steps": self.steps})

    def step(self, step: int, loss: float, duration_s: float) -> None:
        """Optimizer step `step` (0-based) ended with `loss` after `duration_s` seconds."""
        self.recent = (self.recent + [duration_s])[-20:]
        last = self.steps is not None and step + 1 >= self.steps
        if step == 0 or last or time.monotonic() - self.last_written >= WRITE_EVERY_S:
            rate = len(self.recent) / sum(self.recent) if sum(self.recent) > 0 else None
            self._write(
                {
                    "phase": "training",
                    "step": step + 1,
                    "steps": self.steps,
                    "loss": loss if loss == loss else None,
                    "steps_per_second": rate,
                }
            )


class ProgressReader:
    """Reads the lines a run has appended since the last call (a partial last line waits)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new_events(self) -> list[dict]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]


@dataclass
class JobProgress:
    """N runs, one after another: where the job stands and how long it has left (estimated)."""

    runs_total: int
    label: str = ""
    run_number: int = 0
    run_id: str | None = None
    phase: str = "set-up"
    step: int | None = None
    steps: int | None = None
    loss: float | None = None
    steps_per_second: float | None = None
    began: float = field(default_factory=time.monotonic)
    run_began: float = field(default_factory=time.monotonic)
    training_began_after_s: float | None = None
    finished_run_seconds: list[float] = field(default_factory=list)

    def start_run(self, run_id: str, label: str = "") -> None:
        """Run `run_id` starts (the next of runs_total)."""
        self.run_number += 1
        self.run_id, self.label = run_id, label or self.label
        self.phase, self.step, self.loss, self.steps_per_second = "set-up", None, None, None
        self.run_began, self.training_began_after_s = time.monotonic(), None

    def observe(self, event: dict) -> None:
        """Fold in one event of the running run (from its progress file)."""
        self.phase = event.get("phase", self.phase)
        if event.get("steps") is not None:
            self.steps = event["steps"]
        if self.phase == "training":
            if self.training_began_after_s is None:
                self.training_began_after_s = time.monotonic() - self.run_began
            self.step = event.get("step", self.step)
            self.loss = event.get("loss", self.loss)
            self.steps_per_second = event.get("steps_per_second") or self.steps_per_second

    def enter(self, phase: str) -> None:
        """The launcher's own phase for the running run (writing its results)."""
        self.phase = phase

    def end_run(self) -> None:
        self.finished_run_seconds.append(time.monotonic() - self.run_began)

    def _run_seconds(self) -> float | None:
        """How long one run takes: the mean of those finished, else this one's projection."""
        if self.finished_run_seconds:
            return sum(self.finished_run_seconds) / len(self.finished_run_seconds)
        if self.steps_per_second and self.steps and self.training_began_after_s is not None:
            return self.training_began_after_s + self.steps / self.steps_per_second
        return None

    def left_s(self) -> float | None:
        """Estimated seconds until the whole job ends; None until a rate or a finished run is known."""
        per_run = self._run_seconds()
        if per_run is None:
            return None
        elapsed = time.monotonic() - self.run_began
        if self.phase == "training" and self.steps_per_second and self.steps and self.step is not None:
            this_run = (self.steps - self.step) / self.steps_per_second
        else:
            this_run = max(0.0, per_run - elapsed) if self.run_number else per_run
        later = max(0, self.runs_total - max(self.run_number, 1)) * per_run
        return this_run + later

    def snapshot(self) -> dict:
        """What to show now, with exact values (the `--json`-style record of a progress line)."""
        return {
            "run": self.run_number,
            "runs": self.runs_total,
            "run_id": self.run_id,
            "label": self.label,
            "phase": self.phase,
            "step": self.step,
            "steps": self.steps,
            "loss": self.loss,
            "steps_per_second": self.steps_per_second,
            "elapsed_s": time.monotonic() - self.began,
            "left_s": self.left_s(),
            "left_is_estimate": True,
        }
