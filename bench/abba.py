"""What the two overhead benchmarks share: the clock options for a busy machine, the ABBA order of
blocks, and the ratio of the measured to the bare step with its Student-t 95 % interval."""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
from trainmark.scorer.statistics import student_t_quantile


def add_clock_options(parser: argparse.ArgumentParser) -> None:
    """--clock and --threads, for measuring on a shared machine."""
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: time.perf_counter; cpu: the process's CPU time over all its threads (the "
        "sampler's included), which other work on a shared machine does not inflate",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (0: torch's default); with --clock cpu "
        "use 1, since idle OpenMP workers spin and their CPU time grows with the machine's load",
    )


def chosen_clock(options: argparse.Namespace) -> Callable[[], float]:
    """Applies --threads and returns the clock --clock names (seconds)."""
    if options.threads:
        torch.set_num_threads(options.threads)
    return time.perf_counter if options.clock == "wall" else time.process_time


def abba_pairs(pairs: int, bare: Callable[[], float], measured: Callable[[], float]) -> list[tuple[float, float]]:
    """(bare, measured) step times of `pairs` block pairs, alternating which runs first (ABBA)."""
    results = []
    for index in range(pairs):
        if index % 2 == 0:
            first, second = bare(), measured()
        else:
            second, first = measured(), bare()
        results.append((first, second))
    return results


def print_ratio(pairs: list[tuple[float, float]], measured_label: str, budget: float) -> float:
    """Prints both mean step times, the ratio of means against `budget` and the mean pair ratio with
    its 95 % interval; returns the bare mean step time (s)."""
    bare_mean = statistics.fmean(b for b, _ in pairs)
    measured_mean = statistics.fmean(m for _, m in pairs)
    ratios = [m / b for b, m in pairs]
    mean_ratio = statistics.fmean(ratios)
    half = student_t_quantile(0.975, len(ratios) - 1) * statistics.stdev(ratios) / math.sqrt(len(ratios))
    print(f"  bare step        {bare_mean * 1000:8.2f} ms")
    print(f"  {measured_label + ' step':<16} {measured_mean * 1000:8.2f} ms")
    print(f"  ratio of means   {measured_mean / bare_mean:8.4f}   (budget <= {budget:g})")
    print(f"  mean pair ratio  {mean_ratio:8.4f}   95 % interval {mean_ratio - half:.4f} .. {mean_ratio + half:.4f}")
    return bare_mean
