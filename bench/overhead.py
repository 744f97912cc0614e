"""Benchmark: what the runner's instrumentation costs per training step.

One process, one model, one optimizer: blocks of steps alternate between the bare step
(forward, backward, optimizer; nothing measured) and the runner's measured step with
everything a run has on: the sampler thread at --rate-hz reading the memory probe and any
power meter and writing their traces, per-stage timing, peak-memory resets and reads, and one
flushed step record per step: reference_runner/instruments.py and stepping.py, the one
measurement path of the reference loop and of trainmark.track. The order alternates ABBA so
that drift hits both alike. Printed:
the ratio of mean step times (budget <= 1.03 at 10 Hz), a Student-t 95 % interval over the block
pairs, and the wall time of a whole `trainmark run --preset tiny --repeats 3`.

    python bench/overhead.py
    python bench/overhead.py --pairs 6 --block-steps 5 --skip-end-to-end
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from abba import abba_pairs, add_clock_options, chosen_clock, print_ratio  # noqa: E402
from trainmark.reference_runner.config import build_config  # noqa: E402
from trainmark.reference_runner.data import FeedingOrder, load_dataset  # noqa: E402
from trainmark.reference_runner.devices import backend_for  # noqa: E402
from trainmark.reference_runner.instruments import RankInstruments, RankPlace  # noqa: E402
from trainmark.reference_runner.loop import Trainer  # noqa: E402
from trainmark.spec.bundle import BundleWriter  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--pairs", type=int, default=16, help="ABBA block pairs")
    parser.add_argument("--block-steps", type=int, default=10)
    parser.add_argument("--rate-hz", type=float, default=10.0)
    parser.add_argument("--skip-end-to-end", action="store_true")
    add_clock_options(parser)
    options = parser.parse_args()
    clock = chosen_clock(options)

    # the windows off: their steps are flagged and left out of a run's throughput anyway
    config = build_config(
        options.preset,
        overrides={
            "max_steps": 10**6,
            "sample_rate_hz": options.rate_hz,
            "warmup_steps": 0,
            "profile_steps": 0,
            "allocation_steps": 0,
        },
    )
    backend = backend_for(config.device, 0, 0.0)
    torch.manual_seed(config.seed)
    dataset = load_dataset(None, config.sequence_length, config.eval_fraction)
    order = FeedingOrder(dataset, config.global_batch_size, config.data_seed)
    trainer = Trainer(config, backend, order, rank=0, world_size=1)
    step = 0
    for _ in range(5):  # warm-up, not timed
        trainer.bare_step(step)
        step += 1

    def bare_block() -> float:
        nonlocal step
        began = clock()
        for _ in range(options.block_steps):
            trainer.bare_step(step)
            step += 1
        return (clock() - began) / options.block_steps

    with tempfile.TemporaryDirectory() as scratch:
        blocks: list[int] = []

        def measured_block() -> float:
            nonlocal step
            blocks.append(len(blocks))
            # the runner's own measurement path (reference_runner/instruments.py), as loop.py drives it
            instruments = RankInstruments(backend, RankPlace(), config)
            meter = instruments.open(BundleWriter.create(Path(scratch) / f"block-{len(blocks)}"), "run-1")
            samples = config.micro_batch_size * config.gradient_accumulation_steps
            instruments.start()
            began = clock()
            for _ in range(options.block_steps):
                with meter.step(samples, samples * config.sequence_length) as measured:
                    trainer.step(step, measured)
                step += 1
            elapsed = (clock() - began) / options.block_steps
            instruments.stop()
            return elapsed

        pairs = abba_pairs(options.pairs, bare_block, measured_block)

    print(
        f"preset {config.name}: {options.pairs} ABBA pairs of {options.block_steps}-step blocks, "
        f"sampler at {options.rate_hz:g} Hz, {torch.get_num_threads()} torch threads, {options.clock} clock"
    )
    print_ratio(pairs, "measured", 1.03)

    if not options.skip_end_to_end:
        with tempfile.TemporaryDirectory() as scratch:
            began = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "from trainmark.cli import main; main()",
                    "run",
                    "--preset",
                    "tiny",
                    "--repeats",
                    "3",
                    "--out",
                    str(Path(scratch) / "tiny"),
                ],
                check=True,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
            )
            print(f"  trainmark run --preset tiny --repeats 3: {time.perf_counter() - began:.1f} s end to end")


if __name__ == "__main__":
    main()
