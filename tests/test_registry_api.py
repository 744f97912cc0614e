"""The registry's HTTP service, served by a real uvicorn on loopback over SQLite and PostgreSQL:
submitting, reading, exports, and hostile input that must get a clear 4xx and change nothing."""

from __future__ import annotations

import csv
import gc
import gzip
import io
import json
import os
import tarfile
import threading
from pathlib import Path

import httpx
import pytest
from trainmark.registry.api import create_app, csv_cell, prepare_serving_process
from trainmark.registry.database import upgrade
from trainmark.registry.intake import submit_archive
from trainmark.registry.store import RegistryLimits, Store
from trainmark.spec import conformance
from trainmark.spec.records import JSON_SCHEMA_FILES

from tests.bundles import edit_manifest, edit_trace
from tests.live_server import LiveServer, served_registry
from tests.registry_bundles import CPU, archive, member, tar_with, variant

LIMITS = RegistryLimits(max_upload_bytes=2 * 1024 * 1024, max_unpacked_bytes=16 * 1024 * 1024, max_members=500)


@pytest.fixture
def service(registry_at_head, tmp_path):
    """(base URL, store, an API key) of a registry served over HTTP."""
    with served_registry(registry_at_head, tmp_path / "blobs", LIMITS) as served:
        yield served


@pytest.fixture(scope="module")
def board(module_registry_at_head, tmp_path_factory, archives):
    """One served registry holding the CPU archive, shared by the tests that only read it or check
    that a refused request changed nothing."""
    with served_registry(module_registry_at_head, tmp_path_factory.mktemp("blobs"), LIMITS) as served:
        url, _, key = served
        assert post(url, key, archives["cpu"].read_bytes()).status_code == 201
        yield served


def post(url: str, key: str | None, body, headers: dict | None = None) -> httpx.Response:
    headers = dict(headers or {})
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(url + "/api/v1/submissions", content=body, headers=headers, timeout=120)


def blob_files(store: Store) -> set[str]:
    return {str(path) for path in store.blobs.root.rglob("*") if path.is_file()}


def test_submit_read_download_and_export(service, archives):
    url, store, key = service
    answer = post(url, key, archives["gpu"].read_bytes())
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert set(body) >= {"id", "score", "ranked", "findings"} and body["ranked"] is True
    again = post(url, key, archives["gpu"].read_bytes())
    assert again.status_code == 200 and again.json()["id"] == body["id"]

    record = httpx.get(f"{url}/api/v1/submissions/{body['id']}").json()
    assert record["submission"]["score"] == body["score"]
    assert record["score"]["findings"] == body["findings"]
    download = httpx.get(f"{url}/api/v1/submissions/{body['id']}/bundle")
    assert download.status_code == 200 and download.content == archives["gpu"].read_bytes()
    assert httpx.get(f"{url}/api/v1/submissions/{'0' * 64}").status_code == 404
    assert httpx.get(f"{url}/api/v1/submissions/{'0' * 64}/bundle").status_code == 404

    board = httpx.get(f"{url}/api/v1/leaderboard").json()
    assert [row["id"] for row in board["rows"]] == [body["id"]] and board["next_cursor"] is None
    lines = httpx.get(f"{url}/export.jsonl").text.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [body["id"]]
    table = list(csv.DictReader(io.StringIO(httpx.get(f"{url}/export.csv").text)))
    assert table[0]["id"] == body["id"] and float(table[0]["score"]) == body["score"]
    docs = httpx.get(f"{url}/openapi.json").json()
    assert "/api/v1/submissions" in docs["paths"] and "/api/v1/leaderboard" in docs["paths"]
    assert httpx.get(f"{url}/docs").status_code == 200


