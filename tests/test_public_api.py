"""`import trainmark`: one namespace, one public API, and a wheel whose only top-level name is `trainmark`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

import pytest

import trainmark
from tests.bundles import REPO, VALID_BUNDLES

CPU = next(path for path in VALID_BUNDLES if path.name == "cpu-tiny")


def test_every_public_name_resolves_and_is_documented():
    for name in trainmark.__all__:
        value = getattr(trainmark, name)
        assert name in dir(trainmark)
        if name != "SCHEMA_VERSION":
            assert (value.__doc__ or "").strip(), f"trainmark.{name} has no docstring"
    assert trainmark.SCHEMA_VERSION == json.loads((CPU / "manifest.json").read_text())["schema_version"]
    assert issubclass(trainmark.TrainmarkError, Exception)
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        trainmark.nonsense  # noqa: B018


def test_import_trainmark_loads_neither_torch_nor_the_models():
    code = (
        "import sys, trainmark; "
        "assert not {'torch', 'trainmark.spec.models', 'trainmark.scorer.score'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_validate_score_pack_open_and_finalize_through_the_one_namespace(tmp_path):
    report = trainmark.validate(str(CPU))
    assert report.valid and not report.findings
    scored = trainmark.score(CPU)
    assert 0 < scored.score <= 1
    archive = trainmark.pack(CPU, tmp_path / "cpu.tar.gz")
    with trainmark.open_bundle(archive) as root:
        assert (root / "manifest.json").read_bytes() == (CPU / "manifest.json").read_bytes()
    with pytest.raises(trainmark.TrainmarkError, match="already has a manifest.json"):
        trainmark.finalize(CPU)


@pytest.mark.slow  # builds a wheel and installs it into a new virtual environment
def test_the_wheel_installs_one_top_level_name(tmp_path):
    # Built from a copy, so that setuptools' build/ and egg-info never land in the checkout.
    source = tmp_path / "source"
    for part in ("trainmark", "spec", "scorer", "registry", "reference_runner"):
        shutil.copytree(REPO / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    for file in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / file, source / file)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("trainmark-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "site")
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"trainmark"}
    for data in (
        "trainmark/py.typed",
        "trainmark/spec/schema/trainmark.yaml",
        "trainmark/spec/jsonschema/manifest.schema.json",
        "trainmark/registry/templates/board.html",
        "trainmark/scorer/templates/report.html",
        "trainmark/registry/migrations/script.py.mako",
    ):
        assert data in names
    assert not any(name.startswith("trainmark/spec/examples/") for name in names)  # data, not package

    # The unpacked wheel alone (the checkout's editable install taken off the path) validates and scores.
    code = (
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__module__.lower()\n"
        "                    and 'editable' not in getattr(f, '__name__', '').lower()]\n"
        "sys.path[:] = [sys.argv[1]] + [p for p in sys.path if p not in ('', sys.argv[3])]\n"
        "import trainmark\n"
        "assert trainmark.__file__.startswith(sys.argv[1]), trainmark.__file__\n"
        "assert trainmark.validate(sys.argv[2]).valid\n"
        "print(trainmark.score(sys.argv[2]).score)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "site"), str(CPU), str(REPO)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == pytest.approx(trainmark.score(CPU).score)
