"""Benchmark: the registry with 100,000 submissions, on SQLite and on PostgreSQL.

Measures in one run, per backend, on the same synthetic board (fixed seed):
  - filling: 100,000 submission rows by bulk insert (SQLAlchemy core, executemany in batches),
    with the spreads of a real board: a dozen device models, 1-64 devices, every precision
    policy, 1e6-7e10 parameters, about 85 % ranked and 95 % current, sort columns as the store
    writes them;
  - leaderboard latency (p50 / p95 / max, ms): the same queries over real HTTP (uvicorn on
    loopback in a thread, one persistent httpx client) and straight through `Store.leaderboard`,
    interleaved, so the HTTP share shows as a ratio: the first page, filters (a common and a rare
    device + precision pair, one submitter), deep pages (row 4,001 plain and filtered, row
    40,001) reached by following the board's own cursors, sort=created_at, metric=energy_per_step;
  - ingest throughput of demo-sized bundles (`trainmark run --preset tiny --repeats 3`: three
    runs, about 12,000 records) through `Store.submit`, in one process and in two, into the
    filled board; and where one submission's time goes. Each process first does what
    `trainmark serve` does at start (`prepare_serving_process`).

Budgets (the registry issue): leaderboard p95 <= 50 ms on both backends; ingest >= 20 bundles/s.
Planner statistics: PostgreSQL is ANALYZEd after the fill (autovacuum does the same within a
minute); SQLite is not, because the registry never runs ANALYZE. A query over budget has its
plan printed.

    PYTHONPATH=. python bench/registry.py
    PYTHONPATH=. python bench/registry.py --submissions 20000 --ingest 6 --backend sqlite
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import platform
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # before bench/, whose registry.py (this file) would shadow the package

import httpx  # noqa: E402
from sqlalchemy import event, insert, text  # noqa: E402
from trainmark.registry.api import create_app, prepare_serving_process  # noqa: E402
from trainmark.registry.database import engine_for, is_sqlite, normalize_url, upgrade  # noqa: E402
from trainmark.registry.intake import submit_archive  # noqa: E402
from trainmark.registry.store import PRECISIONS, BoardQuery, Store  # noqa: E402
from trainmark.registry.tables import MISSING_LOW, Submission  # noqa: E402
from trainmark.scorer.rubric import RUBRIC_VERSION  # noqa: E402
from trainmark.scorer.score import score_bundle  # noqa: E402
from trainmark.spec.archive import open_bundle, pack  # noqa: E402

from tests.live_server import LiveServer  # noqa: E402

SEED = 2026
P95_BUDGET_MS = 50.0
INGEST_BUDGET_PER_S = 20.0
FILL_BATCH = 5_000
BREAKDOWN_REPEATS = 5
T0 = datetime(2026, 1, 1, tzinfo=UTC)

# (value, weight): roughly the mix of a public board, many H100/A100 runs, a long tail.
DEVICE_MODELS = [
    ("NVIDIA H100 80GB HBM3", 22),
    ("NVIDIA A100-SXM4-80GB", 18),
    ("NVIDIA GeForce RTX 4090", 9),
    ("NVIDIA H200", 8),
    ("NVIDIA A100-SXM4-40GB", 8),
    ("AMD Instinct MI300X", 7),
    ("NVIDIA L40S", 6),
    ("NVIDIA GeForce RTX 3090", 6),
    ("AMD EPYC", 5),
    ("AMD Instinct MI250X", 4),
    ("Google TPU v5e", 4),
    ("Intel Gaudi 2", 3),
]
DEVICE_COUNTS = [(1, 35), (2, 15), (4, 15), (8, 20), (16, 7), (32, 5), (64, 3)]
PRECISION_WEIGHTS = {
    "bf16_autocast": 40,
    "bf16": 15,
    "fp16_autocast": 12,
    "fp32": 10,
    "tf32": 8,
    "fp16": 5,
    "fp8_mixed": 5,
    "undeclared": 4,
    "fp64": 1,
}
COMMON_FILTER = {"device_model": "NVIDIA H100 80GB HBM3", "precision": "bf16_autocast"}  # ~9 % of the board
RARE_FILTER = {"device_model": "Intel Gaudi 2", "precision": "fp8_mixed"}  # ~0.15 % of the board
SUBMITTER_FILTER = "lab 007"  # one lab of 300: ~0.3 % of the board


# ---------------------------------------------------------------- filling


def _weighted(rng: random.Random, choices: list[tuple]) -> object:
    return rng.choices([value for value, _ in choices], [weight for _, weight in choices])[0]


def synthetic_rows(count: int, seed: int) -> Iterator[dict]:
    """`count` submission rows; metric bounds and *_sort columns exactly as Store._insert writes them."""
    rng = random.Random(seed)
    precisions = [(name, PRECISION_WEIGHTS[name]) for name in PRECISIONS]
    submitters = [f"lab {index:03d}" for index in range(300)]  # uniform: each ~0.33 %
    for index in range(count):
        ranked = rng.random() < 0.85
        score = round(0.45 + 0.55 * rng.random() if ranked else 0.6 * rng.random(), 6)
        energy_measured = rng.random() < 0.6  # no power sensor: no FLOP/J and no energy per step
        sps = 10 ** rng.uniform(-1, 2) if rng.random() < 0.98 else None
        sps_low = sps * (1 - 0.1 * rng.random()) if sps is not None else None
        fpj = 10 ** rng.uniform(9, 12) if energy_measured else None
        fpj_low = fpj * (1 - 0.1 * rng.random()) if fpj is not None else None
        eps = 10 ** rng.uniform(-1, 4) if energy_measured else None
        eps_high = eps * (1 + 0.1 * rng.random()) if eps is not None else None
        yield {
            "id": hashlib.sha256(f"{seed}/{index}".encode()).hexdigest(),
            "created_at": T0 + timedelta(seconds=rng.uniform(0, 330 * 86400)),
            "key_id": None,
            "submitter": rng.choice(submitters),
            "description": f"synthetic submission {index}",
            "supersedes": None,
            "current": rng.random() < 0.95,
            "schema_version": "1.1.0",
            "producer": "trainmark 0.1.0",
            "model_name": rng.choice(("gpt2", "llama-3-8b", "resnet50", "tiny")),
            "device_model": _weighted(rng, DEVICE_MODELS),
            "device_count": _weighted(rng, DEVICE_COUNTS),
            "precision": _weighted(rng, precisions),
            "parameters": 10 ** rng.uniform(6, math.log10(7e10)),
            "run_count": rng.choice((1, 3, 3, 3, 5)),
            "bundle_bytes": rng.randint(10**5, 10**9),
            "rubric_version": RUBRIC_VERSION,
            "ranked": ranked,
            "score": score,
            "fidelity": rng.random(),
            "completeness": rng.random(),
            "confidence": rng.random(),
            "badges": "energy" if energy_measured else "",
            "missing": "" if energy_measured else "energy",
            "steps_per_second": sps,
            "steps_per_second_low": sps_low,
            "steps_per_second_sort": sps_low if sps_low is not None else MISSING_LOW,
            "flops_per_joule": fpj,
            "flops_per_joule_low": fpj_low,
            "flops_per_joule_sort": fpj_low if fpj_low is not None else MISSING_LOW,
            "energy_per_step": eps,
            "energy_per_step_high": eps_high,
            "energy_per_step_sort": -eps_high if eps_high is not None else MISSING_LOW,
        }


def fill(url: str, count: int, seed: int) -> float:
    """Insert `count` synthetic submissions in one transaction; return the seconds it took."""
    engine = engine_for(url, writer=True)
    table = Submission.__table__
    started = time.perf_counter()
    with engine.begin() as connection:
        batch = []
        for row in synthetic_rows(count, seed):
            batch.append(row)
            if len(batch) == FILL_BATCH:
                connection.execute(insert(table), batch)
                batch = []
        if batch:
            connection.execute(insert(table), batch)
    elapsed = time.perf_counter() - started
    if not is_sqlite(normalize_url(url)):
        with engine.connect() as connection:
            connection.execute(text("ANALYZE submission"))
            connection.commit()
    engine.dispose()
    return elapsed


# ---------------------------------------------------------------- latency


def cursor_at(store: Store, params: dict, row: int) -> tuple[str | None, int]:
    """The board's own cursor after about `row` rows (followed 100 rows a page); and the rows passed."""
    cursor, passed = None, 0
    while passed < row:
        page = store.leaderboard(BoardQuery(**params, limit=min(100, row - passed), cursor=cursor))
        if page.next_cursor is None:
            break
        cursor, passed = page.next_cursor, passed + len(page.rows)
    return cursor, passed


