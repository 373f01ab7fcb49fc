# specflow: `make demo` sets up .venv and runs the embedded demo; `make test` sets up and tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WORK ?= work

.PHONY: setup demo test lint bench clean postgres

$(BIN)/specflow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch pinned first: a local CPU wheel on the build machines, the CUDA build elsewhere
	$(BIN)/python -m pip install "torch==2.13.0"
	$(BIN)/python -m pip install -e ".[test,docs,beamline,dask,live,umap]"
	touch $@

setup: $(BIN)/specflow

demo: setup
	$(BIN)/specflow demo --workdir $(WORK)

# The PostgreSQL tests need the server binaries: Debian's package, installed here when
# missing (needs root or sudo); the tests then start their own throwaway server on loopback.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  { echo "installing Debian's postgresql (server binaries for the tests)"; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends postgresql; }

test: setup postgres
	$(BIN)/ruff check specflow tests benchmarks
	SPECFLOW_REQUIRE_POSTGRES=1 $(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/data.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/soak.py

clean:
	rm -rf $(WORK) .pytest_cache
