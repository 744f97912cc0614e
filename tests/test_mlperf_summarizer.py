"""MLCommons' official figures, reproduced by the MLPerf importer on real result folders.

The oracle is ../shared/data/mlperf-corpus.json: the official figures of the 47 result folders of
mlperf-corpus.tar.gz, computed with MLCommons' result summarizer rules (its "about" says how). The
layouts the corpus lacks (stems with extra digits, raw duplicates, several nodes, switches, a window
of zero length, readings out of order or outside the window, runs that did not converge) are made
here by renaming and splitting copies of the shared sets; the shared files are never modified.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trainmark.spec.bundle import read_manifest
from trainmark.spec.errors import TrainmarkError
from trainmark.spec.importers.mlperf import import_mlperf
from trainmark.spec.validate import validate_bundle

from tests.bundles import MLPERF_DATA

CORPUS = MLPERF_DATA.parent / "mlperf-corpus.tar.gz"
OFFICIAL = {
    entry["set"]: entry for entry in json.loads((MLPERF_DATA.parent / "mlperf-corpus.json").read_text())["sets"]
}
LENOVO = MLPERF_DATA / "lenovo_v5.0_llama2_70b_lora"
LENOVO_MINUTES, LENOVO_ENERGY_J, LENOVO_SCALING = 11.324490299145298, 6114237.986822284, 1.0188034188034187


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    with tarfile.open(CORPUS) as archive:
        archive.extractall(folder, filter="data")
    return folder


def test_the_corpus_has_every_set_of_its_index(corpus):
    assert len(OFFICIAL) == 47
    assert sorted(path.name for path in corpus.iterdir()) == sorted(OFFICIAL)


def _reported(bundle: Path) -> dict:
    _, manifest = read_manifest(bundle)
    return {metric.name: metric for metric in manifest.source.reported}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_every_corpus_set_imports_validates_and_reproduces_mlcommons(corpus, tmp_path, name):
    official = OFFICIAL[name]
    import_mlperf(corpus / name, tmp_path / "bundle")
    report = validate_bundle(tmp_path / "bundle", full_jsonschema=True)
    assert report.valid, report.findings[:5]
    reported = _reported(tmp_path / "bundle")
    assert reported["time_to_train"].value / 60 == pytest.approx(official["time_to_train_min"], rel=1e-9, abs=0)
    if official["energy_j"] is None:
        assert reported["total_energy"].value is None
        assert reported["total_energy"].unavailable_reason == "this result has no MLPerf power logs (no power/ folder)"
    else:
        assert reported["total_energy"].value == pytest.approx(official["energy_j"], rel=1e-9, abs=0)
    _, manifest = read_manifest(tmp_path / "bundle")
    stems = sorted(path.stem for path in (corpus / name).glob("result_*.txt"))
    assert sorted(run.run_id for run in manifest.runs) == stems  # run ids are the file stems
    dropped = reported["time_to_train"].note.split("dropped as not converged or unreadable: ")[1]
    assert (0 if dropped == "none" else len(dropped.split(", "))) == official["dropped_runs"]
    if (corpus / name / "power").is_dir():  # no bundle says "no power logs" when it has some
        assert "no MLPerf power logs" not in (tmp_path / "bundle/manifest.json").read_text()


# ---------------------------------------------------------------- layouts made from the shared sets


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _rename_run(folder: Path, old: str, new: str) -> None:
    (folder / f"{old}.txt").rename(folder / f"{new}.txt")
    if (folder / "power" / old).is_dir():
        (folder / "power" / old).rename(folder / "power" / new)


def _times_min(bundle: Path) -> dict[str, float]:
    _, manifest = read_manifest(bundle)
    return {run.run_id: next(m.value for m in run.metrics if m.name == "time_to_train") / 60 for run in manifest.runs}


def _energy(bundle: Path, run_id: str, scope: str = "global") -> list:
    _, manifest = read_manifest(bundle)
    run = next(run for run in manifest.runs if run.run_id == run_id)
    return [m for m in run.metrics if m.name == "total_energy" and m.scope == scope]


def _issues(bundle: Path, code: str) -> list:
    _, manifest = read_manifest(bundle)
    return [issue for issue in manifest.source.issues or [] if issue.code == code]


def test_run_ids_are_stems_and_power_is_found_under_them(tmp_path):
    folder = _copy(LENOVO, tmp_path / "in")
    stem = "result_5759-240517075402311260012_2"
    _rename_run(folder, "result_2", stem)
    import_mlperf(folder, tmp_path / "out")
    assert validate_bundle(tmp_path / "out").valid
    assert stem in _times_min(tmp_path / "out")
    [energy] = _energy(tmp_path / "out", stem)
    assert energy.value is not None and energy.method == "sampled"
    assert (tmp_path / "out" / "runs" / stem / "power.jsonl").is_file()
    assert (tmp_path / "out" / "source/power" / stem / "node_0.txt").is_file()
    reported = _reported(tmp_path / "out")  # renaming changes nothing MLCommons reports
    assert reported["time_to_train"].value / 60 == pytest.approx(LENOVO_MINUTES, rel=1e-9, abs=0)
    assert reported["total_energy"].value == pytest.approx(LENOVO_ENERGY_J, rel=1e-9, abs=0)


def test_a_raw_duplicate_counts_officially_and_not_as_a_run(tmp_path):
    folder = _copy(LENOVO, tmp_path / "in")
    for index in range(10):
        _rename_run(folder, f"result_{index}", f"result_lenovo_{index:02d}")
    shutil.copyfile(folder / "result_lenovo_06.txt", folder / "result_lenovo_raw_06.txt")
    shutil.copytree(folder / "power/result_lenovo_06", folder / "power/result_lenovo_raw_06")
    import_mlperf(folder, tmp_path / "out")
    assert validate_bundle(tmp_path / "out").valid
    times = _times_min(tmp_path / "out")
    assert len(times) == 10 and "result_lenovo_raw_06" not in times  # trainmark's runs: one each
    [duplicate] = _issues(tmp_path / "out", "duplicate-file")
    assert duplicate.file == "source/result_lenovo_raw_06.txt" and "result_lenovo_06.txt" in duplicate.message
    everything = sorted([*times.values(), times["result_lenovo_06"]])  # MLCommons counts all 11 files
    expected = sum(everything[1:-1]) / 9 * LENOVO_SCALING
    assert _reported(tmp_path / "out")["time_to_train"].value / 60 == pytest.approx(expected, rel=1e-12)
    assert expected != pytest.approx(LENOVO_MINUTES, rel=1e-9)  # the duplicate does move the official figure


def _node_lines(path: Path, change) -> str:
    out = []
    for line in path.read_text().splitlines(keepends=True):
        head, token, body = line.partition(":::MLLOG ")
        if token:
            event = json.loads(body)
            event = change(event)
            if event is None:
                continue
            line = head + token + json.dumps(event) + "\n"
        out.append(line)
    return "".join(out)


def _without_host(event):
    if event["key"] == "power_reading":
        event["metadata"] = ""
    return event


def test_several_nodes_numbered_by_position_with_empty_metadata(tmp_path):
    folder = _copy(LENOVO, tmp_path / "in")
    readings = 0
    for power in sorted((folder / "power").iterdir()):
        original = power / "node_0.txt"
        text = _node_lines(original, _without_host)
        original.unlink()
        (power / "node_1.txt").write_text(text)
        (power / "node_2.txt").write_text(text)
        readings += 2 * text.count('"power_reading"')
    import_mlperf(folder, tmp_path / "out")
    assert validate_bundle(tmp_path / "out").valid
    _, manifest = read_manifest(tmp_path / "out")
    assert [c.name for c in manifest.methodology.channels] == ["mlperf_node_0_power", "mlperf_node_1_power"]
    assert manifest.system.node_count == 2
    nodes = _energy(tmp_path / "out", "result_0", "node")
    assert [m.node for m in nodes] == [0, 1] and nodes[0].value == nodes[1].value
    mismatches = _issues(tmp_path / "out", "type-mismatch")
    assert len(mismatches) == 20  # once per file (2 nodes x 10 runs), not once per line
    assert sum(issue.count for issue in mismatches) == readings
    reported = _reported(tmp_path / "out")
    assert reported["total_energy"].value == pytest.approx(2 * LENOVO_ENERGY_J, rel=1e-9, abs=0)


def test_a_switch_adds_its_estimate_and_never_its_readings(tmp_path):
    folder = _copy(LENOVO, tmp_path / "in")
    for power in sorted((folder / "power").iterdir()):
        node = (power / "node_0.txt").read_text()
        estimate = (
            ':::MLLOG {"namespace": "", "time_ms": 1745519750000, "event_type": "POINT_IN_TIME", '
            '"key": "interconnect_power_est", "value": 500.0, "metadata": {}}\n'
        )
        # a switch log with its own power_reading lines; the estimate comes after its conversion_eff (MLCommons
        # reads a switch log in file order and stops at the first interconnect_power_est)
        (power / "sw_0.txt").write_text(node + estimate)
    import_mlperf(folder, tmp_path / "out")
    assert validate_bundle(tmp_path / "out").valid
    reported = _reported(tmp_path / "out")
    official_s = reported["time_to_train"].value
    assert official_s / 60 == pytest.approx(LENOVO_MINUTES, rel=1e-9, abs=0)
    # conversion_eff (0.94, from the copied node log) x 500 W x time to train, averaged like the rest
    assert reported["total_energy"].value == pytest.approx(LENOVO_ENERGY_J + 0.94 * 500 * official_s, rel=1e-9, abs=0)
    [switch] = _energy(tmp_path / "out", "result_0", "interconnect")
    assert switch.method == "modeled" and switch.value == pytest.approx(
        0.94 * 500 * _times_min(tmp_path / "out")["result_0"] * 60
    )
    _, manifest = read_manifest(tmp_path / "out")
    assert "mlperf_switch_0_power" in [c.name for c in manifest.methodology.channels]
    excluded = [i for i in _issues(tmp_path / "out", "excluded-data") if "switch" in i.message]
    assert len(excluded) == 10 and all(i.file.endswith("sw_0.txt") for i in excluded)


def test_a_zero_length_window_makes_the_energy_null_with_a_reason(tmp_path):
    folder = _copy(LENOVO, tmp_path / "in")
    node = folder / "power/result_0/node_0.txt"
    start = next(
        json.loads(line.partition(":::MLLOG ")[2])["time_ms"]
        for line in node.read_text().splitlines()
        if '"power_measurement_start"' in line
    )

    def collapse(event):
        if event["key"] == "power_measurement_stop":
            event["time_ms"] = start
        return event

    node.write_text(_node_lines(node, collapse))
    import_mlperf(folder, tmp_path / "out")
    assert validate_bundle(tmp_path / "out").valid
    [energy] = _energy(tmp_path / "out", "result_0")
    assert energy.value is None and "zero length" in energy.unavailable_reason
    [undefined] = _issues(tmp_path / "out", "undefined-value")
    assert undefined.file == "source/power/result_0/node_0.txt"
    reported = _reported(tmp_path / "out")  # result_0 is one of the runs the olympic selection keeps
    assert reported["total_energy"].value is None and "zero length" in reported["total_energy"].unavailable_reason
    assert "no MLPerf power logs" not in (tmp_path / "out/manifest.json").read_text()


def test_readings_count_in_time_order_and_only_inside_the_window(tmp_path):
    folder = _copy(LENOVO, tmp_path / "in")
    node = folder / "power/result_3/node_0.txt"
    lines = node.read_text().splitlines(keepends=True)
    readings = [line for line in lines if '"power_reading"' in line]
    others = [line for line in lines if '"power_reading"' not in line]
    outside = []
    for line in others:
        event = json.loads(line.partition(":::MLLOG ")[2])
        if event["key"] in ("power_measurement_start", "power_measurement_stop"):
            shift = -5000 if event["key"] == "power_measurement_start" else 5000
            outside.append(
                ":::MLLOG "
                + json.dumps({**event, "key": "power_reading", "value": 1e6, "time_ms": event["time_ms"] + shift})
                + "\n"
            )
    node.write_text("".join(others[:2] + outside + readings[::-1] + others[2:]))  # reversed, two far outside
    import_mlperf(folder, tmp_path / "out")
    import_mlperf(LENOVO, tmp_path / "original")
    assert [m.value for m in _energy(tmp_path / "out", "result_3")] == [
        m.value for m in _energy(tmp_path / "original", "result_3")
    ]
    assert _reported(tmp_path / "out")["total_energy"].value == pytest.approx(LENOVO_ENERGY_J, rel=1e-9, abs=0)
    [excluded] = [i for i in _issues(tmp_path / "out", "excluded-data") if "outside" in i.message]
    assert excluded.file == "source/power/result_3/node_0.txt" and excluded.message.startswith("2 power_reading")


def _set_status(path: Path, status: str) -> None:
    path.write_text(path.read_text().replace('"status": "success"', f'"status": "{status}"'))


def test_unet3d_drops_four_and_four_and_failed_runs_count_as_slowest(corpus, tmp_path):
    name = "v3.1_Dell_XE8640x4H100-SXM-80GB_unet3d"
    folder = _copy(corpus / name, tmp_path / "in")
    import_mlperf(folder, tmp_path / "all")
    times = _times_min(tmp_path / "all")
    assert len(times) == 40
    scaling = json.loads((folder / "scaling.json").read_text())["scaling_factor"]
    ordered = sorted(times.values())
    assert _reported(tmp_path / "all")["time_to_train"].value / 60 == pytest.approx(
        sum(ordered[4:36]) / 32 * scaling, rel=1e-12
    )
    fastest = min(times, key=times.get)
    _set_status(folder / f"{fastest}.txt", "aborted")  # a failed run takes a slowest place
    (folder / "result_7.txt").write_text(
        "".join(
            line for line in (folder / "result_7.txt").read_text().splitlines(keepends=True) if '"run_stop"' not in line
        )
    )
    import_mlperf(folder, tmp_path / "failed")
    rest = sorted(value for run_id, value in times.items() if run_id not in (fastest, "result_7"))
    reported = _reported(tmp_path / "failed")["time_to_train"]
    assert reported.value / 60 == pytest.approx(sum(rest[4:36]) / 32 * scaling, rel=1e-12)
    dropped = ", ".join(sorted([fastest, "result_7"], key=lambda stem: int(stem[7:])))
    assert f"dropped as not converged or unreadable: {dropped}" in reported.note
    for run_id in ("result_0", "result_1", "result_2"):
        _set_status(folder / f"{run_id}.txt", "aborted")
    import_mlperf(folder, tmp_path / "too-many")
    reported = _reported(tmp_path / "too-many")["time_to_train"]
    assert reported.value is None and "at most 4" in reported.unavailable_reason


def test_a_failed_import_leaves_nothing_behind(tmp_path):
    folder = _copy(LENOVO, tmp_path / "in")
    (folder / "result_9.txt").write_text("no :::MLLOG events here, the log was cut off\n")
    out = tmp_path / "place" / "bundle"
    with pytest.raises(TrainmarkError, match="no :::MLLOG events"):
        import_mlperf(folder, out)
    assert not out.exists() and list((tmp_path / "place").iterdir()) == []


def test_a_stem_that_is_no_identifier_is_refused_before_anything_is_written(tmp_path):
    folder = _copy(LENOVO, tmp_path / "in")
    _rename_run(folder, "result_1", "result_" + "9" * 70)
    with pytest.raises(TrainmarkError, match="rename the file"):
        import_mlperf(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_official_figures_say_what_they_are(tmp_path):
    import_mlperf(LENOVO, tmp_path / "out")
    reported = _reported(tmp_path / "out")
    for metric in reported.values():
        assert (
            metric.method == "derived"
            and "MLCommons" in metric.tool
            and metric.note.startswith("what MLCommons reports")
        )
    assert re.search(r"scaling_factor \(1\.0188034188034187\)", reported["time_to_train"].source)


def test_a_run_without_node_logs_in_a_power_result_says_so(tmp_path):
    folder = _copy(LENOVO, tmp_path / "in")
    shutil.rmtree(folder / "power/result_4")
    import_mlperf(folder, tmp_path / "out")
    [energy] = _energy(tmp_path / "out", "result_4")
    assert energy.value is None and energy.unavailable_reason.startswith("no power/result_4/node_*.txt for this run")
    official = _reported(tmp_path / "out")  # result_4 is one of the runs the time selection keeps
    assert "result_4" in official["time_to_train"].note.split("runs kept: ")[1].split(";")[0]
    assert official["total_energy"].value is None
    assert official["total_energy"].unavailable_reason.startswith("result_4: no power/result_4/node_*.txt")


def test_an_output_that_is_not_empty_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(TrainmarkError, match="already exists and is not an empty directory"):
        import_mlperf(LENOVO, out)
    assert [path.name for path in out.iterdir()] == ["notes.txt"] and len(list(tmp_path.iterdir())) == 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=80),
            st.builds(lambda body: ":::MLLOG " + body, st.text(max_size=80)),
            st.builds(
                lambda key, time, metadata: (
                    ":::MLLOG " + json.dumps({"key": key, "time_ms": time, "value": 1.0, "metadata": metadata})
                ),
                st.one_of(st.text(max_size=8), st.integers()),
                st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=4)),
                st.one_of(st.text(max_size=4), st.dictionaries(st.text(max_size=4), st.integers())),
            ),
        ),
        max_size=20,
    )
)
def test_any_lines_read_into_events_and_issues_never_an_exception(lines):
    import tempfile

    from trainmark.spec.importers.mlperf_log import read_log
    from trainmark.spec.importers.mlperf_summarizer import node_window, time_to_train

    issues = []
    with tempfile.TemporaryDirectory() as scratch:
        file = Path(scratch) / "log.txt"
        file.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
        log = read_log(file, "source/log.txt", lambda *args, **kwargs: issues.append((args, kwargs)))
    time_to_train(log)
    node_window(log)
    assert all(isinstance(event.time_ms, float) and isinstance(event.metadata, dict) for event in log.events)
    assert all(kwargs.get("count", 1) >= 1 for _, kwargs in issues)


def test_garbage_numbers_are_issues_and_never_a_crash(tmp_path):
    folder = _copy(LENOVO, tmp_path / "in")
    result = folder / "result_1.txt"
    result.write_text(
        result.read_text() + ':::MLLOG {"key": "eval_accuracy", "time_ms": 1e300, "value": 1, '
        '"metadata": {}}\n:::MLLOG {"key": "seed", "time_ms": -5, "value": 1, "metadata": {}}\n'
    )
    node = folder / "power/result_2/node_0.txt"
    lines = node.read_text().splitlines(keepends=True)
    inside = json.loads(lines[5].partition(":::MLLOG ")[2])["time_ms"] + 500  # between two real readings
    node.write_text(
        "".join(lines[:6]) + f':::MLLOG {{"key": "power_reading", "time_ms": {inside}, "value": 1e308, '
        '"metadata": ""}\n' + "".join(lines[6:])
    )
    import_mlperf(folder, tmp_path / "out")
    assert validate_bundle(tmp_path / "out").valid
    [energy] = _energy(tmp_path / "out", "result_2")
    assert energy.value is None and "not a number a bundle can hold" in energy.unavailable_reason
    messages = [issue.message for issue in _issues(tmp_path / "out", "type-mismatch")]
    assert any("1e+300, not a Unix time" in message for message in messages)
    assert any("outside the standard's bounds" in message for message in messages)


def test_bundle_show_puts_mlcommons_figures_beside_the_runs(tmp_path):
    from typer.testing import CliRunner

    from trainmark.cli import app

    import_mlperf(LENOVO, tmp_path / "out")
    result = CliRunner().invoke(app, ["bundle", "show", str(tmp_path / "out")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("reported")]
    assert "time_to_train 11 min 19 s" in line and "total_energy 6.11 MJ (1.7 kWh)" in line  # human units
    shown = json.loads(CliRunner().invoke(app, ["bundle", "show", str(tmp_path / "out"), "--json"]).output)
    reported = shown["reported"]  # the exact figures are in --json
    assert reported["time_to_train"]["value"] == pytest.approx(679.5, rel=1e-3)
    assert reported["total_energy"]["value"] == pytest.approx(6.114e6, rel=1e-3)


def test_a_link_among_the_originals_is_refused_and_leaves_nothing(tmp_path):
    folder = _copy(LENOVO, tmp_path / "in")
    (folder / "power/result_3/node_0.txt").unlink()
    (folder / "power/result_3/node_0.txt").symlink_to(tmp_path / "elsewhere.txt")
    (tmp_path / "elsewhere.txt").write_text("not part of the result\n")
    with pytest.raises(TrainmarkError, match="is a link"):
        import_mlperf(folder, tmp_path / "place" / "out")
    assert list((tmp_path / "place").iterdir()) == []
