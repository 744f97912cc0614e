# trainmark: `make demo` sets everything up and runs the main job; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT := demo-output

.PHONY: setup demo test spec examples bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("trainmark needs Python >= 3.11.4, found " + sys.version.split()[0]) if sys.version_info < (3, 11, 4) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,runner,server]'
	touch $(STAMP)

setup: $(STAMP)

## The main job, end to end on this machine: train the tiny preset three times for real (a bundle),
## validate it, score it, show it, pack it and check the archive; then the GPU example beside it.
demo: $(STAMP)
	rm -rf $(DEMO_OUT) && mkdir -p $(DEMO_OUT)
	$(BIN)/trainmark run --preset tiny --repeats 3 --out $(DEMO_OUT)/tiny
	$(BIN)/trainmark validate $(DEMO_OUT)/tiny
	$(BIN)/trainmark score $(DEMO_OUT)/tiny
	$(BIN)/trainmark bundle show $(DEMO_OUT)/tiny
	$(BIN)/trainmark bundle pack $(DEMO_OUT)/tiny -o $(DEMO_OUT)/tiny.tar.gz
	$(BIN)/trainmark validate $(DEMO_OUT)/tiny.tar.gz --jsonschema
	$(BIN)/trainmark score spec/examples/valid/gpu-h100-gpt2
	@echo "demo finished: $(DEMO_OUT)/tiny is a real bundle of three tiny runs, validated, scored and packed"

test: $(STAMP)
	$(BIN)/python -m pytest

## Regenerate the models, constraint tables, JSON Schemas and the field reference from the schema.
spec: $(STAMP)
	$(BIN)/python -m spec.codegen
	$(BIN)/trainmark schema --format markdown > docs/reference.md

examples: $(STAMP)
	$(BIN)/python -m spec.examples.generate

bench: $(STAMP)
	$(BIN)/python bench/validate.py
	$(BIN)/python bench/score.py
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .hypothesis
