"""Trade-off studies for real: a sweep of two tiny configurations (fp32 and bf16 autocast) on this
machine's CPUs, interrupted and resumed; `compare` on it; the HTML report in headless Chromium,
held to the score JSON; and the README.md every runner bundle carries."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from scipy import stats
from trainmark.reference_runner.config import ConfigInvalid
from trainmark.reference_runner.sweep import grid, parse_vary
from trainmark.scorer.compare import Cell, compare, ratio_interval, verdict
from trainmark.scorer.score import score_bundle
from trainmark.spec.bundle import read_manifest
from trainmark.spec.validate import validate_bundle

from tests.bundles import EXAMPLES
from tests.processes import default_sigint

pytestmark = pytest.mark.training  # trains for real: left out of make test-fast

SWEEP_KNOBS = ["--set", "max_steps=20", "--set", "idle_seconds=1", "--repeats", "2"]
POINTS = ("precision=fp32", "precision=bf16_autocast")


def trainmark(*arguments: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainmark", *arguments], capture_output=True, text=True, timeout=900, **options
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """The sweep, interrupted once its first point is complete, then run again to the end."""
    out = tmp_path_factory.mktemp("sweep") / "precision"
    command = [
        sys.executable,
        "-m",
        "trainmark",
        "sweep",
        "--preset",
        "tiny",
        "--vary",
        "precision=fp32,bf16_autocast",
        *SWEEP_KNOBS,
        "--out",
        str(out),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=default_sigint
    )
    deadline = time.monotonic() + 600
    index = out / "sweep.json"
    while time.monotonic() < deadline and process.poll() is None:
        if index.is_file() and json.loads(index.read_text())["points"][0]["configuration_digest"]:
            break
        time.sleep(0.5)
    assert process.poll() is None, f"the sweep ended before it could be interrupted:\n{process.stdout.read()}"
    time.sleep(3)  # into the second point's first run
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)
    interrupted = json.loads(index.read_text())
    assert interrupted["points"][0]["configuration_digest"] and not interrupted["points"][1]["configuration_digest"]
    first_manifest = (out / POINTS[0] / "manifest.json").read_bytes()

    resumed = trainmark(
        "sweep", "--preset", "tiny", "--vary", "precision=fp32,bf16_autocast", *SWEEP_KNOBS, "--out", str(out)
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{POINTS[0]}: already complete, skipped" in resumed.stdout
    assert f"{POINTS[1]}: trained" in resumed.stdout
    # Not a terminal: plain progress lines (run k of N, the point, phase, step, loss, rate, the time
    # left) instead of a live line, and one line per finished run.
    assert re.search(rf"^{re.escape(POINTS[1])}: run-2 completed in [0-9a-z. ]+ s$", resumed.stdout, re.M), (
        resumed.stdout
    )
    assert re.search(
        rf"^run 2 of 2 \({re.escape(POINTS[1])}\) · training · step \d+ of 20 · loss [0-9.]+ · "
        r"[0-9.]+ steps/s · about [0-9a-z. ]+ left \(estimate\) · ",
        resumed.stdout,
        re.M,
    ), resumed.stdout
    assert re.search(rf"^run 1 of 2 \({re.escape(POINTS[1])}\) · set-up · ", resumed.stdout, re.M)
    assert (out / POINTS[0] / "manifest.json").read_bytes() == first_manifest  # not trained again
    return out


def test_the_sweep_writes_a_complete_bundle_per_point(sweep):
    index = json.loads((sweep / "sweep.json").read_text())
    assert [point["name"] for point in index["points"]] == list(POINTS)
    for name in POINTS:
        _, manifest = read_manifest(sweep / name)
        assert [run.status for run in manifest.runs] == ["completed", "completed"]
        assert manifest.model.precision_policy == name.split("=")[1]
        assert validate_bundle(sweep / name, full_jsonschema=True).valid


def test_a_complete_sweep_run_again_trains_nothing(sweep):
    before = {name: (sweep / name / "manifest.json").read_bytes() for name in POINTS}
    again = trainmark(
        "sweep", "--preset", "tiny", "--vary", "precision=fp32,bf16_autocast", *SWEEP_KNOBS, "--out", str(sweep)
    )
    assert again.returncode == 0
    assert again.stdout.count("already complete, skipped") == 2
    assert {name: (sweep / name / "manifest.json").read_bytes() for name in POINTS} == before


def test_compare_reports_both_with_intervals(sweep, tmp_path):
    page = tmp_path / "compare.html"
    result = trainmark("compare", str(sweep), "--baseline", POINTS[0], "--json", "--html", str(page))
    assert result.returncode == 0, result.stderr
    comparison = json.loads(result.stdout)
    assert comparison["baseline"] == "precision fp32"
    assert comparison["differences"] == ["precision: fp32, bf16_autocast"] and comparison["caveats"] == []
    fp32, bf16 = comparison["configurations"]
    for configuration in (fp32, bf16):
        cell = configuration["cells"]["steps_per_second"]
        assert cell["n"] == 2 and cell["ci95_low"] < cell["headline"] < cell["ci95_high"]
        assert configuration["cells"]["energy_per_step"]["headline"] is None
        assert "RAPL" in configuration["cells"]["energy_per_step"]["unavailable_reason"]
    change = bf16["cells"]["steps_per_second"]
    assert change["ratio_low"] < change["ratio"] < change["ratio_high"]
    assert change["verdict"] == verdict(change["ratio_low"], change["ratio_high"], True)
    assert fp32["cells"]["steps_per_second"]["verdict"] == "baseline"
    text = page.read_text()
    assert "<script" not in text and "precision bf16_autocast" in text and "<svg" in text
    for columns in ("80", "260"):  # columns named by bundle; nothing cut, nothing past the edge
        printed = trainmark("compare", str(sweep), env={**os.environ, "COLUMNS": columns})
        assert printed.returncode == 0 and "against precision=fp32" in printed.stdout
        assert "precision=bf16_autocast" in printed.stdout and "…" not in printed.stdout
        assert all(len(line) <= int(columns) for line in printed.stdout.splitlines())


def test_every_runner_bundle_carries_a_readme(sweep):
    bundle = sweep / POINTS[1]
    _, manifest = read_manifest(bundle)
    assert "README.md" in {entry.path for entry in manifest.files}
    readme = (bundle / "README.md").read_text()
    assert readme.startswith("# tiny: 2 run(s) on 1 x ")
    assert "precision bf16_autocast" in readme
    for heading in (
        "## What was run",
        "## On what",
        "## How each quantity was measured",
        "## What is missing, and why",
        "## Before scaling these figures",
    ):
        assert heading in readme
    missing = [metric for metric in manifest.runs[0].metrics if metric.value is None]
    assert missing and all(f"`{metric.name}`" in readme for metric in missing)
    assert "Fewer than three completed runs" in readme


# ---------------------------------------------------------------- the HTML report


class _Numbers(HTMLParser):
    """Every element with data-metric / data-field / data-value on a report page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str | None, str | None, str]] = []
        self.row_metric: str | None = None
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "tr" and "data-metric" in attributes:
            self.row_metric = attributes["data-metric"]
        if "data-value" in attributes:
            metric = attributes.get("data-metric") or self.row_metric
            self.found.append((metric, attributes.get("data-field"), attributes["data-value"]))


