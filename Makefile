# Two commands on a fresh machine: `make run` (the whole system) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
# The TypeScript check's packages (tests/test_typescript.py), pinned in its package-lock.json;
# installed when npm is there (without Node.js the check is skipped, and says so).
NODE_DIR := tests/typescript
NODE_STAMP := $(if $(shell command -v npm),$(NODE_DIR)/node_modules/.installed)

# Python keeps its bytecode caches (__pycache__, ignored by git) whatever the shell says:
# the suite and `make run` start over a hundred Python processes, and without them each one
# compiles the project's modules again (a fifth of a second of CPU apiece).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run flask test fuzz install lint lock bench overload chaos clean events-doc

# --no-compile: pip would compile every module it installs (a third of the install, 15 s
# here); Python compiles the ones a process imports, once, into the caches kept above.
$(STAMP): requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-compile -r requirements-dev.lock
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	exec $(PY) -m app.launcher

# An operator command against the servers `make run` started: make flask ARGS='seed-demo'
flask: $(STAMP)
	exec $(PY) -m app.launcher flask $(ARGS)

# Parallel workers (pytest-xdist), each with SecantusDB and Redis of its own; tests go out
# one at a time, slow ones first, so no worker idles while another holds a queue. Ends with
# the slowest tests. More workers than cores: a third of a test's time is waiting on a
# process it started or on a server. One test alone: .venv/bin/python -m pytest tests/x.py::test_y
TEST_WORKERS ?= 3
test: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist load --maxschedchunk 1 --durations 25 $(PYTEST_ARGS)


$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund
	touch $@

# The fuzzing test and the points-follow-content property test of `make test`, with many
# more examples and fresh random data each run.
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-200} CONTENT_POINTS_EXAMPLES=$${CONTENT_POINTS_EXAMPLES:-100} \
	FUZZ_SEED_RANDOMLY=1 $(PY) -m pytest tests/test_fuzz.py tests/loyalty/test_content_points.py $(PYTEST_ARGS)

# docs/events.md from the domains' declared events and their handlers (a test checks it).
events-doc: $(STAMP)
	$(PY) -m app.event_catalogue

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

lock: $(STAMP)
	$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
	$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links --extra embedded --extra dev -o requirements-dev.lock pyproject.toml

BENCHMARKS := $(filter-out bench/support.py bench/overload.py,$(wildcard bench/*.py))

bench: $(STAMP)
	for script in $(BENCHMARKS); do $(PY) $$script || exit 1; done

# An open-loop request rate above what the machine serves, with and without admission
# control (about 2 minutes): make overload ARGS='400 30' (requests/s, seconds).
overload: $(STAMP)
	$(PY) bench/overload.py $(ARGS)

# Faults under load, checked afterwards (about 6 minutes): make chaos ARGS='--faults 60'.
chaos: $(STAMP)
	$(PY) -m chaos.run --faults 60 --duration 240 $(ARGS)

clean:
	rm -rf $(VENV) var
