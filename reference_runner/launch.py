"""`trainmark run`: N independent runs of one configuration, each in a fresh process, into one bundle.

The launcher writes the bundle's draft manifest before the first run and after every run, so a
kill at any moment leaves what `trainmark bundle finalize` needs; starts each run as its own
process (through torchrun when there are several processes per node or several nodes); turns
each run's measurements into its manifest entry; and writes the manifest at the end. A run
whose process fails is kept, with status `failed` and the metrics its traces support.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from trainmark.reference_runner import metadata
from trainmark.reference_runner.calibration import check_applicable, compare, load_record, make_record
from trainmark.reference_runner.config import RunConfig
from trainmark.reference_runner.data import FeedingOrder, load_dataset
from trainmark.reference_runner.devices import planned_setup, refuse_unsupported_precision, uses_cuda
from trainmark.reference_runner.measurements import WorkerResult
from trainmark.reference_runner.model import analytical_flops_per_step, counted_flops_per_step
from trainmark.reference_runner.progress import JobProgress, ProgressReader
from trainmark.reference_runner.readme import bundle_readme
from trainmark.reference_runner.scratch import scratch_folder, sweep_stale_scratch
from trainmark.reference_runner.summary import RunSummary, adopt_worker_view, iso
from trainmark.spec import SCHEMA_VERSION, producer_version
from trainmark.spec.bundle import BundleWriter, close_run_from_traces, finalize
from trainmark.spec.errors import TrainmarkError
from trainmark.spec.layout import trace_path


@dataclass
class Topology:
    """How many processes on how many nodes, and how they find each other."""

    processes_per_node: int = 1
    nodes: int = 1
    node_rank: int = 0
    master_address: str = "127.0.0.1"
    master_port: int = 29500

    def __post_init__(self) -> None:
        if self.processes_per_node < 1 or self.nodes < 1:
            raise TrainmarkError("--nproc-per-node and --nnodes must be at least 1")
        if not 0 <= self.node_rank < self.nodes:
            raise TrainmarkError(f"--node-rank must be in 0..{self.nodes - 1}")

    @property
    def world_size(self) -> int:
        return self.processes_per_node * self.nodes


@dataclass
class RunOutcome:
    """What `trainmark run` did."""

    bundle: Path
    bundle_id: str | None
    statuses: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def worker_command(
    config: RunConfig,
    topology: Topology,
    run_id: str,
    seed: int,
    bundle: Path,
    result: Path,
    replay: Path | None,
    progress: Path | None = None,
) -> list[str]:
    """The command that starts one run: the loop directly, or through torchrun."""
    arguments = [
        "--config",
        json.dumps(config.as_dict()),
        "--run-id",
        run_id,
        "--seed",
        str(seed),
        "--bundle",
        str(bundle),
        "--result",
        str(result),
    ]
    if replay is not None:
        arguments += ["--replay", str(replay)]
    if progress is not None:
        arguments += ["--progress", str(progress)]
    if topology.world_size == 1:
        return [sys.executable, "-m", "trainmark.reference_runner.loop", *arguments]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(topology.processes_per_node)]
    if topology.nodes == 1:
        launcher += ["--standalone"]
    else:
        launcher += [
            "--nnodes",
            str(topology.nodes),
            "--node-rank",
            str(topology.node_rank),
            "--master-addr",
            topology.master_address,
            "--master-port",
            str(topology.master_port),
        ]
    return [*launcher, "-m", "trainmark.reference_runner.loop", *arguments]


def _draft(config: RunConfig, topology: Topology, replay: Path | None) -> tuple[dict, float, float]:
    """Everything known before the first run, and the FLOPs per step (analytical, counted)."""
    dataset = load_dataset(config.data, config.sequence_length, config.eval_fraction)
    world = topology.world_size
    order = FeedingOrder(dataset, config.global_batch_size, config.data_seed)
    planned = order.planned_steps(config.max_steps, config.epochs)
    devices, channels, energy_reason = planned_setup(
        config.device,
        replay,
        topology.processes_per_node,
        topology.nodes,
        config.peak_flops_per_s,
        config.sample_rate_hz,
    )
    device_label = "cuda" if uses_cuda(config.device, replay) else "cpu"
    hosts = [metadata.host(node) if node == topology.node_rank else {"node": node} for node in range(topology.nodes)]
    draft = {
        "schema_version": SCHEMA_VERSION,
        "producer": {"name": "trainmark", "version": producer_version()},
        "created_at": iso(time.time_ns()),
        "description": f"trainmark reference runner: preset {config.name}, {world} process(es) on {topology.nodes} "
        f"node(s)" + (f"; GPU sensors replayed from {replay.name}, not measured live" if replay else ""),
        "system": {"node_count": topology.nodes, "hosts": hosts, "devices": devices},
        "software": metadata.software(config, world, {}, device_label),
        "model": metadata.model_block(config),
        "training": metadata.training_block(config, world, planned),
        "dataset": metadata.dataset_block(dataset, order, planned),
        "code": metadata.code(),
        "environment": metadata.environment(config),
        "methodology": metadata.methodology(
            config,
            channels,
            bool(config.idle_seconds)
            and energy_reason is None
            and any(c["record_type"] == "power_sample" for c in channels),
            energy_reason,
        ),
        "runs": [],
    }
    if config.submitter:
        draft["submitter"] = {"name": config.submitter}
    if topology.nodes > 1 or topology.processes_per_node > 1:
        draft["system"]["interconnect"] = {
            "intra_node": "shared memory and loopback (one host)" if topology.nodes == 1 else "as the cluster provides"
        }
    return draft, analytical_flops_per_step(config), counted_flops_per_step(config)


INTERRUPT_GRACE_S = 30.0
"""How long an interrupted run may take to stop before it is terminated, and then killed."""


def _stop(process: subprocess.Popen) -> None:
    """Pass Ctrl-C on to the run; a run stuck where it cannot hear it is terminated, then killed,
    so that an interrupted `trainmark run` always ends (and closes the bundle)."""
    for send, grace in (
        (lambda: process.send_signal(signal.SIGINT), INTERRUPT_GRACE_S),
        (process.terminate, INTERRUPT_GRACE_S / 3),
        (process.kill, None),
    ):
        send()
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal the kernel sends a process when its parent dies."""