def test_report_numbers_equal_the_score_json(sweep, tmp_path):
    bundle = sweep / POINTS[0]
    page = tmp_path / "report.html"
    result = trainmark("report", str(bundle), "--html", str(page))
    assert result.returncode == 0, result.stderr
    score = json.loads(trainmark("score", str(bundle), "--json").stdout)
    parser = _Numbers()
    parser.feed(page.read_text())
    assert parser.scripts == 0
    checked = 0
    for metric, field, value in parser.found:
        if metric in ("score", "fidelity", "completeness", "confidence"):
            assert float(value) == score[metric]
        else:
            assert float(value) == score["statistics"][metric][field], (metric, field)
        checked += 1
    statistics_cells = {(metric, field) for metric, field, _ in parser.found if field}
    assert {(name, "headline") for name in score["statistics"]} <= statistics_cells
    assert checked > 3 * len(score["statistics"])


def test_report_renders_with_visible_plots_in_chromium(sweep, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        if os.environ.get("TRAINMARK_TESTS_WITHOUT_BROWSER"):
            pytest.skip("no chromium / chromedriver and TRAINMARK_TESTS_WITHOUT_BROWSER is set")
        pytest.fail("chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver)")
    page = tmp_path / "report.html"
    assert trainmark("report", str(sweep / POINTS[1]), "--html", str(page)).returncode == 0
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1300,1800"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(page.as_uri())
        assert driver.title.startswith("tiny on 1 × ")
        assert len(driver.find_elements(By.CSS_SELECTOR, "table.runs tbody tr")) == 2
        plots = driver.find_elements(By.CSS_SELECTOR, "section.traces svg.plot")
        # one plot per quantity, both runs in it
        assert [plot.get_attribute("aria-label") for plot in plots] == [
            "Loss: 2 run(s)",
            "Step time: 2 run(s)",
            "Memory: 2 run(s)",
        ]
        for plot in plots:
            assert plot.size["width"] > 300 and plot.size["height"] > 100
            lines = plot.find_elements(By.CSS_SELECTOR, "polyline.series")
            assert {line.get_attribute("data-label").split()[0] for line in lines} == {"run-1", "run-2"}
            assert all(int(line.get_attribute("data-points")) > 2 for line in lines)
            assert len(line_points(lines[0].get_attribute("points"))) == int(lines[0].get_attribute("data-points"))
        step_plot = plots[1]
        labels = {band.get_attribute("data-label") for band in step_plot.find_elements(By.CSS_SELECTOR, "rect.phase")}
        assert labels == {"warm-up", "profiled"}
        shot = tmp_path / "traces.png"
        driver.find_element(By.CSS_SELECTOR, "section.traces").screenshot(str(shot))
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
        for selector in ("table.stages", "table.kernel-categories", "table.statistics", "table.block"):
            assert driver.find_element(By.CSS_SELECTOR, selector).size["height"] > 50, selector
        assert driver.find_elements(By.TAG_NAME, "script") == []
    finally:
        driver.quit()


def line_points(text: str) -> list[str]:
    return text.split()


# ---------------------------------------------------------------- the parts, without training


def test_vary_options_are_checked():
    assert parse_vary(["precision=fp32,bf16_autocast", "micro_batch_size=8,16"]) == [
        ("precision", ["fp32", "bf16_autocast"]),
        ("micro_batch_size", ["8", "16"]),
    ]
    for bad, words in (
        (["precision"], "KNOB=V1,V2"),
        (["precision="], "KNOB=V1,V2"),
        (["precision=fp32", "precision=bf16_autocast"], "twice"),
        (["seed=1,1"], "repeats a value"),
        ([], "at least one"),
    ):
        with pytest.raises(ConfigInvalid, match=words):
            parse_vary(bad)


def test_every_point_is_checked_before_anything_trains(tmp_path):
    with pytest.raises(ConfigInvalid, match=r"precision=fp16_autocast.*CUDA") as refused:
        grid("tiny", None, {"device": "cpu"}, parse_vary(["precision=fp32,fp16_autocast"]))
    assert "nothing was trained" in str(refused.value)
    with pytest.raises(ConfigInvalid, match="unknown knob"):
        grid("tiny", None, {}, parse_vary(["batch=1,2"]))
    points = grid(
        "tiny", None, {"max_steps": 20}, parse_vary(["precision=fp32,bf16_autocast", "micro_batch_size=8,16"])
    )
    assert [point.name for point in points] == [
        "precision=fp32,micro_batch_size=8",
        "precision=fp32,micro_batch_size=16",
        "precision=bf16_autocast,micro_batch_size=8",
        "precision=bf16_autocast,micro_batch_size=16",
    ]
    assert all(point.config.max_steps == 20 for point in points)


def _cell(values: list[float]) -> Cell:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return Cell("s", n=len(values), headline=mean, mean=mean, std=std)


def test_the_ratio_interval_matches_an_independent_computation():
    a, b = [10.2, 10.9, 10.4, 10.6], [12.1, 11.7, 12.6]
    ratio, low, high = ratio_interval(_cell(b), _cell(a))
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va, vb = stats.tvar(a) / (len(a) * ma**2), stats.tvar(b) / (len(b) * mb**2)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert ratio == pytest.approx(mb / ma, rel=1e-12)
    assert (low, high) == pytest.approx((mb / ma * math.exp(-half), mb / ma * math.exp(half)), rel=1e-9)
    assert verdict(low, high, higher_is_better=True) == "higher, better"
    assert verdict(low, high, higher_is_better=False) == "higher, worse"


def test_a_change_within_the_noise_is_no_change():
    noisy, base = _cell([9.0, 12.0, 10.5]), _cell([10.0, 11.0, 10.2])
    _, low, high = ratio_interval(noisy, base)
    assert low < 1 < high and verdict(low, high, True) == "no change"
    assert verdict(None, None, True).startswith("no interval")


def test_different_hardware_is_stated():
    comparison = compare([EXAMPLES / "valid" / "cpu-tiny", EXAMPLES / "valid" / "gpu-h100-gpt2"])
    assert any(caveat.startswith("the hardware differs") for caveat in comparison.caveats)
    assert any(line.startswith("precision: fp32, bf16_autocast") for line in comparison.differences)


def test_report_of_an_example_bundle(tmp_path):
    from trainmark.scorer.report import bundle_report_html

    html, report = bundle_report_html(EXAMPLES / "valid" / "gpu-h100-gpt2")
    # the example says it is synthetic: every gate but that one passes, and it is never ranked
    assert not report.ranked and [g.code for g in report.gates if not g.passed] == ["provenance"]
    assert html.count('<svg class="plot"') == 4  # loss, step time, power and memory, the 3 runs in each
    assert re.search(r'data-stage="forward".*?\d', html, re.S)
    assert "<script" not in html
    assert score_bundle(EXAMPLES / "valid" / "gpu-h100-gpt2").score == report.score


def test_interval_plot_fits_long_configuration_labels():
    from trainmark.scorer.plots import interval_plot

    label = "precision bf16_autocast, micro batch 16, accumulation 1"
    svg = interval_plot("steps/s", [(label, 0.07, 0.05, 0.1), ("short", 1.04, 0.78, 1.38)])
    width = float(re.search(r'viewBox="0 0 ([\d.]+) ', svg).group(1))
    right_edge = float(re.search(r'<text x="([\d.]+)"[^>]*text-anchor="end">' + label, svg).group(1))
    assert right_edge - 6.2 * len(label) >= 0  # the whole label lies inside the figure
    axis = [float(x) for x in re.findall(r'<line x1="([\d.]+)" y1="30"', svg)]
    assert axis and width - max(axis) >= 0 and max(axis) - min(axis) >= 200  # and the axis keeps its room
