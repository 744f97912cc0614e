"""Benchmark: what `trainmark.track` costs per step of a plain training loop.

One process, one model, one optimizer, one plain loop (forward, backward, optimizer step, loss
read). Blocks of steps alternate in ABBA order between the bare loop and the same loop inside
`trainmark.track` with every step in `run.step()` and its three phases in `step.phase()`
(device synchronization, peak-memory reset and reads at each boundary, one flushed step record
per step, the sampler thread at --rate-hz). Each measured block is its own tracked run; only its
steps are timed (setting up the run and writing its bundle are outside the clock, as the idle
baseline, warm-up, profiler and FLOP-counting steps are, which a run excludes from its
throughput anyway). Printed: the ratio of mean step times (budget <= 1.02 at 10 Hz) and a
Student-t 95 % interval over the block pairs; then what the instrumentation costs on its own:
the same tracked steps with nothing inside their phases (the fastest of --pairs blocks, so that
other work on a shared machine inflates it least), as microseconds and as a share of the bare step.

    python bench/track_overhead.py                     # the runner's tiny transformer (about 140 ms a step here)
    python bench/track_overhead.py --model mlp         # a small MLP (milliseconds a step): the worst case
    python bench/track_overhead.py --clock cpu         # CPU time instead of wall time (a busy shared machine)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from abba import abba_pairs, add_clock_options, chosen_clock, print_ratio  # noqa: E402
from trainmark.reference_runner.config import build_config  # noqa: E402
from trainmark.reference_runner.model import TinyGPT  # noqa: E402

import trainmark  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("tiny", "mlp"), default="tiny")
    parser.add_argument("--pairs", type=int, default=16, help="ABBA block pairs")
    parser.add_argument("--block-steps", type=int, default=10)
    parser.add_argument("--rate-hz", type=float, default=10.0)
    add_clock_options(parser)
    options = parser.parse_args()
    clock = chosen_clock(options)
    for name in ("TRAINMARK_BUNDLE", "TRAINMARK_RUN_ID", "TRAINMARK_SEED"):
        os.environ.pop(name, None)

    torch.manual_seed(0)
    if options.model == "tiny":
        config = build_config("tiny")
        model = TinyGPT(config)
        batch, sequence = config.micro_batch_size, config.sequence_length

        def make_batch():
            tokens = torch.randint(0, config.vocab_size, (batch, sequence + 1))
            return tokens[:, :-1], tokens[:, 1:]

        def loss_of(inputs, targets):
            return model(inputs, targets)[1]
    else:
        model = torch.nn.Sequential(torch.nn.Linear(256, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10))
        batch, sequence = 256, None

        def make_batch():
            return torch.randn(batch, 256), torch.randint(0, 10, (batch,))

        def loss_of(inputs, targets):
            return torch.nn.functional.cross_entropy(model(inputs), targets)

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = [make_batch() for _ in range(8)]

    def bare_step(index: int) -> None:
        inputs, targets = batches[index % len(batches)]
        loss = loss_of(inputs, targets)
        loss.backward()
        opt.step()
        opt.zero_grad()
        loss.item()

    def empty_step(run, index: int) -> None:
        with run.step(samples=batch) as step:
            with step.phase("forward"):
                pass
            with step.phase("backward"):
                pass
            with step.phase("optimizer"):
                pass
            step.loss = 0.0

    def tracked_step(run, index: int) -> None:
        inputs, targets = batches[index % len(batches)]
        with run.step(samples=batch) as step:
            with step.phase("forward"):
                loss = loss_of(inputs, targets)
            with step.phase("backward"):
                loss.backward()
            with step.phase("optimizer"):
                opt.step()
                opt.zero_grad()
            step.loss = loss.item()

    for index in range(5):  # warm-up, not timed
        bare_step(index)

    def bare_block() -> float:
        began = clock()
        for index in range(options.block_steps):
            bare_step(index)
        return (clock() - began) / options.block_steps

    with tempfile.TemporaryDirectory() as scratch:
        blocks = 0

        def tracked_block(step=tracked_step, steps=options.block_steps) -> float:
            nonlocal blocks
            blocks += 1
            with trainmark.track(
                model=model,
                batch_size=batch,
                sequence_length=sequence,
                optimizer=opt,
                out=Path(scratch) / f"block-{blocks}",
                idle_seconds=0,
                warmup_steps=0,
                profile_steps=0,
                allocation_steps=0,
                count_flops=False,
                sample_rate_hz=options.rate_hz,
                precision="fp32",
            ) as run:
                began = clock()
                for index in range(steps):
                    step(run, index)
                elapsed = (clock() - began) / steps
            return elapsed

        pairs = abba_pairs(options.pairs, bare_block, tracked_block)
        empty = min(tracked_block(empty_step, 100) for _ in range(options.pairs))

    print(
        f"model {options.model}: {options.pairs} ABBA pairs of {options.block_steps}-step blocks, sampler at "
        f"{options.rate_hz:g} Hz, {torch.get_num_threads()} torch threads, {options.clock} clock"
    )
    bare_mean = print_ratio(pairs, "tracked", 1.02)
    print(
        f"  instrumentation alone {empty * 1e6:6.1f} us a step (empty tracked steps, fastest of {options.pairs} "
        f"blocks of 100) = {100 * empty / bare_mean:.2f} % of the bare step"
    )


if __name__ == "__main__":
    main()