def test_the_board_pages_and_filters_over_http(service, archives):
    url, store, key = service
    for name in ("gpu", "cpu", "cpu-two-runs"):
        assert post(url, key, archives[name].read_bytes()).status_code == 201
    seen, cursor = [], None
    while True:
        params = {"limit": 1, "include_unranked": "true"} | ({"cursor": cursor} if cursor else {})
        page = httpx.get(f"{url}/api/v1/leaderboard", params=params).json()
        seen += [row["id"] for row in page["rows"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 3
    fp32 = httpx.get(f"{url}/api/v1/leaderboard", params={"precision": "fp32", "include_unranked": "true"}).json()
    assert {row["precision"] for row in fp32["rows"]} == {"fp32"} and len(fp32["rows"]) == 2


def test_the_board_filters_by_workload_in_the_api_the_page_and_the_exports(service, archives, tmp_path):
    url, store, key = service
    for name in ("gpu", "cpu", "cpu-two-runs"):
        assert post(url, key, archives[name].read_bytes()).status_code == 201
    tiny, gpt2 = "tiny / trainmark-sample-text / fp32", "gpt2-124m / openwebtext-10k / bf16_autocast"
    rows = httpx.get(f"{url}/api/v1/leaderboard", params={"workload": tiny, "include_unranked": "true"}).json()["rows"]
    assert len(rows) == 2 and {row["workload"] for row in rows} == {tiny}
    rows = httpx.get(f"{url}/api/v1/leaderboard", params={"workload": gpt2}).json()["rows"]
    assert [row["model_name"] for row in rows] == ["gpt2-124m"]
    assert httpx.get(f"{url}/api/v1/leaderboard", params={"workload": "no such / x / fp32"}).json()["rows"] == []
    bad = httpx.get(f"{url}/api/v1/leaderboard", params={"workload": "tiny\nx"})
    assert bad.status_code == 400 and "workload may hold printable text" in bad.json()["error"]

    table = list(csv.DictReader(io.StringIO(httpx.get(f"{url}/export.csv", params={"workload": tiny}).text)))
    assert len(table) == 2 and {row["workload"] for row in table} == {tiny}
    lines = httpx.get(f"{url}/export.jsonl", params={"workload": gpt2}).text.splitlines()
    assert [json.loads(line)["model_name"] for line in lines] == ["gpt2-124m"]
    assert httpx.get(f"{url}/export.csv", params={"metric": "x"}).status_code == 400  # only workload there

    page = httpx.get(f"{url}/", params={"workload": gpt2})
    assert (
        page.status_code == 200
        and "gpt2-124m" in page.text
        and "trainmark-sample-text" not in page.text.split("<table")[1]
    )
    assert f"<option selected>{gpt2}</option>" in page.text  # the drop-down keeps the choice

    synthetic = archive(CPU, tmp_path / "synthetic.tar.gz")  # the example as it is: synthetic, never ranked
    assert post(url, key, synthetic.read_bytes()).json()["ranked"] is False
    page = httpx.get(f"{url}/", params={"workload": tiny, "include_unranked": "true"}).text
    assert '<div class="not-ranked">not ranked: provenance: the bundle says it is synthetic' in page


def test_formula_like_text_is_defused_in_the_csv(service, archives):
    url, store, key = service
    assert post(url, key, archives["cpu-script"].read_bytes()).status_code == 201
    row = next(csv.DictReader(io.StringIO(httpx.get(f"{url}/export.csv").text)))
    assert row["submitter"] == "<script>alert(1)</script> Lab"
    assert csv_cell('=HYPERLINK("http://evil")') == '\'=HYPERLINK("http://evil")'
    assert csv_cell("-2+3") == "'-2+3" and csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell(-2.5) == "-2.5" and csv_cell(None) == ""


def test_rate_limit_per_key(registry_url, tmp_path, archives):
    upgrade(registry_url)
    store = Store(registry_url, tmp_path / "blobs", LIMITS)
    key, other = store.create_key("fast"), store.create_key("other")
    with LiveServer(create_app(store, submissions_per_minute=2)) as server:
        codes = [post(server.url, key, archives["cpu"].read_bytes()).status_code for _ in range(3)]
        assert codes[:2] == [201, 200]
        limited = post(server.url, key, archives["cpu"].read_bytes())
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert "bundles a minute" in limited.json()["error"]
        assert post(server.url, other, archives["cpu"].read_bytes()).status_code == 200
    store.close()


# ---------------------------------------------------------------- hostile input


def _bomb(path: Path) -> Path:
    """A small .tar.gz (about 64 KiB) that unpacks to 64 MiB of zeros, four times the test limit."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = 64 * 1024 * 1024
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    path.write_bytes(gzip.compress(raw.getvalue(), compresslevel=9))
    assert path.stat().st_size < LIMITS.max_upload_bytes
    return path


def _nested(path: Path) -> Path:
    text = ('{"schema_version": "1.1.0", "x": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()
    return tar_with(path, [member("manifest.json", text)])


def _nan_metric(path: Path) -> Path:
    root = variant(CPU, path.with_suffix(".dir"))

    def change(manifest):
        metric = next(m for m in manifest["runs"][0]["metrics"] if m["value"] is not None)
        metric["value"] = "__NAN__"

    edit_manifest(root, change)
    text = (root / "manifest.json").read_text().replace('"__NAN__"', "NaN")
    (root / "manifest.json").write_text(text)
    return archive(root, path)


def _nan_in_trace(path: Path) -> Path:
    root = variant(CPU, path.with_suffix(".dir"))
    trace = "runs/run-1/steps.jsonl"

    def change(records):
        records[3]["duration_s"] = "__INF__"
        return records

    edit_trace(root, trace, change)
    target = root / trace
    target.write_text(target.read_text().replace('"__INF__"', "Infinity"))
    from tests.bundles import reseal

    reseal(root)
    return archive(root, path)


HOSTILE = {
    "dot-dot member": (
        lambda p: tar_with(p, [member("manifest.json", b"{}"), member("../escape.txt", b"x")]),
        422,
        "unsafe",
    ),
    "absolute member": (lambda p: tar_with(p, [member("/etc/cron.d/evil", b"x")]), 422, "unsafe"),
    "symlink member": (
        lambda p: tar_with(p, [member("manifest.json", kind=tarfile.SYMTYPE, link="/etc/passwd")]),
        422,
        "link",
    ),
    "hard link member": (
        lambda p: tar_with(p, [member("a", b"x"), member("manifest.json", kind=tarfile.LNKTYPE, link="a")]),
        422,
        "link",
    ),
    "decompression bomb": (_bomb, 422, "unpacks to more than"),
    "deeply nested JSON": (_nested, 422, "nest"),
    "NaN in a metric": (_nan_metric, 422, "finite"),
    "Infinity in a trace": (_nan_in_trace, 422, "finite"),
    "not gzip": (lambda p: (p.write_bytes(b"this is not an archive" * 100), p)[1], 422, "gzip"),
    "no manifest": (lambda p: tar_with(p, [member("runs/x.jsonl", b"{}\n")]), 422, "manifest"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_uploads_get_a_clear_4xx_and_change_nothing(service, archives, tmp_path, case):
    url, store, key = service
    assert post(url, key, archives["gpu"].read_bytes()).status_code == 201
    make, status, words = HOSTILE[case]
    body = make(tmp_path / "hostile.tar.gz").read_bytes()
    rows, blobs = store.counts(), blob_files(store)
    answer = post(url, key, body)
    assert answer.status_code == status, answer.text
    assert words.lower() in answer.text.lower()
    assert answer.json()["error"]
    assert store.counts() == rows and blob_files(store) == blobs


def test_oversized_uploads_are_cut_off(service, tmp_path):
    url, store, key = service
    rows = store.counts()
    big = os.urandom(LIMITS.max_upload_bytes + 1)
    declared = post(url, key, big)
    assert declared.status_code == 413 and "limit" in declared.json()["error"]

    def chunks():  # no Content-Length: the server counts while it reads
        for start in range(0, len(big), 256 * 1024):
            yield big[start : start + 256 * 1024]

    streamed = post(url, key, chunks())
    assert streamed.status_code == 413
    assert store.counts() == rows


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer tmk_wrong", "Basic dXNlcjpwYXNz", "tmk_x"])
def test_submitting_needs_a_valid_key(board, archives, authorization):
    url, store, _ = board
    rows = store.counts()
    headers = {"Authorization": authorization} if authorization is not None else {}
    answer = post(url, None, archives["cpu"].read_bytes(), headers)
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
    assert "API key" in answer.json()["error"]
    assert store.counts() == rows


def test_an_empty_body_is_refused(service):
    url, store, key = service
    answer = post(url, key, b"")
    assert answer.status_code == 400 and "empty" in answer.json()["error"]


@pytest.mark.parametrize(
    "params, words",
    [
        ({"submitter": "x'; DROP TABLE submission; --"}, "submitter may hold"),
        ({"device_model": "1 OR 1=1; --"}, "device_model may hold"),
        ({"precision": "fp32' OR '1'='1"}, "precision must be one of"),
        ({"sort": "password"}, "sort must be one of"),
        ({"sort": "score desc, (select 1)"}, "sort must be one of"),
        ({"metric": "key_hash"}, "metric must be one of"),
        ({"cursor": "eyJub3QiOiAiYSBjdXJzb3IifQ"}, "cursor"),
        ({"parameters_min": "nan"}, "finite"),
    ],
)
def test_bad_board_queries_get_400_and_the_tables_survive(board, params, words):
    url, store, _ = board
    rows = store.counts()
    answer = httpx.get(f"{url}/api/v1/leaderboard", params=params)
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["error"]
    assert store.counts() == rows
    assert len(httpx.get(f"{url}/api/v1/leaderboard").json()["rows"]) == 1


@pytest.mark.parametrize("params", [{"limit": 1000}, {"limit": 0}, {"device_count": "two"}])
def test_out_of_range_board_parameters_get_422(board, params):
    url, _, _ = board
    assert httpx.get(f"{url}/api/v1/leaderboard", params=params).status_code == 422


def test_the_pages_send_a_policy_that_forbids_scripts(service):
    url, _, _ = service
    answer = httpx.get(url + "/")
    assert answer.status_code == 200
    assert "script-src" not in answer.headers["Content-Security-Policy"]  # default-src 'none' covers scripts
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert httpx.get(f"{url}/submissions/{'0' * 64}").status_code == 404
    bad = httpx.get(url + "/", params={"sort": "nope"})
    assert bad.status_code == 400 and "sort must be one of" in bad.text


def test_concurrent_http_submissions(service, archives):
    url, store, key = service
    names = ["gpu", "cpu", "cpu-two-runs", "cpu-script"] * 2
    results: list = []

    def send(name: str) -> None:
        answer = post(url, key, archives[name].read_bytes())
        results.append((answer.status_code, answer.json().get("id")))

    threads = [threading.Thread(target=send, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(code for code, _ in results) == [200] * 4 + [201] * 4
    assert len({identifier for _, identifier in results}) == 4
    assert store.counts()["submission"] == 4


def test_the_client_reads_an_early_refusal_of_a_large_upload(service, tmp_path):
    """The server answers 401 from the headers and stops reading; the client must report that
    answer, not the broken pipe its unfinished upload runs into."""
    from trainmark.registry.client import RegistryError, submit_archive

    url, store, key = service
    large = tmp_path / "large.tar.gz"
    large.write_bytes(b"\x1f\x8b" + os.urandom(LIMITS.max_upload_bytes - 2))
    with pytest.raises(RegistryError, match="answered 401") as refused:
        submit_archive(url, "tmk_not-a-key", large)
    assert refused.value.status == 401
    with pytest.raises(RegistryError, match="answered 422"):
        submit_archive(url, key, large)
    huge = tmp_path / "huge.tar.gz"
    huge.write_bytes(b"\x1f\x8b" + os.urandom(LIMITS.max_upload_bytes * 4))
    with pytest.raises(RegistryError, match="answered 413"):
        submit_archive(url, key, huge)


def test_a_serving_process_compiles_the_validators_and_freezes_its_startup_heap(registry_url, tmp_path, archives):
    upgrade(registry_url)
    store = Store(registry_url, tmp_path / "blobs", LIMITS)
    conformance.compiled_validator.cache_clear()
    assert gc.get_freeze_count() == 0
    try:
        prepare_serving_process()
        compiled = 2 * len(JSON_SCHEMA_FILES) - 1  # the manifest; each record class alone and in batches
        assert conformance.compiled_validator.cache_info().currsize == compiled
        frozen = gc.get_freeze_count()
        assert frozen > 10_000
        assert submit_archive(store, archives["cpu"]).created
        assert gc.get_freeze_count() <= frozen  # what submissions make is collected as usual
        assert conformance.compiled_validator.cache_info().misses == compiled  # and compiles nothing more
    finally:
        gc.unfreeze()
        store.close()
