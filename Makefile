# One task runner for people and CI (.ci/run calls these targets).
PYTHON ?= .venv/bin/python
export LANCEDB_LOG := error

.PHONY: install editor-tools test test-fast lint format typecheck bench bench-index bench-models

install:  ## fresh venv: torch first (the local CPU wheel), then the project with [dev]
	python3 -m venv .venv
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -e '.[dev]'
	$(MAKE) editor-tools

editor-tools:  ## Debian's neovim, the real editor of tests/test_editors.py (root with apt-get only)
	@command -v nvim >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q neovim >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q neovim >/dev/null; }; \
	else echo "note: no nvim here; install neovim for tests/test_editors.py"; fi

test:  ## the whole suite, slow and e2e included
	$(PYTHON) -m pytest -q

test-fast:  ## skip tests that load the model
	$(PYTHON) -m pytest -q -m "not slow"

lint:
	$(PYTHON) -m ruff check codesearch lsp tests benchmarks
	$(PYTHON) -m ruff format --check codesearch lsp tests benchmarks
	$(PYTHON) -m mypy

format:
	$(PYTHON) -m ruff format codesearch lsp tests benchmarks
	$(PYTHON) -m ruff check --fix codesearch lsp tests benchmarks

typecheck:
	$(PYTHON) -m mypy

bench: bench-index  ## speed figures, appended to benchmarks/RESULTS.md

bench-index:
	$(PYTHON) benchmarks/index_bench.py

bench-models:  ## offline candidate models on CodeSearchNet (needs ../shared/datasets)
	$(PYTHON) benchmarks/model_candidates.py
