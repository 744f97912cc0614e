"""Benchmark: scoring the 1,000,000-step bundle of bench/validate.py, against validating it.

Measures in one run, interleaved (median of --repeats): `validate_bundle` and `score_bundle` on
the same bundle, and the peak resident memory of scoring at two trace sizes, each in a fresh
process. Budget (DESIGN section 6): scoring <= 2 x validation time; memory flat in trace size.

    python bench/score.py
    python bench/score.py --steps 200000 --small-steps 20000 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from validate import build_bundle  # noqa: E402  (bench/validate.py)


def timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def peak_rss_of_scoring(root: Path) -> int:
    code = (
        "import sys\nfrom pathlib import Path\nfrom trainmark.scorer.score import score_bundle\n"
        "assert score_bundle(Path(sys.argv[1])).ranked\n"
        "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"
    )
    output = subprocess.run(
        [sys.executable, "-c", code, str(root)], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    # VmHWM (kB), not ru_maxrss: ru_maxrss survives fork and exec, so a child reports at least the
    # parent's resident set at the fork; VmHWM belongs to the child's own address space.
    return int(output.strip()) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--small-steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()

    from trainmark.scorer.score import score_bundle
    from trainmark.spec.validate import validate_bundle

    with tempfile.TemporaryDirectory(prefix="trainmark-bench-") as scratch:
        big = build_bundle(Path(scratch) / "big", options.steps)
        small = build_bundle(Path(scratch) / "small", options.small_steps)
        report = score_bundle(big)
        if not report.ranked:
            raise SystemExit(f"benchmark bundle does not pass the gates: {report.gates}")
        validate_times, score_times = [], []
        for _ in range(options.repeats):
            validate_times.append(timed(validate_bundle, big))
            score_times.append(timed(score_bundle, big))
        validate_s, score_s = statistics.median(validate_times), statistics.median(score_times)
        rss_small, rss_big = peak_rss_of_scoring(small), peak_rss_of_scoring(big)

    print(f"bundle: {options.steps:,} step records; median of {options.repeats}, interleaved")
    print(f"  trainmark validate   {validate_s:8.2f} s")
    print(f"  trainmark score      {score_s:8.2f} s   = {score_s / validate_s:.2f} x validation (budget <= 2)")
    print(f"  peak RSS scoring {options.small_steps:,} steps  {rss_small / 2**20:8.1f} MiB")
    print(
        f"  peak RSS scoring {options.steps:,} steps  {rss_big / 2**20:8.1f} MiB   "
        f"(ratio {rss_big / rss_small:.2f} for {options.steps / options.small_steps:.0f} x the records)"
    )


if __name__ == "__main__":
    main()
