# mot — make demo | make test | make lint | make bench
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
DEMO_DIR := demo
DEMO_STORE := $(DEMO_DIR)/mot.db

.PHONY: demo test long fuzz lint typecheck bench crash bench-import bench-project bench-kafka bench-http bench-share-chain install clean postgres bytecode

# The editable install itself is pure Python (MOT_PURE_PYTHON=1 to pip); $(NATIVE) then compiles
# the record path's modules (mot/native.py's COMPILED) in place with this venv's mypyc, where
# the dependencies' types are at hand, and again whenever one of their sources changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip 'setuptools>=77' wheel
	MOT_PURE_PYTHON=1 $(BIN)/pip install --quiet -e '.[dev]'
	@$(MAKE) --no-print-directory bytecode
	@touch $(STAMP)

# setup.py writes $(NATIVE) (each compiled module's source digest) after a compiled build;
# MOT_PURE_PYTHON=1 (or no C compiler) builds nothing and leaves no compiled module behind
# (every .so of the sources is mypyc's: one no longer compiled would shadow its .py).
NATIVE := mot/native_sources.json
NATIVE_SRC := $(shell $(PYTHON) mot/native.py)
$(NATIVE): $(STAMP) setup.py mot/native.py $(NATIVE_SRC)
	@rm -f $(NATIVE) && find mot domain projections adapters service cli -name '*.so' -delete
	@echo "compiling $(words $(NATIVE_SRC)) modules with mypyc (MOT_PURE_PYTHON=1 for none)"
	@mkdir -p build && $(BIN)/python setup.py --quiet build_ext --inplace > build/mypyc.log 2>&1 \
		|| { cat build/mypyc.log; exit 1; }
	@$(BIN)/mot --version

install: $(STAMP) $(NATIVE)

# pip compiles a regular install's modules; an editable install's are compiled on
# first import, and not kept where PYTHONDONTWRITEBYTECODE is set, which would make
# every `mot` command compile what it imports. Up-to-date files are skipped.
bytecode:
	@$(BIN)/python -m compileall -q domain projections adapters cli service mot > /dev/null

# A realistic sample for two brands: generate, import, project, and tell its story.
demo: $(STAMP) $(NATIVE) bytecode
	@mkdir -p $(DEMO_DIR)
	@rm -f $(DEMO_STORE) $(DEMO_STORE)-wal $(DEMO_STORE)-shm
	$(BIN)/mot sample 6000 --seed 7 --bad-lines > $(DEMO_DIR)/moments.jsonl
	$(BIN)/mot --store $(DEMO_STORE) import $(DEMO_DIR)/moments.jsonl
	$(BIN)/mot --store $(DEMO_STORE) import $(DEMO_DIR)/moments.jsonl
	$(BIN)/mot --store $(DEMO_STORE) project
	$(BIN)/mot --store $(DEMO_STORE) story
	$(BIN)/mot --store $(DEMO_STORE) report --out $(DEMO_DIR)/report.html
	$(BIN)/mot --store $(DEMO_STORE) status
	@echo
	@echo "mot is in $(BIN): run '. $(BIN)/activate' (or 'pipx install .') to type just 'mot', then e.g."
	@echo "  mot --store $(DEMO_STORE) quarantine summary"
	@echo "  mot --store $(DEMO_STORE) query relationships --tenant acme --limit 10"
	@echo "(open $(DEMO_DIR)/report.html in a browser; README.md has the quickstart)"

# PostgreSQL must be up for the tests that use it; start the local cluster if it is not.
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; echo "PostgreSQL did not start" >&2; exit 1

# Tests run in TEST_WORKERS processes (pytest-xdist; each has its own PostgreSQL database,
# and every broker, port and file is per test): most of a test's time is waiting on the
# server, a broker or a child process, so more workers than CPUs keep both busy.
# TEST_WORKERS=0 runs them in this one process.
TEST_WORKERS ?= 3
test: $(STAMP) $(NATIVE) postgres
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=15

# Long runs whose capability make test already covers another way (tests marked long): the
# schema-driven HTTP run on PostgreSQL (make test runs it on SQLite; the HTTP tests run on both).
long: $(STAMP) postgres
	$(BIN)/pytest -q -m long

# kill -9 at ten seeded random points of each command that writes (import, project, replay,
# kafka ingest, kafka publish, alerts deliver, erase) on both stores, then mot verify and the
# ledger of a clean run; prints how many kills landed mid-way for each.
crash: $(STAMP) postgres
	$(BIN)/pytest -q -s -m crash

# The long fuzz suite (tests marked fuzz): the wire format and every vendor adapter, over
# 100,000 generated inputs through mot import's own path; prints what became of them.
fuzz: $(STAMP)
	$(BIN)/pytest -q -s -m fuzz tests/test_fuzz_inputs.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(MAKE) typecheck

# mypy cannot follow setuptools' editable import hook for the mapped package
# folders, so it checks a tree of links that has the installed layout.
typecheck: $(STAMP)
	@rm -rf build/typecheck && mkdir -p build/typecheck/mot
	@cp mot/*.py mot/py.typed build/typecheck/mot/
	@for p in domain projections adapters service cli; do ln -s ../../../$$p build/typecheck/mot/$$p; done
	cd build/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml mot

# Every bench at N = 10k, 100k, 1M (BENCH_N=... to choose; BENCH_QUICK=1: a two-minute
# sanity check): bench/results/REPORT.md, results.json and the charts.
bench: $(STAMP) $(NATIVE) postgres bytecode
	$(BIN)/python bench/run.py

bench-import: $(STAMP) $(NATIVE) postgres bytecode
	$(BIN)/python bench/import_bench.py

bench-project: $(STAMP) $(NATIVE) postgres bytecode
	$(BIN)/python bench/project_bench.py

bench-kafka: $(STAMP) $(NATIVE) postgres bytecode
	$(BIN)/python bench/kafka_bench.py

bench-http: $(STAMP) $(NATIVE) postgres bytecode
	$(BIN)/python bench/http_bench.py

bench-share-chain: $(STAMP) $(NATIVE) postgres bytecode
	$(BIN)/python bench/share_chain_bench.py

clean:
	rm -rf $(VENV) build $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache .hypothesis