def board_queries(store: Store) -> list[tuple[str, dict]]:
    """(label, API parameters) of the timed queries; deep pages carry a cursor from following the board."""
    deep, deep_rows = cursor_at(store, {}, 4_000)
    deeper, deeper_rows = cursor_at(store, {}, 40_000)
    filtered, filtered_rows = cursor_at(store, COMMON_FILTER, 4_000)
    return [
        ("first page", {}),
        ("filter: device+precision", dict(COMMON_FILTER)),
        ("filter: rare device+prec.", dict(RARE_FILTER)),
        ("filter: submitter", {"submitter": SUBMITTER_FILTER}),
        (f"deep page (row {deep_rows + 1:,})", {"cursor": deep}),
        (f"filter, row {filtered_rows + 1:,}", COMMON_FILTER | {"cursor": filtered}),
        (f"deep page (row {deeper_rows + 1:,})", {"cursor": deeper}),
        ("sort=created_at", {"sort": "created_at"}),
        ("metric=energy_per_step", {"metric": "energy_per_step"}),
    ]


def measure_latency(store: Store, queries: list[tuple[str, dict]], requests: int, warmup: int) -> dict:
    """{label: {"direct": [ms], "http": [ms]}}, the queries interleaved round-robin."""
    times = {label: {"direct": [], "http": []} for label, _ in queries}
    with LiveServer(create_app(store)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        for label, params in queries:  # the API answers what the store answers
            answer = client.get("/api/v1/leaderboard", params=params)
            answer.raise_for_status()
            direct = store.leaderboard(BoardQuery(**params))
            if [row["id"] for row in answer.json()["rows"]] != [row["id"] for row in direct.rows] or not direct.rows:
                raise SystemExit(f"{label}: the API and the store disagree, or the page is empty")
        for round_ in range(warmup + requests):
            for label, params in queries:
                started = time.perf_counter()
                store.leaderboard(BoardQuery(**params))
                direct_ms = (time.perf_counter() - started) * 1e3
                started = time.perf_counter()
                client.get("/api/v1/leaderboard", params=params).raise_for_status()
                http_ms = (time.perf_counter() - started) * 1e3
                if round_ >= warmup:
                    times[label]["direct"].append(direct_ms)
                    times[label]["http"].append(http_ms)
    return times


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """(p50, p95, max)."""
    return statistics.median(values), statistics.quantiles(values, n=100, method="inclusive")[94], max(values)


def query_plan(store: Store, params: dict) -> list[str]:
    """The plan of the SQL that `Store.leaderboard` runs for `params` (captured, then EXPLAINed)."""
    captured = []

    def capture(_connection, _cursor, statement, parameters, _context, _many):
        if "FROM submission" in statement:
            captured.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        store.leaderboard(BoardQuery(**params))
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    statement, parameters = captured[-1]
    sqlite = is_sqlite(store.url)
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
    with store.engine.connect() as connection:
        rows = connection.exec_driver_sql(prefix + statement, parameters).fetchall()
    plan = [f"{'  ' * (row[1] > 0)}{row[3]}" for row in rows] if sqlite else [row[0] for row in rows]
    sql = re.sub(
        r"^SELECT .*? FROM submission", "SELECT submission.<every column> FROM submission", " ".join(statement.split())
    )
    return [sql] + plan


# ---------------------------------------------------------------- ingest


def demo_bundle(given: Path | None, scratch: Path) -> tuple[Path, str]:
    """The bundle `make demo` writes: the one given, or trained here (about a minute on 2 cores)."""
    if given is not None:
        return given, f"{given} (given with --bundle)"
    out = scratch / "tiny"
    print("training the demo bundle (trainmark run --preset tiny --repeats 3) ...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "trainmark", "run", "--preset", "tiny", "--repeats", "3", "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=REPO,
    )
    return out, "trained here with trainmark run --preset tiny --repeats 3"


def make_archives(source: Path, folder: Path, tag: str, count: int) -> list[Path]:
    """`count` archives of `source`, distinct bundles by their description (the manifest lists no
    digest of itself, so nothing is re-hashed)."""
    manifest = json.loads((source / "manifest.json").read_text())
    archives = []
    for index in range(count):
        copy = folder / f"{tag}-{index}"
        shutil.copytree(source, copy)
        edited = manifest | {"description": f"{manifest.get('description') or 'bundle'} (benchmark copy {tag}-{index})"}
        (copy / "manifest.json").write_text(json.dumps(edited, indent=2) + "\n")
        archive = folder / f"{tag}-{index}.tar.gz"
        pack(copy, archive)
        shutil.rmtree(copy)
        archives.append(archive)
    return archives


_worker_store: Store | None = None


def _open_worker_store(url: str, blobs: str, warm_bundle: str, ready) -> None:
    global _worker_store
    _worker_store = Store(url, Path(blobs))
    score_bundle(Path(warm_bundle), full_jsonschema=True)  # load everything before the clock starts
    prepare_serving_process()  # as trainmark serve does
    ready.wait()


def _submit_in_worker(archive: Path) -> tuple[float, bool]:
    started = time.perf_counter()
    outcome = submit_archive(_worker_store, archive)
    return time.perf_counter() - started, outcome.created


def ingest_sequential(store: Store, archives: list[Path]) -> tuple[float, list[float]]:
    """(bundles/s, seconds per submission), one process."""
    durations = []
    started = time.perf_counter()
    for archive in archives:
        begun = time.perf_counter()
        outcome = submit_archive(store, archive)
        durations.append(time.perf_counter() - begun)
        if not outcome.created or not outcome.ranked:
            raise SystemExit(f"{archive.name} was not stored as a new ranked submission")
    return len(archives) / (time.perf_counter() - started), durations


def ingest_parallel(url: str, blobs: Path, archives: list[Path], workers: int, warm_bundle: Path) -> float:
    """bundles/s with `workers` processes, each with its own Store (fresh, spawned interpreters)."""
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(workers + 1)
    with context.Pool(workers, _open_worker_store, (url, str(blobs), str(warm_bundle), ready)) as pool:
        ready.wait()
        started = time.perf_counter()
        outcomes = pool.map(_submit_in_worker, archives, chunksize=1)
        elapsed = time.perf_counter() - started
    if not all(created for _, created in outcomes):
        raise SystemExit("a parallel submission was not stored as new")
    return len(archives) / elapsed


def cold_score(source: Path) -> float:
    """Seconds of the first full-schema score in a process (the validators are compiled then)."""
    started = time.perf_counter()
    score_bundle(source, full_jsonschema=True)
    return time.perf_counter() - started


def submission_breakdown(store: Store, archives: list[Path]) -> dict[str, float]:
    """Median seconds of the parts of one submission, each archive timed part by part and then
    submitted whole, interleaved, so that both see the same load."""
    parts: dict[str, list[float]] = {"unpack": [], "full": [], "plain": [], "submit": []}
    for archive in archives:
        started = time.perf_counter()
        with open_bundle(archive) as root:
            parts["unpack"].append(time.perf_counter() - started)
            started = time.perf_counter()
            score_bundle(root, full_jsonschema=True)
            parts["full"].append(time.perf_counter() - started)
            started = time.perf_counter()
            score_bundle(root)
            parts["plain"].append(time.perf_counter() - started)
        started = time.perf_counter()
        if not submit_archive(store, archive).created:
            raise SystemExit(f"{archive.name} was not stored as new")
        parts["submit"].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in parts.items()}


