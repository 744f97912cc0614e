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
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## The main job, end to end on this machine. It grows as the parts land; today: validate the
## example bundles, show what one reports, score both, pack one for transport and check the archive.
demo: $(STAMP)
	rm -rf $(DEMO_OUT) && mkdir -p $(DEMO_OUT)
	$(BIN)/trainmark validate spec/examples/valid/cpu-tiny
	$(BIN)/trainmark validate spec/examples/valid/gpu-h100-gpt2
	$(BIN)/trainmark bundle show spec/examples/valid/gpu-h100-gpt2
	$(BIN)/trainmark score spec/examples/valid/gpu-h100-gpt2
	$(BIN)/trainmark score spec/examples/valid/cpu-tiny
	$(BIN)/trainmark bundle pack spec/examples/valid/gpu-h100-gpt2 -o $(DEMO_OUT)/gpu-h100-gpt2.tar.gz
	$(BIN)/trainmark validate $(DEMO_OUT)/gpu-h100-gpt2.tar.gz --jsonschema
	@echo "demo finished: bundles validated, scored, and packed into $(DEMO_OUT)/"

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

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .hypothesis
