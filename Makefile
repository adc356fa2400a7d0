# One task runner for people and CI (.ci/run calls these targets).
PYTHON ?= .venv/bin/python
export LANCEDB_LOG := error

.PHONY: install editor-tools extension-tools fuzz test test-python test-fast test-slow user-install test-extension vsix lint format typecheck bench bench-index bench-quality bench-models adapter test-stages
EXT := vscode-extension
# CI=1 (set by .ci/run): a missing editor or npm fails the tests that need them instead of skipping.
NEED = if [ -n "$$CI" ]; then echo "error: $(1) is missing" >&2; exit 1; else echo "note: $(1) is missing; skipping $(2)"; exit 0; fi

install:  ## fresh venv: torch first (the local CPU wheel), then the project with [dev]
	python3 -m venv .venv
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -e '.[dev]'
	$(MAKE) editor-tools extension-tools

# The real editors of the end-to-end tests, from Debian (root with apt-get only): neovim (0.7),
# emacs-nox and elpa-eglot (Emacs 28) for tests/test_editors.py (Neovim 0.11 comes from [dev]);
# chromium, ripgrep and libkrb5-dev for code-server in the VS Code UI test.
EDITOR_PACKAGES := neovim emacs-nox elpa-eglot chromium ripgrep libkrb5-dev
editor-tools:
	@missing=""; for p in $(EDITOR_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q $$missing >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; }; \
	else echo "note: install$$missing for the editor tests"; fi

extension-tools:  ## the extension's npm packages and code-server (the UI test's VS Code)
	@command -v npm >/dev/null || { $(call NEED,npm,the VS Code extension); }; \
	cd $(EXT) && npm ci --no-audit --no-fund --loglevel=error && bash test/ui/setup.sh

# The whole suite, quick failures first: the tests that load no model, a user's install of the
# wheel (no extras, fresh venv) driven from outside the checkout, the model's tests, the extension.
# The whole suite in stages, quick failures first; .ci/run runs the same list (make -s test-stages).
TEST_STAGES := test-fast user-install test-slow test-extension
test: $(TEST_STAGES)  ## the whole suite (what CI runs after make lint)

test-stages:  ## print the stages of make test, in order
	@echo $(TEST_STAGES)

test-python:  ## every Python test in one run (slow and e2e included)
	$(PYTHON) -m pytest -q

test-fast:  ## the tests that load no model
	$(PYTHON) -m pytest -q -m "not slow"

test-slow:  ## the tests that load the model or index real trees, the editors' included
	$(PYTHON) -m pytest -q -m slow --durations=15

user-install:  ## build the wheel, install it without extras in a fresh venv, drive index/search/status/serve (.ci/user_install.sh)
	bash .ci/user_install.sh

vsix:  ## $(EXT)/codesearch.vsix, offline (vscode:prepublish compiles first)
	cd $(EXT) && npm run package

test-extension:  ## the extension: unit tests, the .vsix from a clean tree, and the UI test in code-server (screenshots in $(EXT)/test-results/)
	@command -v npm >/dev/null || { $(call NEED,npm,the VS Code extension tests); }; \
	cd $(EXT) && npm test && rm -rf dist codesearch.vsix && npm run package && npm run test:ui

fuzz:  ## a long, random fuzz campaign (CI runs a short, fixed one in make test)
	CODESEARCH_FUZZ_EXAMPLES=3000 CODESEARCH_FUZZ_RANDOM=1 $(PYTHON) -m pytest -q tests/test_fuzz.py

lint:
	$(PYTHON) -m ruff check codesearch lsp tests benchmarks training .ci
	$(PYTHON) -m ruff format --check codesearch lsp tests benchmarks training .ci
	$(PYTHON) -m mypy

format:
	$(PYTHON) -m ruff format codesearch lsp tests benchmarks training .ci
	$(PYTHON) -m ruff check --fix codesearch lsp tests benchmarks training .ci

typecheck:
	$(PYTHON) -m mypy

bench: bench-index  ## speed figures, appended to benchmarks/RESULTS.md

bench-index:
	$(PYTHON) benchmarks/index_bench.py

bench-quality:  ## CodeSearchNet, SOSum and CoSQA by lexical, dense and hybrid search (needs ../shared/datasets; DATA=... to point elsewhere)
	$(PYTHON) benchmarks/quality.py $(if $(DATA),--data $(DATA))

adapter:  ## retrain the default model's code adapter: 600 steps, then 300 on unseen pairs (about 70 min on 2 cores; needs ../shared/datasets)
	$(PYTHON) training/train_adapter.py --out benchmarks/.work/minilm-code-v2.safetensors $(if $(DATA),--data $(DATA))
	$(PYTHON) training/train_adapter.py --init benchmarks/.work/minilm-code-v2.safetensors --steps 300 $(if $(DATA),--data $(DATA))

bench-models:  ## offline candidate models on CodeSearchNet (needs ../shared/datasets)
	$(PYTHON) benchmarks/model_candidates.py