# ---------------------------------------------------------------- one backend


def bench_backend(name: str, url: str, scratch: Path, options, archives: dict[str, list[Path]], source: Path) -> dict:
    print(f"[{name}] filling {options.submissions:,} submissions ...", flush=True)
    upgrade(url)
    fill_s = fill(url, options.submissions, options.seed)
    blobs = scratch / f"blobs-{name}"
    store = Store(url, blobs)
    print(f"[{name}] filled in {fill_s:.1f} s; timing {options.requests} requests per query ...", flush=True)
    queries = board_queries(store)
    latency = measure_latency(store, queries, options.requests, options.warmup)
    plans = {
        label: query_plan(store, params)
        for label, params in queries
        if max(percentiles(latency[label]["http"])[1], percentiles(latency[label]["direct"])[1]) > P95_BUDGET_MS
    }
    print(f"[{name}] ingesting {options.ingest} bundles in 1 process, then {options.ingest} in 2 ...", flush=True)
    sequential, durations = ingest_sequential(store, archives["sequential"])
    breakdown = submission_breakdown(store, archives["breakdown"])
    store.close()
    parallel = ingest_parallel(url, blobs, archives["parallel"], 2, source)
    return {
        "fill_s": fill_s,
        "latency": latency,
        "labels": [label for label, _ in queries],
        "plans": plans,
        "ingest_1": sequential,
        "ingest_2": parallel,
        "submit_s": statistics.median(durations),
        "breakdown": breakdown,
    }


