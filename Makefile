# Two entry points for a fresh machine: `make demo` and `make test`. Both build .venv when missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck unit emulator clean bench

$(BIN)/graphnap: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/graphnap
	$(BIN)/graphnap demo

emulator: $(BIN)/graphnap
	$(BIN)/graphnap emulator

test: lint typecheck unit

lint: $(BIN)/graphnap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(BIN)/graphnap
	$(BIN)/mypy --strict daemon

unit: $(BIN)/graphnap
	$(BIN)/pytest

# Every figure of issue 10 next to its goal (a few minutes; not part of `make test`).
bench: $(BIN)/graphnap
	$(BIN)/python bench/goals.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Dockerfile, image, Helm chart, alerts and dashboard, checked with the real tools; installs
# them itself (apt, .venv-deploy, .tools/) and needs root for apt and dockerd. See .ci/deploy-check.
.PHONY: deploy-check
deploy-check:
	.ci/deploy-check
