"""The registry commands as a user runs them: init, keys create, serve (a real process), submit over
HTTP and into a database, leaderboard; and the refusal of a database that is not initialized."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.registry_bundles import CPU, GPU, variant

pytestmark = pytest.mark.slow  # a trainmark process per command, as a user runs them: left out of make test-fast


def trainmark(*arguments: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "trainmark", *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"trainmark {' '.join(arguments)} exited {result.returncode}:\n{result.stderr}")
    return result


@pytest.fixture
def registry(tmp_path) -> dict:
    """TRAINMARK_DB / TRAINMARK_BLOBS of an initialized SQLite registry."""
    env = {"TRAINMARK_DB": f"sqlite:///{tmp_path / 'reg' / 'registry.db'}", "TRAINMARK_BLOBS": str(tmp_path / "blobs")}
    out = trainmark("registry", "init", env=env)
    assert "at schema revision 0004" in out.stdout
    assert trainmark("registry", "upgrade", env=env).returncode == 0  # safe to run again
    return env


def test_submit_into_a_database_and_print_the_board(registry, tmp_path):
    cpu, gpu = variant(CPU, tmp_path / "cpu"), variant(GPU, tmp_path / "gpu")  # without the synthetic marker
    first = json.loads(trainmark("submit", str(cpu), "--json", env=registry).stdout)
    assert set(first) == {"id", "score", "ranked", "findings"}
    again = trainmark("submit", str(cpu), env=registry).stdout
    assert "already in the registry" in again and first["id"] in again
    trainmark("submit", str(gpu), env=registry)
    synthetic = json.loads(trainmark("submit", str(GPU), "--json", env=registry).stdout)
    assert synthetic["ranked"] is False  # the example as it is says synthetic
    board = json.loads(trainmark("leaderboard", "--json", env=registry).stdout)
    assert [row["device_model"] for row in board] == ["NVIDIA H100 80GB HBM3", "AMD EPYC 7B13"]
    assert [row["workload"] for row in board] == [
        "gpt2-124m / openwebtext-10k / bf16_autocast",
        "tiny / trainmark-sample-text / fp32",
    ]
    tiny = json.loads(
        trainmark("leaderboard", "--json", "--workload", "tiny / trainmark-sample-text / fp32", env=registry).stdout
    )
    assert [row["device_model"] for row in tiny] == ["AMD EPYC 7B13"]
    everything = trainmark("leaderboard", "--all", env={**registry, "COLUMNS": "250"}).stdout
    assert "not ranked: provenance" in everything  # the synthetic example, and why
    narrow = trainmark("leaderboard", "--all", env={**registry, "COLUMNS": "80"}).stdout
    assert "not ranked because" in narrow and "synthetic" in narrow
    printed = trainmark("leaderboard", env={**registry, "COLUMNS": "200"}).stdout
    assert "trainmark leaderboard" in printed and "NVIDIA H100" in printed
    assert "workload: gpt2-124m / openwebtext-10k / bf16_autocast" in printed and "declared" in printed
    assert "hardware" in printed and "steps/s (95 % low)" in printed  # a table: every cell fits whole
    for width in (100, 80):  # a terminal's usual width: one block per entry, nothing cut off or past the edge
        narrow = trainmark("leaderboard", env={**registry, "COLUMNS": str(width)}).stdout
        assert "hardware" not in narrow and "steps/s" in narrow
        assert all(len(line) <= width for line in narrow.splitlines()) and "…" not in narrow
        assert "gpt2-124m, bf16_autocast, on 2 x NVIDIA H100 80GB HBM3" in narrow and "Reproduced" in narrow
        assert "13.9 steps/s (95 % low" in narrow


def test_a_refused_bundle_prints_why(registry, tmp_path):
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b" + b"not really gzip")
    result = trainmark("submit", str(broken), "--json", env=registry, check=False)
    assert result.returncode == 1
    assert "gzip" in json.loads(result.stdout)["error"]
    plain = trainmark("submit", str(broken), env=registry, check=False)
    assert plain.returncode == 1 and plain.stderr.startswith("error:")


def test_an_uninitialized_database_is_refused_with_the_fix(tmp_path):
    env = {"TRAINMARK_DB": f"sqlite:///{tmp_path / 'empty.db'}", "TRAINMARK_BLOBS": str(tmp_path / "blobs")}
    for command in (["serve", "--port", "1"], ["leaderboard"], ["keys", "create", "--name", "x"]):
        result = trainmark(*command, env=env, check=False)
        assert result.returncode == 1
        assert "has no registry schema" in result.stderr and "trainmark registry init --db" in result.stderr


def test_serve_and_submit_over_http(registry):
    key = trainmark("keys", "create", "--name", "CLI Lab", env=registry).stdout.strip()
    assert key.startswith("tmk_")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "trainmark", "serve", "--port", str(port)],
        env={**os.environ, **registry},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/api/v1/leaderboard", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        answer = json.loads(trainmark("submit", str(CPU), "--to", url, "--json", env={"TRAINMARK_KEY": key}).stdout)
        assert httpx.get(f"{url}/api/v1/submissions/{answer['id']}").json()["submission"]["score"] == answer["score"]
        wrong = trainmark("submit", str(CPU), "--to", url, "--key", "tmk_wrong", check=False)
        assert wrong.returncode == 1 and "401" in wrong.stderr and "API key" in wrong.stderr
        missing_key = trainmark("submit", str(CPU), "--to", url, check=False, env={"TRAINMARK_KEY": ""})
        assert missing_key.returncode == 2 and "--key" in missing_key.stderr
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    unreachable = trainmark("submit", str(CPU), "--to", url, "--key", key, check=False)
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