def server_version(url: str) -> str:
    if is_sqlite(normalize_url(url)):
        return f"SQLite {sqlite3.sqlite_version}"
    engine = engine_for(url)
    with engine.connect() as connection:
        version = connection.execute(text("SHOW server_version")).scalar()
    engine.dispose()
    return f"PostgreSQL {version}"


# ---------------------------------------------------------------- report


def print_latency(results: dict[str, dict], requests: int, warmup: int) -> None:
    names = list(results)
    print(
        f"\nleaderboard latency, ms: p50 / p95 / max of {requests} requests per query after {warmup} warm-up, "
        f"interleaved; HTTP = uvicorn on loopback (same process), direct = Store.leaderboard"
    )
    header = f"{'query':28}" + "".join(f"| {name + ' HTTP':>22} {'direct':>20} {'HTTP/dir':>8} " for name in names)
    print(header)
    print("-" * len(header))
    for index, label in enumerate(results[names[0]]["labels"]):
        line = f"{label:28}"
        for name in names:
            times = results[name]["latency"][results[name]["labels"][index]]
            http, direct = percentiles(times["http"]), percentiles(times["direct"])
            line += (
                f"| {http[0]:6.1f} {http[1]:6.1f} {http[2]:7.1f} {direct[0]:6.1f} {direct[1]:6.1f} "
                f"{direct[2]:6.1f} {http[0] / direct[0]:7.2f}x "
            )
        print(line)


