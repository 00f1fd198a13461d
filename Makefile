# `make run` runs the main job on the embedded default; `make test` runs the test suite.
# Both create .venv and install the package on first use. Extra Hydra overrides: make run ARGS="compressor.wbits=4".
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FMNIST := /usr/share/datasets/fashion-mnist
ARGS ?=

.PHONY: run test lint setup data clean

run: setup data
	$(BIN)/lwcompress $(ARGS)

test: setup data
	$(BIN)/ruff check .
	$(BIN)/pytest -q -n auto $(ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check lwcompress tests experiments

setup: $(BIN)/.installed

# Reinstall when the package metadata changes; the editable install picks up code changes by itself.
# The example plug-in package (experiments/plugin_example) is installed beside it: the tests exercise it.
$(BIN)/.installed: pyproject.toml setup.py experiments/plugin_example/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps -e experiments/plugin_example
	touch $@

# Fashion-MNIST from Debian when we can install packages; otherwise the data module downloads it into
# data/ (torchvision) or tells how to get it.
data:
	@if [ ! -d $(FMNIST) ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -q dataset-fashion-mnist || (apt-get update -q && apt-get install -y -q dataset-fashion-mnist)) \
		>/dev/null || echo "note: apt-get could not install dataset-fashion-mnist; will try torchvision's download"; \
	fi

clean:
	rm -rf logs outputs multirun .pytest_cache
