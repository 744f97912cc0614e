"""Progress of a job of runs: the events a run writes, the launcher's estimate of the time left,
and the lines people see (trainmark.reference_runner.progress, trainmark.terminal)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import pytest
from rich.console import Console
from trainmark.reference_runner.progress import JobProgress, ProgressReader, ProgressWriter

from tests.gpu_recording import write_recording
from trainmark.terminal import ProgressDisplay, progress_text


def test_a_run_writes_phases_and_steps_and_the_reader_takes_only_whole_lines(tmp_path):
    path = tmp_path / "run.progress"
    writer = ProgressWriter(path, steps=4)
    writer.phase("set-up")
    reader = ProgressReader(path)
    assert reader.new_events() == [{"phase": "set-up", "steps": 4}]
    for step in range(4):
        writer.step(step, 2.0 - step / 10, 0.5)
    events = reader.new_events()
    # the first and the last step always; the others at most every half second
    assert events[0] == {"phase": "training", "step": 1, "steps": 4, "loss": 2.0, "steps_per_second": 2.0}
    assert events[-1]["step"] == 4
    with path.open("a") as handle:
        handle.write('{"phase": "wri')  # a line still being written waits
    assert reader.new_events() == []
    with path.open("a") as handle:
        handle.write('ting", "steps": 4}\n')
    assert reader.new_events() == [{"phase": "writing", "steps": 4}]
    ProgressWriter(None).phase("set-up")  # without a path: nothing, no error


def test_the_estimate_exists_from_the_first_step_and_covers_every_run():
    job = JobProgress(runs_total=3)
    job.start_run("run-1")
    assert job.left_s() is None  # no rate yet: no number pretending to be one
    job.run_began -= 10  # ten seconds of set-up
    job.observe({"phase": "training", "step": 1, "steps": 100, "loss": 5.0, "steps_per_second": 4.0})
    left = job.left_s()
    # this run: 99 steps at 4/s; two more runs of about 10 s + 100 / 4 s each
    assert abs(left - (99 / 4 + 2 * (10 + 100 / 4))) < 0.5
    state = job.snapshot()
    assert (state["run"], state["runs"], state["phase"], state["step"], state["left_is_estimate"]) == (
        1,
        3,
        "training",
        1,
        True,
    )
    job.end_run()
    job.finished_run_seconds[-1] = 40.0
    job.start_run("run-2")
    assert abs(job.left_s() - 80.0) < 0.5  # two runs of 40 s each are left


def _display(terminal: bool) -> tuple[ProgressDisplay, io.StringIO]:
    buffer = io.StringIO()
    return ProgressDisplay(Console(file=buffer, width=80, force_terminal=terminal)), buffer


def test_outside_a_terminal_a_line_every_tenth_of_a_run_and_every_phase():
    display, buffer = _display(terminal=False)
    job = JobProgress(runs_total=2)
    job.start_run("run-1")
    display.update(job)
    for step in range(1, 101):
        job.observe({"phase": "training", "step": step, "steps": 100, "loss": 1.0, "steps_per_second": 50.0})
        display.update(job)
    job.enter("writing")
    display.update(job)
    lines = [line for line in buffer.getvalue().splitlines() if line.startswith("run ")]
    assert lines[0].startswith("run 1 of 2 · set-up")
    training = [line for line in lines if "· training ·" in line]
    assert len(training) == 11  # the first step, then every tenth (10 %, 20 %, ... 100 %)
    assert "step 1 of 100 · loss 1.000 · 50 steps/s · about" in training[0] and "left (estimate)" in training[0]
    assert lines[-1].startswith("run 1 of 2 · writing")
    assert "…" not in buffer.getvalue()


def test_outside_a_terminal_a_line_at_least_every_30_seconds(monkeypatch):
    display, buffer = _display(terminal=False)
    job = JobProgress(runs_total=1)
    job.start_run("run-1")
    job.observe({"phase": "training", "step": 1, "steps": 1000, "loss": 1.0, "steps_per_second": 0.01})
    display.update(job)
    display.update(job)
    assert buffer.getvalue().count("\n") == 1
    display.last_printed = time.monotonic() - 31
    display.update(job)
    assert buffer.getvalue().count("run 1 of 1") == 2


def test_the_progress_line_names_the_point_of_a_sweep():
    job = JobProgress(runs_total=4, label="precision=bf16_autocast")
    job.start_run("run-1")
    assert progress_text(job.snapshot()).startswith("run 1 of 4 (precision=bf16_autocast) · set-up · ")


@pytest.mark.training
def test_a_real_run_piped_to_a_file_names_every_phase_in_order(tmp_path):
    """`trainmark run` with an idle baseline (a power meter is needed for one: the replayed GPU
    recording stands in for the absent GPU), its output going to a file as in a log: each run's
    phases appear as labelled lines, set-up, idle baseline, training, writing, in that order."""
    recording = write_recording(tmp_path / "gpu.json")
    result = subprocess.run(
        [sys.executable, "-m", "trainmark", "run", "--preset", "tiny", "--repeats", "2", "--out", str(tmp_path / "b"),
         "--set", "max_steps=4", "--set", "idle_seconds=0.3", "--replay", str(recording)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "80"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("run ")]
    for run in (1, 2):
        phases = [line.split(" · ")[1] for line in lines if line.startswith(f"run {run} of 2 · ")]
        firsts = [phase for index, phase in enumerate(phases) if phase not in phases[:index]]
        assert firsts == ["set-up", "idle baseline", "training", "writing"], lines
