# Set-up and the two everyday commands. `make run` and `make test` each install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Why PostgreSQL could not be installed (read by tests/test_postgres_tracking.py to say why it skips).
PG_MISSING := $(VENV)/postgres-missing
# Options for `tuneorch run` in `make run`, e.g. make run RUN_ARGS="--set num_samples=4".
RUN_ARGS ?=

.PHONY: install postgres run test bench-quick

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: the CPU wheel 2.13.0; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test,bench]"
	touch $(STAMP)

install: $(STAMP) postgres

# PostgreSQL's server binaries, for the test that runs `mlflow server` on a real PostgreSQL.
# Nothing to do when they are there (on PATH or in Debian's /usr/lib/postgresql/<version>/bin).
# Otherwise apt-get installs them where it can (as root, Debian/Ubuntu), with the package's
# default cluster turned off (postgresql-common's createcluster.d); where it cannot, the reason
# goes to $(PG_MISSING) and the test is skipped with it: never a failure of `make`.
postgres: $(STAMP)
	@if command -v postgres >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
	  rm -f $(PG_MISSING); \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "PostgreSQL is not installed and there is no apt-get here: install it (postgres, initdb on PATH)" | tee $(PG_MISSING); \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "PostgreSQL is not installed and apt-get needs root: run 'sudo apt-get install -y postgresql' once" | tee $(PG_MISSING); \
	else \
	  echo "installing PostgreSQL with apt-get (once; no cluster is created or started: the test starts its own)"; \
	  mkdir -p /etc/postgresql-common/createcluster.d; \
	  printf '# tuneorch: no main cluster (tests start their own)\ncreate_main_cluster = false\n' \
	    > /etc/postgresql-common/createcluster.d/tuneorch.conf; \
	  ( export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 \
	    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends postgresql >/dev/null; } ) \
	  && rm -f $(PG_MISSING) \
	  || echo "PostgreSQL could not be installed with apt-get (no package index or no network?)" | tee $(PG_MISSING); \
	fi

# The main job: tune a torch MLP on digits on a local Ray, recorded in ./runs/mlflow.db, the best
# model registered in MLflow (digits-mlp, alias champion).
run: $(STAMP)
	$(BIN)/tuneorch run examples/digits_mlp.yaml $(RUN_ARGS)

# Unit, numerics and integration tests (real Ray, real MLflow server, real PostgreSQL), slow ones
# included, then the quick benchmark tier as a smoke test (it must finish and write its tables).
# PYTHONFAULTHANDLER: a crash, also after pytest's summary, prints every thread's Python stack.
test: install
	PYTHONFAULTHANDLER=1 $(BIN)/python -m pytest
	$(BIN)/python -m benchmarks run --suite quick --out $(VENV)/bench-smoke

bench-quick: install
	$(BIN)/python -m benchmarks run --suite quick
