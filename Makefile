# Two set-up-and-go targets (README): `make demo` and `make test`. Both create .venv and install
# from the pins on a fresh machine; a second run reuses the environment.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: setup demo test test-slow lint bench bench-transfer clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/augment demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# the demo, the examples, kill-and-resume and subprocess CLI runs (CI's second step)
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

bench: $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python benchmarks/augmentation.py

bench-transfer: $(STAMP)
	$(BIN)/python benchmarks/transfer_learning.py few-shot
	$(BIN)/python benchmarks/transfer_learning.py cache
	$(BIN)/python benchmarks/transfer_learning.py throughput

clean:
	rm -rf $(VENV) runs .pytest_cache
