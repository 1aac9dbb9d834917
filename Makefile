# Set-up and the two everyday commands. `make run` and `make test` each install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test bench-quick

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: the CPU wheel 2.13.0; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test,bench]"
	touch $(STAMP)

install: $(STAMP)

# The main job: tune a torch MLP on digits on a local Ray, recorded in ./runs/mlflow.db.
run: install
	$(BIN)/tuneorch run examples/digits_mlp.yaml

# Unit, numerics and integration tests (real Ray, real MLflow server), slow ones included,
# then the quick benchmark tier as a smoke test (it must finish and write its tables).
test: install
	$(BIN)/python -m pytest
	$(BIN)/python -m benchmarks run --suite quick --out $(VENV)/bench-smoke

bench-quick: install
	$(BIN)/python -m benchmarks run --suite quick
