# specflow: `make demo` sets up .venv and runs the embedded demo; `make test` sets up and tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WORK ?= work

.PHONY: setup demo test lint bench clean

$(BIN)/specflow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch pinned first: a local CPU wheel on the build machines, the CUDA build elsewhere
	$(BIN)/python -m pip install "torch==2.13.0"
	$(BIN)/python -m pip install -e ".[test,umap]"
	touch $@

setup: $(BIN)/specflow

demo: setup
	$(BIN)/specflow demo --workdir $(WORK)

test: setup
	$(BIN)/ruff check specflow tests benchmarks
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/data.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf $(WORK) .pytest_cache
