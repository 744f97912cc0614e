"""Benchmark: importing an MLPerf result with power logs of 64 nodes.

The result folder is built from the real shared set lenovo_v5.0_llama2_70b_lora (10 runs, one node
log each of about 620 readings): every run gets 64 node logs, `node_1.txt` .. `node_64.txt`, copies
of its real node log with `"metadata": ""` on every power_reading line and no host, the layout of
the real 64-node submission that made the importer write 327,036 issues. About 400,000 readings.
The import runs in a fresh process; its wall time and peak resident memory (VmHWM) are reported.
Budget (issue 15): <= 10 s and <= 300 MB.

    python bench/mlperf_import.py
    python bench/mlperf_import.py --nodes 8 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(__import__("os").environ.get("TRAINMARK_SHARED_DATA") or REPO.parent / "shared" / "data")
SOURCE = SHARED / "mlperf" / "lenovo_v5.0_llama2_70b_lora"
BUDGET_S, BUDGET_BYTES = 10.0, 300 * 10**6


def build_result(folder: Path, nodes: int) -> int:
    """A copy of the shared set with `nodes` node logs per run; returns the number of readings."""
    folder.mkdir(parents=True)
    readings = 0
    for file in SOURCE.iterdir():
        if file.is_file():
            (folder / file.name).write_bytes(file.read_bytes())
    for run in sorted((SOURCE / "power").iterdir()):
        lines = []
        for line in (run / "node_0.txt").read_text().splitlines(keepends=True):
            head, token, body = line.partition(":::MLLOG ")
            event = json.loads(body)
            if event["key"] == "power_reading":
                event["metadata"] = ""
                readings += nodes
            lines.append(head + token + json.dumps(event) + "\n")
        text = "".join(lines)
        (folder / "power" / run.name).mkdir(parents=True)
        for node in range(1, nodes + 1):
            (folder / "power" / run.name / f"node_{node}.txt").write_text(text)
    return readings


def import_once(folder: Path, out: Path) -> tuple[float, float, int, int]:
    """(wall seconds, CPU seconds, peak resident bytes, manifest bytes) of one import in a fresh process.

    The CPU time (user + system of the importing process) is what to compare on a shared machine:
    the wall time there includes waiting for a core.
    """
    code = (
        "import sys, time\nfrom pathlib import Path\nfrom trainmark.spec.importers.mlperf import import_mlperf\n"
        "started, cpu = time.perf_counter(), time.process_time()\n"
        "import_mlperf(Path(sys.argv[1]), Path(sys.argv[2]))\n"
        "print(time.perf_counter() - started, time.process_time() - cpu)\n"
        "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"
    )
    output = subprocess.run(
        [sys.executable, "-c", code, str(folder), str(out)], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return float(output[0]), float(output[1]), int(output[2]) * 1024, (out / "manifest.json").stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    from trainmark.spec.validate import validate_bundle

    with tempfile.TemporaryDirectory(prefix="trainmark-bench-") as scratch:
        folder = Path(scratch) / "result"
        readings = build_result(folder, options.nodes)
        results = [import_once(folder, Path(scratch) / f"out{index}") for index in range(options.repeats)]
        report = validate_bundle(Path(scratch) / "out0")
        if not report.valid:
            raise SystemExit(f"the imported bundle is invalid: {report.findings[:3]}")
        seconds = statistics.median(r[0] for r in results)
        cpu = statistics.median(r[1] for r in results)
        peak = max(r[2] for r in results)
        print(f"{options.nodes} nodes x 10 runs, {readings} power readings")
        print(
            f"import: median wall {seconds:.2f} s, CPU {cpu:.2f} s over {options.repeats} (budget {BUDGET_S:g} s), "
            f"peak RSS {peak / 1e6:.0f} MB (budget {BUDGET_BYTES / 1e6:.0f} MB), "
            f"manifest {results[0][3] / 1e3:.0f} kB"
        )
        if seconds > BUDGET_S or peak > BUDGET_BYTES:
            raise SystemExit("over budget")


if __name__ == "__main__":
    main()