def _die_with_parent(parent_pid: int) -> None:
    """A `preexec_fn`: the run gets SIGTERM when the launcher dies, however it dies (SIGKILL
    included), so a killed `trainmark run` never leaves a run training on its own. torchrun
    passes SIGTERM on to its ranks."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        os._exit(126)
    if os.getppid() != parent_pid:  # the launcher died before the request took effect
        os._exit(1)


def _terminate_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_sigint() -> Iterator[None]:
    """SIGTERM (kill, a batch scheduler's stop) stops `trainmark run` the way Ctrl-C does: the run
    is interrupted and the bundle closed. Only the main thread can set a handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_bundle(
    config: RunConfig,
    repeats: int,
    out: Path,
    topology: Topology = Topology(),
    replay: Path | None = None,
    calibration: Path | None = None,
    *,
    on_run: Callable[[str, str, float], None] | None = None,
    quiet_workers: bool = False,
    progress: JobProgress | None = None,
    on_progress: Callable[[JobProgress], None] | None = None,
) -> RunOutcome:
    """Train `repeats` independent runs of `config` and write them as one bundle in `out`.

    With a calibration record, the bundle also reports its deviation from it (same
    configuration and hardware only; checked before anything is trained). `on_run(run_id,
    status, seconds)` hears of each run as it ends; `quiet_workers` sends the runs' own output
    to their logs. `on_progress(progress)` hears where the job stands (run k of N, phase, step,
    loss, rate, time left) about every quarter second while a run goes; `progress` is the job
    this bundle is part of (a sweep's), by default just this bundle's runs.
    """
    progress = progress or JobProgress(repeats)
    if repeats < 1:
        raise TrainmarkError("--repeats must be at least 1")
    refuse_unsupported_precision(config.precision, config.device, replay)
    config = config.for_world(topology.world_size)
    sweep_stale_scratch()  # what earlier runs killed outright (SIGKILL) could not remove
    began = time.monotonic()
    if topology.node_rank != 0:
        return _run_follower_node(config, repeats, out, topology, replay)
    record = load_record(calibration) if calibration else None
    if record is not None and repeats < 2:
        raise TrainmarkError("a calibration comparison needs --repeats 2 or more (a deviation needs a spread)")
    draft, flops_analytical, flops_counted = _draft(config, topology, replay)
    if record is not None:
        check_applicable(record, config, draft["system"])
    writer = BundleWriter.create(out)
    writer.write_draft(draft)
    outcome = RunOutcome(out, None)
    per_rank = 0 if topology.world_size > 1 else None
    steps_file = trace_path("run-X", "step", per_rank).replace("run-X", "{run}")
    kernels_file = trace_path("run-X", "kernel_breakdown", per_rank).replace("run-X", "{run}")
    with scratch_folder("run") as scratch, _sigterm_as_sigint():
        for index in range(repeats):
            run_id, seed = f"run-{index + 1}", config.seed + index
            draft["runs"].append({"run_id": run_id, "seed": seed, "started_at": iso(time.time_ns())})
            writer.write_draft(draft)
            result_path, log_path = Path(scratch) / f"{run_id}.json", Path(scratch) / f"{run_id}.log"
            progress_path = Path(scratch) / f"{run_id}.progress"
            command = worker_command(config, topology, run_id, seed, out, result_path, replay, progress_path)
            run_began = time.monotonic()
            progress.start_run(run_id)
            process = None
            try:
                with log_path.open("w") as log:
                    process = subprocess.Popen(
                        command,
                        stderr=log,
                        stdout=log if quiet_workers else None,
                        preexec_fn=functools.partial(_die_with_parent, os.getpid()),
                    )
                    code = _follow(process, ProgressReader(progress_path), progress, on_progress)
            except KeyboardInterrupt:
                if process is not None:
                    _stop(process)
                writer.release()  # finalize takes the bundle only once no writer holds it
                report = finalize(out)
                raise TrainmarkError(
                    f"interrupted; the bundle was closed with run(s) {', '.join(report.closed_runs)} "
                    f"marked interrupted: {out} (bundle {report.bundle_id})"
                ) from None
            if code == 0 and result_path.exists():
                result = WorkerResult.from_json(result_path.read_text())
                adopt_worker_view(draft, result)
                summary = RunSummary(
                    config,
                    result,
                    flops_analytical,
                    flops_counted,
                    steps_file.format(run=run_id),
                    kernels_file.format(run=run_id),
                )
                draft["runs"][-1] = summary.run_entry()
            else:
                tail = [line for line in log_path.read_text().splitlines() if line.strip()][-3:]
                reason = f"the run's process exited with status {code}" + (f": {' | '.join(tail)}" if tail else "")
                draft["runs"][-1] = close_run_from_traces(out, draft["runs"][-1], "failed", reason[:2000])
                sys.stderr.write(log_path.read_text()[-4000:])
            outcome.statuses[run_id] = draft["runs"][-1]["status"]
            writer.write_draft(draft)
            progress.end_run()
            if on_run is not None:
                on_run(run_id, outcome.statuses[run_id], time.monotonic() - run_began)
    if record is not None:
        check_applicable(record, config, draft["system"])  # again, with the hardware the ranks reported
        draft["calibration"] = compare(record, draft["runs"])
    draft["created_at"] = iso(time.time_ns())
    writer.write_document("README.md", bundle_readme(draft))
    _, outcome.bundle_id = writer.finish(draft)
    writer.release()
    outcome.seconds = time.monotonic() - began
    return outcome


def _follow(
    process: subprocess.Popen,
    reader: ProgressReader,
    progress: JobProgress,
    on_progress: Callable[[JobProgress], None] | None,
) -> int:
    """Wait for the run's process, passing on what its progress file says as it goes."""
    while True:
        code = process.poll()
        for event in reader.new_events():
            phase = progress.phase
            progress.observe(event)
            if on_progress is not None and progress.phase != phase:  # a phase shorter than a poll is still seen
                on_progress(progress)
        if on_progress is not None:
            on_progress(progress)
        if code is not None:
            progress.enter("writing")
            return code
        time.sleep(0.25)


def calibrate(
    config: RunConfig,
    repeats: int,
    record_path: Path,
    bundle: Path,
    topology: Topology = Topology(),
    replay: Path | None = None,
    on_progress: Callable[[JobProgress], None] | None = None,
) -> dict:
    """Train the calibration configuration `repeats` times into `bundle`; write its record to `record_path`.
    `on_progress` hears where the runs stand, as in run_bundle."""
    if repeats < 3:
        raise TrainmarkError(
            "a calibration needs --repeats 3 or more: its spread is the error margin of every later comparison"
        )
    if record_path.exists():
        raise TrainmarkError(f"{record_path} exists; choose a new path for the calibration record")
    config = config.for_world(topology.world_size)  # the record names the accumulation that was trained
    outcome = run_bundle(config, repeats, bundle, topology, replay, on_progress=on_progress)
    manifest = json.loads((bundle / "manifest.json").read_text())
    record = make_record(manifest, config, outcome.bundle_id)
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def _run_follower_node(
    config: RunConfig, repeats: int, out: Path, topology: Topology, replay: Path | None
) -> RunOutcome:
    """Nodes other than node 0 start their ranks and leave the manifest to node 0.

    All nodes must see `out` (a shared file system): every rank writes its own traces there.
    """
    if not out.is_dir():
        raise TrainmarkError(
            f"{out} must exist on this node: with several nodes, --out is a shared directory that node 0 creates"
        )
    outcome = RunOutcome(out, None)
    with scratch_folder("run") as scratch:
        for index in range(repeats):
            run_id = f"run-{index + 1}"
            command = worker_command(
                config, topology, run_id, config.seed + index, out, Path(scratch) / "r.json", replay
            )
            outcome.statuses[run_id] = "completed" if subprocess.call(command) == 0 else "failed"
    return outcome