def print_breakdown(results: dict[str, dict], cold_s: float) -> None:
    names = list(results)
    print(
        f"\none demo-sized submission, s (median of {BREAKDOWN_REPEATS}; each archive unpacked and scored, "
        f"then submitted)"
    )
    print(f"{'':46}" + "".join(f"{name:>12}" for name in names))
    rows = [
        ("unpack the archive (open_bundle)", lambda b: b["unpack"]),
        ("score_bundle: models + rules, no JSON Schema", lambda b: b["plain"]),
        ("score_bundle(full_jsonschema=True)", lambda b: b["full"]),
        ("Store.submit, whole", lambda b: b["submit"]),
        ("  rest: blobs, rows, duplicate-run check", lambda b: b["submit"] - b["unpack"] - b["full"]),
    ]
    for label, value in rows:
        print(f"{label:46}" + "".join(f"{value(results[n]['breakdown']):12.3f}" for n in names))
    print(
        f"{'full score / plain score':46}"
        + "".join(f"{b['full'] / b['plain']:11.1f}x" for b in (results[n]["breakdown"] for n in names))
    )
    print(
        f"first full-schema score in a fresh process: {cold_s:.3f} s (validator compile included; the "
        f"ingest figures exclude it)"
    )


def verdict(within_budget: bool) -> str:
    return "ok" if within_budget else "OVER"


