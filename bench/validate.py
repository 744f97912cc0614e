"""Benchmark: validating a bundle with 1,000,000 step records.

Measures in one run, on the same synthetic bundle:
  - trainmark's validation (`validate_bundle`: manifest, sha256 of every file, every record
    through the pydantic models and the reference checks),
  - bare `json.loads` over the same lines (the floor: parsing alone, nothing checked),
  - `jsonschema` (Draft 2020-12, the published step-record schema) over a subset of the same
    records, as a per-record rate,
and the peak resident memory of validation at two trace sizes, each in a fresh process.

Budgets (DESIGN section 6): validation <= 1.5 x bare parsing; >= 15 x faster than jsonschema;
peak memory flat in the trace size.

    python bench/validate.py                # 1,000,000 and 100,000 steps
    python bench/validate.py --steps 200000 --small-steps 20000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trainmark.spec.bundle import BundleWriter  # noqa: E402
from trainmark.spec.layout import trace_path  # noqa: E402

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _manifest_blocks() -> dict:
    """The CPU example's blocks, without its `synthetic` marker (a synthetic bundle is never ranked,
    and scoring is measured on a bundle that passes every gate)."""
    manifest = json.loads((REPO / "spec/examples/valid/cpu-tiny/manifest.json").read_text())
    return {key: value for key, value in manifest.items() if key not in ("runs", "files", "provenance")}


def build_bundle(root: Path, steps: int) -> Path:
    """A valid one-run bundle whose steps.jsonl has `steps` records like the runner's."""
    rng = random.Random(steps)
    writer = BundleWriter.create(root)
    path = root / trace_path("run-1", "step")
    path.parent.mkdir(parents=True)
    start_ns = int(T0.timestamp() * 1e9)
    with path.open("w") as handle:
        for step in range(steps):
            duration = round(0.09 + rng.random() * 0.01, 6)
            record = {
                "step": step,
                "rank": 0,
                "epoch": step // 1000,
                "start_unix_ns": start_ns,
                "duration_s": duration,
                "data_loading_s": 0.001,
                "forward_s": round(duration * 0.3, 6),
                "backward_s": round(duration * 0.6, 6),
                "optimizer_s": round(duration * 0.09, 6),
                "samples": 16,
                "tokens": 2048,
                "loss": round(5 - step * 1e-6, 6),
                "learning_rate": 0.003,
                "updated": True,
            }
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")
            start_ns += int(duration * 1e9) + 200_000
    ended = T0 + timedelta(seconds=(start_ns - int(T0.timestamp() * 1e9)) / 1e9)
    run = {
        "run_id": "run-1",
        "seed": 1,
        "started_at": T0.isoformat().replace("+00:00", "Z"),
        "ended_at": ended.isoformat().replace("+00:00", "Z"),
        "status": "completed",
        "metrics": [
            {
                "name": "steps_completed",
                "scope": "global",
                "value": float(steps),
                "unit": "{step}",
                "method": "derived",
                "source": "count of step records",
                "tool": "bench/validate.py",
            }
        ],
    }
    created = (ended + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")  # written after the run ended
    writer.finish({**_manifest_blocks(), "created_at": created, "runs": [run]})
    return root


def time_bare_parse(path: Path) -> float:
    started = time.perf_counter()
    with path.open("rb") as handle:
        for line in handle:
            json.loads(line)
    return time.perf_counter() - started


def time_trainmark(root: Path) -> float:
    from trainmark.spec.validate import validate_bundle

    started = time.perf_counter()
    report = validate_bundle(root)
    elapsed = time.perf_counter() - started
    if not report.valid:
        raise SystemExit(f"benchmark bundle is invalid: {report.findings[:3]}")
    return elapsed


def jsonschema_seconds_per_record(path: Path, subset: int) -> float:
    from trainmark.spec.conformance import validator_for

    validator = validator_for("StepRecord")
    with path.open("rb") as handle:
        records = [json.loads(next(handle)) for _ in range(subset)]
    started = time.perf_counter()
    for record in records:
        for _ in validator.iter_errors(record):
            raise SystemExit("benchmark record rejected by jsonschema")
    return (time.perf_counter() - started) / subset


def compiled_seconds_per_record(path: Path, subset: int) -> float:
    """The compiled JSON Schema path `validate --jsonschema` takes first: every line parsed on its
    own (orjson), then the batch checked in one jsonschema-rs call."""
    from trainmark.spec.conformance import all_conform

    with path.open("rb") as handle:
        lines = [next(handle) for _ in range(subset)]
    started = time.perf_counter()
    if not all_conform(lines, "StepRecord"):
        raise SystemExit("benchmark records rejected by the compiled schema")
    return (time.perf_counter() - started) / subset


def peak_rss_of_validation(root: Path) -> int:
    """Peak resident set (bytes) of a fresh process that validates `root`."""
    code = (
        "import sys\nfrom pathlib import Path\nfrom trainmark.spec.validate import validate_bundle\n"
        "assert validate_bundle(Path(sys.argv[1])).valid\n"
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
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions of parse and validate")
    parser.add_argument("--jsonschema-subset", type=int, default=20_000)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="trainmark-bench-") as scratch:
        big = build_bundle(Path(scratch) / "big", options.steps)
        small = build_bundle(Path(scratch) / "small", options.small_steps)
        steps_file = big / trace_path("run-1", "step")
        size_mb = steps_file.stat().st_size / 1e6

        parse_times, validate_times = [], []
        for _ in range(options.repeats):  # interleaved, so drift hits both alike
            parse_times.append(time_bare_parse(steps_file))
            validate_times.append(time_trainmark(big))
        parse_s, validate_s = statistics.median(parse_times), statistics.median(validate_times)
        per_record_jsonschema = jsonschema_seconds_per_record(steps_file, options.jsonschema_subset)
        compiled_seconds_per_record(steps_file, 100)  # compile the validator before timing
        per_record_compiled = compiled_seconds_per_record(steps_file, options.jsonschema_subset)
        per_record_trainmark = validate_s / options.steps
        rss_small, rss_big = peak_rss_of_validation(small), peak_rss_of_validation(big)

    ratio_parse = validate_s / parse_s
    ratio_jsonschema = per_record_jsonschema / per_record_trainmark
    print(
        f"machine: {platform.processor() or platform.machine()}, {resource.getpagesize()}-byte pages, "
        f"Python {platform.python_version()}"
    )
    print(f"bundle: {options.steps:,} step records, steps.jsonl {size_mb:.0f} MB; median of {options.repeats}")
    print(f"  bare json.loads over the lines   {parse_s:8.2f} s")
    print(
        f"  trainmark validate               {validate_s:8.2f} s   = {ratio_parse:.2f} x bare parsing (budget <= 1.5)"
    )
    print(
        f"  jsonschema, {options.jsonschema_subset:,}-record subset    {per_record_jsonschema * 1e6:8.1f} us/record; "
        f"trainmark {per_record_trainmark * 1e6:.1f} us/record = {ratio_jsonschema:.1f} x faster (budget >= 15)"
    )
    print(
        f"  compiled JSON Schema (--jsonschema), same subset  {per_record_compiled * 1e6:8.1f} us/record = "
        f"{per_record_jsonschema / per_record_compiled:.1f} x faster than jsonschema"
    )
    print(f"  peak RSS validating {options.small_steps:,} steps  {rss_small / 2**20:8.1f} MiB")
    print(
        f"  peak RSS validating {options.steps:,} steps  {rss_big / 2**20:8.1f} MiB   "
        f"(ratio {rss_big / rss_small:.2f} for {options.steps / options.small_steps:.0f} x the records)"
    )


if __name__ == "__main__":
    main()
