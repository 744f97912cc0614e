"""How long each line of the README's tour takes, run exactly as written (full length, not the
test's shortened training), one after the other, in a scratch folder laid out like the repository.

The README's comments ("# about 1 min") come from this script's output. `serve` is started, asked
for its board, and stopped: its figure is the time to the first answer.

    python bench/tour.py
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.test_readme_tour import tour_lines  # noqa: E402 - the one parser of the README's tour

SHARED = Path(os.environ.get("TRAINMARK_SHARED_DATA") or REPO.parent / "shared" / "data")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(arguments: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Seconds from starting `trainmark serve` to its board's first answer."""
    port = _free_port()
    start = time.monotonic()
    server = subprocess.Popen(
        [*arguments, "--port", str(port)], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        while time.monotonic() - start < 120:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                    return time.monotonic() - start
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit("trainmark serve did not answer within 120 s")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "repository"
        root.mkdir()
        for part in ("spec", "examples", "tests", ".venv"):
            (root / part).symlink_to(REPO / part)
        (Path(scratch) / "shared").mkdir()
        (Path(scratch) / "shared" / "data").symlink_to(SHARED)
        lines = tour_lines()
        env = {**os.environ, "COLUMNS": "80"}
        env.update(dict(item.split("=", 1) for item in shlex.split(lines[0].removeprefix("export "))))
        print(f"{'seconds':>8}  line")
        for line in lines[1:]:
            arguments = shlex.split(line)
            arguments[0] = str(REPO / arguments[0])
            if arguments[1] == "serve":
                seconds = _serve(arguments, root, env)
            else:
                start = time.monotonic()
                result = subprocess.run(arguments, cwd=root, env=env, capture_output=True, text=True)
                seconds = time.monotonic() - start
                if result.returncode != 0:
                    raise SystemExit(f"{line}\nfailed:\n{result.stdout}\n{result.stderr}")
            print(f"{seconds:8.1f}  {line}", flush=True)
        print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
