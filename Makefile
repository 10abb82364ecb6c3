# The two commands: `make demo` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
EXTRAS := dev,langchain,langgraph,openai-agents,serve,web,signing,postgres,secrets,mcp

.PHONY: demo test setup lint typecheck pytest screenshots bench clean system-deps

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	@touch $(STAMP)

setup: $(STAMP)

# What tests need from the system, installed only when missing. PostgreSQL: the server programs
# for the suite's throwaway cluster (tests/pg.py; Debian keeps them in /usr/lib/postgresql/N/bin),
# without the package's default cluster (the tests start their own, as the `postgres` user).
system-deps:
	@command -v tmux >/dev/null 2>&1 || { echo "installing tmux"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux) >/dev/null; }
	@{ ls /usr/lib/postgresql/*/bin/initdb || command -v initdb; } >/dev/null 2>&1 || { \
	  echo "installing postgresql"; mkdir -p /etc/postgresql-common/createcluster.d && \
	  echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/sentinel-tests.conf && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null; }

demo: setup
	$(PY) -m sentinel.cli demo

lint: setup
	$(VENV)/bin/ruff check sentinel sentinel_tui tests benchmarks scripts

typecheck: setup
	$(VENV)/bin/mypy sentinel

pytest: setup system-deps
	$(VENV)/bin/pytest -q -n auto --durations=20

test: lint typecheck pytest

screenshots: setup
	@command -v rsvg-convert >/dev/null 2>&1 || { echo "installing librsvg2-bin"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq librsvg2-bin) >/dev/null; }
	$(PY) scripts/screenshots.py

# Run as modules (python -m benchmarks.NAME): benchmarks/queue.py must not shadow the stdlib queue.
bench: setup
	@for b in benchmarks/[a-z]*.py; do n=$$(basename $$b .py); echo "== benchmarks.$$n"; \
	  $(PY) -m benchmarks.$$n || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .bench
