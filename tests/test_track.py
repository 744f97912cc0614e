"""trainmark.track and trainmark repeat, for real: the example scripts under `trainmark repeat -n 3`, a
crash and a refused run, two torchrun processes, and the run object in this process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import trainmark
from tests.bundles import REPO

pytestmark = pytest.mark.training  # trains for real: left out of make test-fast

TRAINMARK = [sys.executable, "-m", "trainmark"]
QUIET = {"idle_seconds": 0.0, "warmup_steps": 2, "profile_first_step": 3, "profile_steps": 2, "allocation_steps": 1}


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _global(run: dict) -> dict[str, dict]:
    return {metric["name"]: metric for metric in run["metrics"] if metric.get("scope") == "global"}


def _check_ranked(bundle: Path) -> None:
    report = trainmark.validate(bundle)
    assert report.valid, report.findings
    score = trainmark.score(bundle)
    assert score.ranked, score
    assert (bundle / "README.md").is_file() and not (bundle / "manifest.draft.json").exists()


def _clean_environment() -> dict:
    return {key: value for key, value in os.environ.items() if not key.startswith("TRAINMARK_")}


def test_repeat_runs_the_plain_loop_three_times_into_one_ranked_bundle(tmp_path):
    out = tmp_path / "mlp"
    done = subprocess.run(
        [
            *TRAINMARK,
            "repeat",
            "-n",
            "3",
            "--seed",
            "7",
            "--out",
            str(out),
            "--",
            sys.executable,
            str(REPO / "examples" / "plain_loop.py"),
            "--steps",
            "16",
            "--idle-seconds",
            "0",
        ],
        capture_output=True,
        text=True,
        env=_clean_environment(),
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for k in (1, 2, 3):
        assert f"run {k}/3 (run-{k}) completed" in done.stderr
    assert "about" in done.stderr and "left (estimate)" in done.stderr
    _check_ranked(out)
    manifest = _manifest(out)
    assert [(run["run_id"], run["seed"], run["status"]) for run in manifest["runs"]] == [
        ("run-1", 7, "completed"),
        ("run-2", 8, "completed"),
        ("run-3", 9, "completed"),
    ]
    assert manifest["training"]["optimizer"]["name"] == "SGD"
    assert manifest["model"]["parameters_total"]["value"] == 32 * 128 + 128 + 128 * 10 + 10
    assert manifest["model"]["precision_policy"] == "fp32"
    metrics = _global(manifest["runs"][0])
    for name in (
        "steps_per_second",
        "time_per_step_forward",
        "time_per_step_backward",
        "time_per_step_optimizer",
        "time_per_step_data_loading",
        "flops_per_step_analytical",
        "flops_per_step_counted",
        "peak_memory",
        "kernel_time_share_matmul",
        "final_loss",
    ):
        assert metrics[name]["value"] is not None, name
    allocations = next(m for m in manifest["runs"][0]["metrics"] if m["name"] == "allocations_per_step")
    assert allocations["value"] > 0 and allocations["method"] == "profiler"
    assert metrics["tokens_per_second"]["value"] is None
    assert "no token sequences" in metrics["tokens_per_second"]["unavailable_reason"]
    # 6 N per sample: 6 x 5514 parameters x 64 samples
    assert metrics["flops_per_step_analytical"]["value"] == 6 * 5514 * 64
    steps = (out / "runs" / "run-2" / "steps.jsonl").read_text().splitlines()
    assert len(steps) == 16
    assert sum(1 for line in steps if json.loads(line).get("warmup")) == 5


@pytest.mark.parametrize("example", ["hf_trainer.py", "lightning_loop.py"])
def test_repeat_runs_a_framework_callback_three_times_into_one_ranked_bundle(tmp_path, example):
    out = tmp_path / "bundle"
    done = subprocess.run(
        [
            *TRAINMARK,
            "repeat",
            "-n",
            "3",
            "--out",
            str(out),
            "--",
            sys.executable,
            str(REPO / "examples" / example),
            "--steps",
            "12",
            "--idle-seconds",
            "0",
        ],
        capture_output=True,
        text=True,
        env=_clean_environment(),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    _check_ranked(out)
    manifest = _manifest(out)
    assert [(run["run_id"], run["seed"], run["status"]) for run in manifest["runs"]] == [
        ("run-1", 0, "completed"),
        ("run-2", 1, "completed"),
        ("run-3", 2, "completed"),
    ]
    assert manifest["training"]["optimizer"]["name"] == ("AdamW" if example == "hf_trainer.py" else "SGD")
    for run in manifest["runs"]:
        metrics = _global(run)
        assert metrics["updates_completed"]["value"] == 12
        for name in (
            "time_per_step_forward",
            "time_per_step_backward",
            "time_per_step_optimizer",
            "final_loss",
            "flops_per_step_counted",
        ):
            assert metrics[name]["value"] is not None, name
    if example == "hf_trainer.py":  # tokens counted from input_ids: 8 sequences of 32
        records = [json.loads(line) for line in (out / "runs" / "run-1" / "steps.jsonl").read_text().splitlines()]
        assert {(record["samples"], record["tokens"]) for record in records} == {(8, 256)}
        assert manifest["model"]["name"] == "gpt2"


CRASHING = """
import os, torch, trainmark
torch.manual_seed(0)
model = torch.nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
run_id = os.environ["TRAINMARK_RUN_ID"]
batch = 8 if run_id != "run-3" else 16
with trainmark.track(model=model, batch_size=batch, idle_seconds=0, warmup_steps=1, profile_steps=0,
                     allocation_steps=0) as run:
    for index in range(4):
        with run.step() as step:
            loss = model(torch.randn(batch, 4)).pow(2).mean()
            loss.backward(); opt.step(); opt.zero_grad()
            step.loss = loss.item()
        if run_id == "run-2" and index == 2:
            os._exit(3)  # a hard crash: no exception, no cleanup
