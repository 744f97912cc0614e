"""The registry under hostile queries and faults: nothing gets a 500, a refusal leaves the store
as it was and is audited, a killed server's leftovers are swept, downloads are built once."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select
from trainmark.registry.api import create_app
from trainmark.registry.api_shared import status_of
from trainmark.registry.database import upgrade
from trainmark.registry.intake import submit_archive
from trainmark.registry.store import RegistryLimits, Store, SubmissionRejected
from trainmark.registry.tables import AuditEvent
from trainmark.spec.archive import pack

from tests.bundles import copy_bundle, edit_manifest
from tests.live_server import LiveServer, served_registry
from tests.registry_bundles import CPU, archive, variant

REPO = Path(__file__).resolve().parents[2]
LIMITS = RegistryLimits(max_upload_bytes=8 * 1024 * 1024, max_unpacked_bytes=64 * 1024 * 1024, max_members=500)


@pytest.fixture
def service(registry_at_head, tmp_path):
    """(base URL, store, an API key) of a registry served over HTTP."""
    with served_registry(registry_at_head, tmp_path / "blobs", LIMITS) as served:
        yield served


@pytest.fixture(scope="module")
def board(module_registry_at_head, tmp_path_factory, archives):
    """One served registry holding the CPU archive, shared by the tests that only read its board."""
    with served_registry(module_registry_at_head, tmp_path_factory.mktemp("blobs"), LIMITS) as served:
        url, _, key = served
        assert post(url, key, archives["cpu"].read_bytes()).status_code == 201
        yield served


def post(url: str, key: str, body: bytes) -> httpx.Response:
    return httpx.post(
        url + "/api/v1/submissions", content=body, headers={"Authorization": f"Bearer {key}"}, timeout=120
    )


def stored_files(store: Store) -> dict[str, int]:
    """Every file under the blob folder, with its size (what a refusal must leave unchanged)."""
    return {
        str(path.relative_to(store.blobs.root)): path.stat().st_size
        for path in store.blobs.root.rglob("*")
        if path.is_file()
    }


def audit(store: Store, action: str) -> list[AuditEvent]:
    with Session(store.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def cursor(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


HOSTILE_BOARD_QUERIES = [
    {"device_count": "9" * 26},
    {"cursor": cursor(["tiny / trainmark-sample-text / fp32", 10**400, 1.0, "a"])},  # the rank sort's four keys
    {"sort": "created_at", "cursor": cursor(["2026-13-45T99:00:00+00:00", "a" * 64])},
    {"sort": "created_at", "cursor": cursor(["2026-01-01T00:00:00", "a" * 64])},
    {"sort": "created_at", "cursor": cursor([0.8341, "a" * 64])},
    {"sort": "submitter", "cursor": cursor([5, "a" * 64])},
    {"cursor": base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).decode()},
    {"cursor": base64.urlsafe_b64encode(b"[" * 300 + b"]" * 300).decode()},
    {"devices": "8"},
    {"metric": "steps_per_second", "sort_by": "score"},
]


@pytest.mark.parametrize(
    "params",
    HOSTILE_BOARD_QUERIES,
    ids=[
        "huge-device-count",
        "cursor-int-beyond-float",
        "cursor-invalid-timestamp",
        "cursor-naive-timestamp",
        "cursor-of-another-sort",
        "cursor-number-for-text",
        "cursor-3000-deep",
        "cursor-300-deep",
        "unknown-parameter",
        "unknown-beside-known",
    ],
)
def test_hostile_board_queries_get_400_not_500(board, params):
    url, _, _ = board
    api = httpx.get(f"{url}/api/v1/leaderboard", params=params)
    assert api.status_code == 400, api.text
    assert "error" in api.json()
    page = httpx.get(f"{url}/", params=params)
    assert page.status_code == 400, page.text[:300]
    assert "<html" in page.text


def test_a_cursor_with_a_huge_integer_is_read_as_a_position(service, archives):
    url, store, key = service
    assert post(url, key, archives["cpu"].read_bytes()).status_code == 201
    workload = httpx.get(f"{url}/api/v1/leaderboard").json()["rows"][0]["workload"]
    # the rank sort's keys: workload, the metric's bound, score, id; the bound is the huge integer
    above_all = httpx.get(f"{url}/api/v1/leaderboard", params={"cursor": cursor([workload, 10**30, 1.0, "a" * 64])})
    assert above_all.status_code == 200 and len(above_all.json()["rows"]) == 1  # once a 500 (SQL overflow)
    below_all = httpx.get(f"{url}/api/v1/leaderboard", params={"cursor": cursor([workload, -(10**30), 1.0, "a" * 64])})
    assert below_all.status_code == 200 and below_all.json()["rows"] == []


def test_text_postgresql_cannot_store_is_refused_on_both_databases(store, tmp_path):
    bundle = variant(CPU, tmp_path / "nul", submitter="LAB")
    path = bundle / "manifest.json"
    path.write_text(path.read_text().replace('"LAB"', '"Lab\\u0000 One"'))
    before = stored_files(store)
    with pytest.raises(SubmissionRejected) as refused:
        submit_archive(store, archive(bundle, tmp_path / "nul.tar.gz"))
    assert status_of(refused.value) == 422 and refused.value.code == "text-invalid"
    assert [finding.pointer for finding in refused.value.findings] == ["/submitter/name"]
    assert stored_files(store) == before
    assert store.counts()["submission"] == 0
    [event] = audit(store, "refused")
    assert event.detail.startswith("text-invalid: ")


def test_a_refusal_after_validation_leaves_no_blob_and_is_audited(store, tmp_path):
    bundle = variant(CPU, tmp_path / "orphan", supersedes="f" * 64)
    (bundle / "README.md").write_bytes(b"a README of 20 MB\n" * (20 * 1024 * 1024 // 18))
    reseal_with_readme(bundle)
    before = stored_files(store)
    with pytest.raises(SubmissionRejected) as refused:
        submit_archive(store, archive(bundle, tmp_path / "orphan.tar.gz"))
    assert status_of(refused.value) == 409 and refused.value.code == "supersedes-unknown"
    assert stored_files(store) == before  # no blob of the README, no archive
    assert not list(store.blobs.scratch.iterdir())
    [event] = audit(store, "refused")
    assert event.detail.startswith("supersedes-unknown: ")


def test_an_invalid_bundle_is_refused_with_its_own_code_and_no_server_path(store, tmp_path):
    bundle = copy_bundle(CPU, tmp_path / "broken")
    (bundle / "runs/run-1/steps.jsonl").write_text("{}\n")
    with pytest.raises(SubmissionRejected) as refused:
        submit_archive(store, archive(bundle, tmp_path / "broken.tar.gz"))
    assert status_of(refused.value) == 422
    assert refused.value.code == refused.value.findings[0].code != "submission-refused"
    text = str(refused.value) + json.dumps([finding.as_dict() for finding in refused.value.findings])
    assert str(tmp_path) not in text and str(store.blobs.root) not in text and "/tmp" not in text
    assert audit(store, "refused")[0].detail.startswith(f"{refused.value.code}: ")


def reseal_with_readme(bundle: Path) -> None:
    from trainmark.spec.bundle import describe_file

    def add(manifest: dict) -> None:
        manifest["files"] = [entry for entry in manifest["files"] if entry["path"] != "README.md"]
        manifest["files"].append(describe_file(bundle, "README.md"))

    edit_manifest(bundle, add)


def test_racing_duplicates_are_each_audited(store, archives):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: submit_archive(store, archives["cpu"]), range(8)))
    assert sum(outcome.created for outcome in outcomes) == 1
    assert len(audit(store, "submitted")) == 1 and len(audit(store, "resubmitted")) == 7


KILLED_WRITER = """
import sys
from pathlib import Path
from trainmark.registry.intake import submit_archive
from trainmark.registry.store import Store
submit_archive(Store(sys.argv[1], Path(sys.argv[2])), Path(sys.argv[3]))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(db: str, blobs: Path, *, user_without_override: bool = False) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    command = [sys.executable, "-m", "trainmark", "serve", "--port", str(port), "--db", db, "--blobs", str(blobs)]
    if user_without_override:
        command = drop_file_override(command)
    server = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/favicon.ico", timeout=1).status_code == 204:
                return server, url
        except httpx.TransportError:
            if server.poll() is not None:
                raise AssertionError(f"trainmark serve ended: {server.stdout.read()}") from None
            time.sleep(0.2)
    server.kill()
    raise AssertionError("trainmark serve did not start")