def print_summary(results: dict[str, dict], options) -> None:
    names = list(results)
    print(f"\nsummary (budgets: leaderboard p95 <= {P95_BUDGET_MS:g} ms; ingest >= {INGEST_BUDGET_PER_S:g} bundles/s)")
    print(f"{'':34}" + "".join(f"{name:>22}" for name in names))
    print(
        f"{'fill ' + format(options.submissions, ',') + ' rows, s':34}"
        + "".join(f"{results[n]['fill_s']:17.1f}     " for n in names)
    )
    for index, label in enumerate(results[names[0]]["labels"]):
        cells = ""
        for name in names:
            p95 = percentiles(results[name]["latency"][results[name]["labels"][index]]["http"])[1]
            cells += f"{p95:15.1f} ms {verdict(p95 <= P95_BUDGET_MS):>4}"
        print(f"{'p95 HTTP ' + label:34}" + cells)
    for key, label in (("ingest_1", "ingest, 1 process, bundles/s"), ("ingest_2", "ingest, 2 processes, bundles/s")):
        print(
            f"{label:34}"
            + "".join(f"{results[n][key]:17.2f} {verdict(results[n][key] >= INGEST_BUDGET_PER_S):>4}" for n in names)
        )
    print(
        f"{'Store.submit, median of ' + str(options.ingest) + ', s':34}"
        + "".join(f"{results[n]['submit_s']:17.3f}     " for n in names)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=100_000, help="synthetic rows on the board")
    parser.add_argument("--ingest", type=int, default=20, help="bundles submitted per mode (1 and 2 processes)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per query")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests per query first")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--bundle", type=Path, help="the demo-sized bundle to ingest (default: train one here)")
    options = parser.parse_args()
    begun, load_before = time.perf_counter(), os.getloadavg()[0]

    results: dict[str, dict] = {}
    versions = []
    with tempfile.TemporaryDirectory(prefix="trainmark-bench-registry-") as scratch_name:
        scratch = Path(scratch_name)
        source, source_note = demo_bundle(options.bundle, scratch)
        source_note += f", {sum(1 for path in source.rglob('*') if path.is_file())} files"
        cold_s = cold_score(source)
        prepare_serving_process()  # this process serves the timed requests and ingests, as trainmark serve would
        archives = {mode: make_archives(source, scratch, mode, options.ingest) for mode in ("sequential", "parallel")}
        archives["breakdown"] = make_archives(source, scratch, "breakdown", BREAKDOWN_REPEATS)
        if options.backend in ("sqlite", "both"):
            url = f"sqlite:///{scratch / 'registry.db'}"
            results["SQLite"] = bench_backend("SQLite", url, scratch, options, archives, source)
            versions.append(server_version(url))
        if options.backend in ("postgresql", "both"):
            from tests.postgres import Cluster, server_binaries

            binaries = server_binaries()
            if binaries is None:
                raise SystemExit("no PostgreSQL server binaries (initdb): install postgresql or set $TRAINMARK_PG_BIN")
            cluster = Cluster(binaries)
            cluster.start()
            try:
                url = cluster.database()
                results["PostgreSQL"] = bench_backend("PostgreSQL", url, scratch, options, archives, source)
                versions.append(server_version(url))
            finally:
                cluster.stop()

    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{', '.join(versions)} (PostgreSQL: fsync off, as the test cluster runs); 1-minute load "
        f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    )
    print(f"board: {options.submissions:,} synthetic submissions (seed {options.seed}); bundle: {source_note}")
    print_latency(results, options.requests, options.warmup)
    for name, result in results.items():
        for label, plan in result["plans"].items():
            print(f"\n{name} plan of '{label}' (p95 over {P95_BUDGET_MS:g} ms):\n  " + "\n  ".join(plan))
    print_breakdown(results, cold_s)
    print_summary(results, options)
    print(
        f"\ntotal {time.perf_counter() - begun:.0f} s; reproduce: PYTHONPATH=. python bench/registry.py "
        f"--submissions {options.submissions} --ingest {options.ingest} --backend {options.backend} "
        f"--requests {options.requests} --warmup {options.warmup} --seed {options.seed}"
    )


if __name__ == "__main__":
    main()