"""


def test_repeat_keeps_a_crashed_run_as_failed_and_refuses_a_different_configuration(tmp_path):
    script = tmp_path / "crashing.py"
    script.write_text(CRASHING)
    out = tmp_path / "bundle"
    done = subprocess.run(
        [*TRAINMARK, "repeat", "-n", "3", "--out", str(out), "--", sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=_clean_environment(),
    )
    assert done.returncode == 1
    assert "run-3 differs from run-1 in training/global_batch_size (16 here, 8 there)" in done.stderr
    assert "written with the 2 run(s) before" in done.stderr
    manifest = _manifest(out)
    assert [(run["run_id"], run["status"]) for run in manifest["runs"]] == [("run-1", "completed"), ("run-2", "failed")]
    failed = manifest["runs"][1]
    assert "exited with status 3" in failed["status_reason"]
    assert _global(failed)["steps_completed"]["value"] == 3
    assert trainmark.validate(out).valid


def test_two_torchrun_processes_each_write_their_traces_and_rank_0_the_manifest(tmp_path):
    out = tmp_path / "ddp"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            str(REPO / "examples" / "torchrun_loop.py"),
            "--out",
            str(out),
            "--steps",
            "14",
            "--idle-seconds",
            "0",
        ],
        capture_output=True,
        text=True,
        env=_clean_environment(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    files = sorted(path.name for path in (out / "runs" / "run-1").iterdir())
    assert {"steps.rank0.jsonl", "steps.rank1.jsonl", "memory.rank0.jsonl", "memory.rank1.jsonl"} <= set(files)
    manifest = _manifest(out)
    assert manifest["training"]["world_size"] == 2 and manifest["training"]["global_batch_size"] == 64
    assert manifest["training"]["parallelism"]["strategy"] == "DistributedDataParallel"
    assert manifest["software"]["distributed_backend"] == "gloo"
    assert [rank["rank"] for rank in manifest["runs"][0]["ranks"]] == [0, 1]
    assert trainmark.validate(out).valid
    assert trainmark.score(out).ranked


# ---------------------------------------------------------------- in this process


def _model_and_optimizer():
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(16, 8), torch.nn.Flatten(), torch.nn.Linear(8 * 6, 16))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2)


def _train(run, model, opt, steps: int, fail_at: int | None = None) -> None:
    import torch

    for index in range(steps):
        with run.step(samples=4) as step:
            tokens = torch.randint(0, 16, (4, 6))
            with step.phase("forward"):
                loss = torch.nn.functional.cross_entropy(model(tokens), tokens[:, 0])
            with step.phase("backward"):
                loss.backward()
            with step.phase("optimizer"):
                opt.step()
                opt.zero_grad()
            step.loss = loss
            if index == fail_at:
                raise RuntimeError("the loss went to the moon")


def test_track_in_process_with_a_checkpoint_and_an_accuracy(tmp_path, monkeypatch):
    import torch

    for name in ("TRAINMARK_BUNDLE", "TRAINMARK_RUN_ID", "TRAINMARK_SEED"):
        monkeypatch.delenv(name, raising=False)
    model, opt = _model_and_optimizer()
    out = tmp_path / "tokens"
    with trainmark.track(
        model=model,
        batch_size=4,
        sequence_length=6,
        submitter="test",
        out=out,
        seed=0,
        dataset="random tokens",
        name="tiny-embedding",
        **QUIET,
    ) as run:
        _train(run, model, opt, 8)
        with run.checkpoint(tmp_path / "ckpt.pt"):
            torch.save(model.state_dict(), tmp_path / "ckpt.pt")
        run.accuracy = 0.25
    assert run.bundle_id
    _check_ranked(out)
    manifest = _manifest(out)
    metrics = _global(manifest["runs"][0])
    assert metrics["checkpoint_size"]["value"] == (tmp_path / "ckpt.pt").stat().st_size
    assert metrics["checkpoint_interval"]["value"] == 8
    assert metrics["final_accuracy"]["value"] == 0.25
    assert metrics["tokens_per_second"]["value"] == pytest.approx(metrics["steps_per_second"]["value"] * 4 * 6)
    assert manifest["training"]["optimizer"]["name"] == "AdamW"
    assert {"name": "learning_rate", "value": 0.01} in manifest["training"]["optimizer"]["hyperparameters"]
    assert manifest["model"]["name"] == "tiny-embedding" and manifest["dataset"]["name"] == "random tokens"
    steps = [json.loads(line) for line in (out / "runs" / "run-1" / "steps.jsonl").read_text().splitlines()]
    assert [record["tokens"] for record in steps] == [24] * 8
    assert all(record["updated"] and record["learning_rate"] == 0.01 for record in steps)
    assert [bool(record.get("profiled")) for record in steps] == [False] * 3 + [True] * 3 + [False] * 2


def test_a_loop_that_raises_leaves_a_valid_bundle_with_a_failed_run(tmp_path, monkeypatch):
    monkeypatch.delenv("TRAINMARK_RUN_ID", raising=False)
    model, opt = _model_and_optimizer()
    out = tmp_path / "failed"
    with pytest.raises(RuntimeError, match="moon"):
        with trainmark.track(model=model, batch_size=4, out=out, **QUIET) as run:
            _train(run, model, opt, 8, fail_at=4)
    manifest = _manifest(out)
    assert manifest["runs"][0]["status"] == "failed"
    assert "RuntimeError: the loss went to the moon" in manifest["runs"][0]["status_reason"]
    assert trainmark.validate(out).valid


def test_track_says_where_a_bundle_is_needed(monkeypatch):
    for name in ("TRAINMARK_BUNDLE", "TRAINMARK_RUN_ID", "TRAINMARK_SEED"):
        monkeypatch.delenv(name, raising=False)
    model, _ = _model_and_optimizer()
    with pytest.raises(trainmark.TrainmarkError, match="pass out='DIR', or start the script under `trainmark repeat"):
        with trainmark.track(model=model, batch_size=4, **QUIET):
            pass
    with pytest.raises(trainmark.TrainmarkError, match="batch_size must be a whole number"):
        trainmark.track(model=model, batch_size=0)
    with pytest.raises(trainmark.TrainmarkError, match="a phase is one of data_loading, forward"):
        from trainmark.reference_runner.stepping import Step

        with Step(None, 0, 1, None, None).phase("thinking"):
            pass
