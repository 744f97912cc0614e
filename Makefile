# trainmark: `make demo` sets everything up and runs the main job; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT := demo-output

.PHONY: setup demo test test-fast lint spec examples bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("trainmark needs Python >= 3.11.4, found " + sys.version.split()[0]) if sys.version_info < (3, 11, 4) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,runner,server]'
	touch $(STAMP)

setup: $(STAMP)

## The main job, end to end on this machine: train the tiny preset three times for real (a bundle),
## validate, score and show it; import a real MLPerf Training result; submit both to a local
## registry and print its leaderboard.
SHARED_DATA ?= $(or $(TRAINMARK_SHARED_DATA),$(firstword $(wildcard ../shared/data /work/shared/data)))
MLPERF_SET := lenovo_v5.0_llama2_70b_lora
DEMO_REGISTRY := --db sqlite:///$(DEMO_OUT)/registry/registry.db --blobs $(DEMO_OUT)/registry/blobs

demo: $(STAMP)
	rm -rf $(DEMO_OUT) && mkdir -p $(DEMO_OUT)
	$(BIN)/trainmark run --preset tiny --repeats 3 --set 'submitter=make demo' --out $(DEMO_OUT)/tiny
	$(BIN)/trainmark validate $(DEMO_OUT)/tiny
	$(BIN)/trainmark score $(DEMO_OUT)/tiny
	$(BIN)/trainmark bundle show $(DEMO_OUT)/tiny
	$(BIN)/trainmark bundle pack $(DEMO_OUT)/tiny -o $(DEMO_OUT)/tiny.tar.gz
	$(BIN)/trainmark validate $(DEMO_OUT)/tiny.tar.gz --jsonschema
	@test -n "$(SHARED_DATA)" || { echo "the shared MLPerf data was not found: set SHARED_DATA=/path/to/shared/data"; exit 1; }
	$(BIN)/trainmark import mlperf $(SHARED_DATA)/mlperf/$(MLPERF_SET) --out $(DEMO_OUT)/$(MLPERF_SET)
	$(BIN)/trainmark score $(DEMO_OUT)/$(MLPERF_SET)
	$(BIN)/trainmark registry init $(DEMO_REGISTRY)
	$(BIN)/trainmark submit $(DEMO_OUT)/tiny.tar.gz $(DEMO_REGISTRY)
	$(BIN)/trainmark submit $(DEMO_OUT)/$(MLPERF_SET) $(DEMO_REGISTRY)
	$(BIN)/trainmark submit spec/examples/valid/gpu-h100-gpt2 $(DEMO_REGISTRY)
	$(BIN)/trainmark leaderboard $(DEMO_REGISTRY)
	@echo
	@echo "demo finished: $(DEMO_OUT)/tiny is a real bundle of three tiny runs; $(DEMO_OUT)/$(MLPERF_SET) is a real"
	@echo "MLPerf result as a bundle; both are in the registry at $(DEMO_OUT)/registry, ranked each within its workload,"
	@echo "with the synthetic GPU example (stored, never ranked: trainmark leaderboard --all shows it)."
	@echo "See the leaderboard in a browser:  $(BIN)/trainmark serve $(DEMO_REGISTRY)   then open http://127.0.0.1:8000/"

## Installs what the tests need beyond pip (PostgreSQL server, Chromium and its driver) when it is
## missing: as root from Debian's packages; otherwise it names the command and stops.
test: $(STAMP)
	tools/test-prerequisites
	$(BIN)/python -m pytest

## Everything but the tests that train a model for real or are slow by nature (a real browser, a process
## per command or worker): pytest -m "not training and not slow", one test file per CPU (pytest-xdist, at
## most 4 processes, each with its own PostgreSQL cluster). `make test` runs them all, in one process.
test-fast: $(STAMP)
	tools/test-prerequisites
	$(BIN)/python -m pytest -m "not training and not slow" -n auto --maxprocesses 4 --dist loadfile

## ruff's lint rules and its formatter, as CI runs them (pyproject.toml [tool.ruff]); `ruff format .` fixes the format.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Regenerate the models, constraint tables, JSON Schemas and the field reference from the schema.
spec: $(STAMP)
	$(BIN)/python -m tools.codegen
	$(BIN)/trainmark schema --format markdown > docs/reference.md

examples: $(STAMP)
	$(BIN)/python spec/examples/generate.py

bench: $(STAMP)
	$(BIN)/python bench/validate.py
	$(BIN)/python bench/score.py
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/track_overhead.py
	$(BIN)/python bench/registry.py
	$(BIN)/python bench/mlperf_import.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .hypothesis