def _stop(server: subprocess.Popen) -> str:
    server.send_signal(signal.SIGINT)
    try:
        output, _ = server.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        output, _ = server.communicate()
    return output


def _incoming_past(blobs: Path, size: int) -> bool:
    """Whether a blob being written (.incoming-*) has passed `size` bytes."""
    for path in (blobs / "sha256").glob("*/.incoming-*"):
        try:
            if path.stat().st_size > size:
                return True
        except FileNotFoundError:  # renamed into place meanwhile
            pass
    return False


@pytest.mark.slow  # packs and stores a 300 MB blob, then runs serve and check as processes
def test_a_writer_killed_mid_blob_leaves_nothing_after_serve_starts_and_check_runs(tmp_path):
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(db)
    blobs = tmp_path / "blobs"
    bundle = copy_bundle(CPU, tmp_path / "big")
    (bundle / "README.md").write_bytes(b"0123456789abcdef" * (300 * 1024 * 1024 // 16))  # 300 MB, squeezes well
    reseal_with_readme(bundle)
    upload = archive(bundle, tmp_path / "big.tar.gz")
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, db, str(blobs), str(upload)], cwd=REPO)
    deadline = time.monotonic() + 120
    # killed while it writes the 300 MB blob: a small blob's .incoming file may be renamed into
    # place between this loop seeing it and the kill, leaving nothing half-written to find
    while time.monotonic() < deadline and not _incoming_past(blobs, 1024 * 1024):
        assert writer.poll() is None, "the writer ended before it was killed"
        time.sleep(0.005)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    left = [path.name for path in (blobs / "sha256").glob("*/.incoming-*")]
    assert left and list((blobs / "scratch").iterdir())  # what the kill left, for real

    server, url = _serve(db, blobs)
    try:
        assert not list((blobs / "sha256").glob("*/.incoming-*"))
        assert not list((blobs / "scratch").iterdir())
    finally:
        output = _stop(server)
    assert "removed what an earlier server left" in output
    done = subprocess.run(
        [sys.executable, "-m", "trainmark", "registry", "check", "--grace", "0", "--db", db, "--blobs", str(blobs)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert not [path for path in (blobs / "sha256").rglob("*") if path.is_file()]  # no submission: no blob


def drop_file_override(command: list[str]) -> list[str]:
    """Run `command` as this user but without the power to ignore file modes (root has it): a
    read-only folder is then read-only for it too."""
    if os.geteuid() != 0:
        return command
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", *command]


def make_read_only(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.mark.slow  # trainmark processes
def test_a_read_only_blob_folder_gets_a_clear_refusal_from_the_cli_and_the_api(tmp_path, archives):
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(db)
    blobs = tmp_path / "blobs"
    store = Store(db, blobs)
    key = store.create_key("lab")
    store.close()
    make_read_only(blobs)
    try:
        done = subprocess.run(
            drop_file_override(
                [sys.executable, "-m", "trainmark", "submit", str(archives["cpu"]), "--db", db, "--blobs", str(blobs)]
            ),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 1
        assert "Traceback" not in done.stderr and "cannot write its blob store" in done.stderr
        assert str(blobs) not in done.stderr

        server, url = _serve(db, blobs, user_without_override=True)
        try:
            answer = post(url, key, archives["cpu"].read_bytes())
        finally:
            _stop(server)
        assert answer.status_code == 503
        assert answer.json()["code"] == "store-unwritable" and str(blobs) not in answer.text
    finally:
        for path in [blobs, *blobs.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    store = Store(db, blobs)
    try:
        assert store.counts()["submission"] == 0
        assert [event.detail.split(":")[0] for event in audit(store, "refused")] == ["store-unwritable"] * 2
    finally:
        store.close()


def test_the_bundle_download_is_built_once_and_cached(service, archives, tmp_path):
    url, store, key = service
    answer = post(url, key, archives["cpu"].read_bytes())
    bundle_id = answer.json()["id"]
    built = store.blobs.archive_path(bundle_id)
    assert built.is_file()  # packed at ingest, before anyone asked
    first = httpx.get(f"{url}/api/v1/submissions/{bundle_id}/bundle")
    assert first.status_code == 200 and first.content == archives["cpu"].read_bytes()
    assert first.headers["etag"] == f'"{bundle_id}"' and "immutable" in first.headers["cache-control"]
    inode = built.stat().st_ino, built.stat().st_mtime_ns
    second = httpx.get(f"{url}/api/v1/submissions/{bundle_id}/bundle", headers={"If-None-Match": f'"{bundle_id}"'})
    assert second.status_code == 304 and second.content == b""
    third = httpx.get(f"{url}/api/v1/submissions/{bundle_id}/bundle")
    assert third.content == first.content
    assert (built.stat().st_ino, built.stat().st_mtime_ns) == inode  # served, not rebuilt
    assert not list(store.blobs.scratch.iterdir())


def test_a_submission_from_before_archives_were_kept_gets_one_built_once(store, archives):
    outcome = submit_archive(store, archives["cpu"])
    built = store.blobs.archive_path(outcome.id)
    built.unlink()  # as a registry that stored no archives at ingest left it
    assert store.archive_for(outcome.id).read_bytes() == archives["cpu"].read_bytes()
    assert built.is_file() and not list(store.blobs.scratch.iterdir())
    with pytest.raises(KeyError):
        store.archive_for("0" * 64)


@pytest.mark.slow  # a trainmark process per command
def test_keys_can_be_listed_and_revoked(tmp_path, archives):
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(db)
    blobs = tmp_path / "blobs"

    def cli(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "trainmark", *arguments, "--db", db, "--blobs", str(blobs)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )

    key = cli("keys", "create", "--name", "Lab One").stdout.strip()
    cli("keys", "create", "--name", "Lab Two")
    listed = json.loads(cli("keys", "list", "--json").stdout)
    assert [(entry["name"], entry["revoked"]) for entry in listed] == [("Lab One", False), ("Lab Two", False)]
    assert listed[0]["prefix"] == key[:12] and key not in json.dumps(listed)
    revoked = cli("keys", "revoke", str(listed[0]["id"]))
    assert revoked.returncode == 0, revoked.stderr
    assert [entry["revoked"] for entry in json.loads(cli("keys", "list", "--json").stdout)] == [True, False]
    assert cli("keys", "revoke", "tmk_nosuchkey").returncode == 1
    store = Store(db, blobs)
    try:
        assert store.verify_key(key) is None
        with LiveServer(create_app(store)) as server:
            assert post(server.url, key, archives["cpu"].read_bytes()).status_code == 401
        [event] = audit(store, "key-revoked")
        assert event.detail == "Lab One"
    finally:
        store.close()


def test_pack_writes_a_file_others_may_read(tmp_path):
    output = tmp_path / "cpu.tar.gz"
    pack(CPU, output)
    assert stat.S_IMODE(output.stat().st_mode) == 0o644


class TimedServer(LiveServer):
    """The live server with `trainmark serve`'s protocol settings and short timeouts."""

    def __init__(self, app, header_timeout_s: float) -> None:
        import threading

        import uvicorn
        from trainmark.registry.api import serving_options

        super().__init__(app)
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", **serving_options(header_timeout_s)
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)


def closed_within(connection: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """(whether the server closed the connection within `seconds`, what it sent)."""
    connection.settimeout(seconds)
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except TimeoutError:
        return False, received
    return True, received


def test_slow_clients_are_cut_off(registry_url, tmp_path):
    upgrade(registry_url)
    store = Store(registry_url, tmp_path / "blobs", LIMITS)
    key = store.create_key("lab")
    try:
        with TimedServer(create_app(store, body_timeout_s=1.0), header_timeout_s=1.0) as server:
            # headers that never end: closed after the header timeout
            trickle = socket.create_connection(("127.0.0.1", server.port))
            trickle.sendall(b"GET / HTTP/1.1\r\nHost: registry\r\n")
            began = time.monotonic()
            closed, _ = closed_within(trickle, 10)
            assert closed and time.monotonic() - began < 5
            trickle.close()
            # an idle connection that never sends a request: closed too
            idle = socket.create_connection(("127.0.0.1", server.port))
            assert closed_within(idle, 10)[0]
            idle.close()
            # a body that stalls: 408 after the body timeout
            stall = socket.create_connection(("127.0.0.1", server.port))
            stall.sendall(
                b"POST /api/v1/submissions HTTP/1.1\r\nHost: registry\r\nAuthorization: Bearer "
                + key.encode()
                + b"\r\nContent-Length: 100000\r\n\r\n"
                + b"\x1f\x8b"
                + b"\0" * 100
            )
            closed, answer = closed_within(stall, 15)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            stall.close()
            # a client that keeps its promises is served as before
            assert httpx.get(server.url + "/api/v1/leaderboard").status_code == 200
        assert not list(store.blobs.scratch.iterdir())
        assert [event.detail.split(":")[0] for event in audit(store, "refused")] == ["upload-timeout"]
    finally:
        store.close()


def test_a_client_that_leaves_mid_upload_costs_no_traceback(service, caplog):
    url, store, key = service
    port = int(url.rsplit(":", 1)[1])
    with caplog.at_level("INFO"):
        for _ in range(3):
            leaving = socket.create_connection(("127.0.0.1", port))
            leaving.sendall(
                b"POST /api/v1/submissions HTTP/1.1\r\nHost: registry\r\nAuthorization: Bearer "
                + key.encode()
                + b"\r\nContent-Length: 1000000\r\n\r\n"
                + b"\x1f\x8b"
                + b"\0" * 5000
            )
            time.sleep(0.3)
            leaving.close()
        time.sleep(1.0)
        assert httpx.get(url + "/api/v1/leaderboard").status_code == 200
    assert not [record for record in caplog.records if record.exc_info or record.levelname == "ERROR"], [
        record.getMessage() for record in caplog.records
    ]
    assert not list(store.blobs.scratch.iterdir())
