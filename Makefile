# `make reproduce` and `make test` create .venv on first use and install recmine into it.
PYTHON ?= python3
VENV   ?= .venv
EXTRAS ?= opencl,rtl,cluster,dev
BIN    := $(VENV)/bin

.PHONY: setup reproduce reproduce-full test bench gate asv clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	$(BIN)/python -m devices.opencl   # the pip PoCL cannot build kernels on some CPUs: see the README
	touch $@

reproduce: setup
	$(BIN)/recmine reproduce --quick

reproduce-full: setup
	$(BIN)/recmine reproduce --full

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m pytest tests/benchmarks --benchmark-enable --benchmark-autosave -q

gate: setup
	$(BIN)/recmine gate --reference ci/reference.json

asv: setup
	$(BIN)/asv machine --yes
	$(BIN)/asv run --python=same --set-commit-hash $$(git rev-parse HEAD) --bench 'TimeFaery.time_run.*numpy/cpu/gaussian-25k'
	$(BIN)/asv publish

clean:
	rm -rf $(VENV) .asv .benchmarks
