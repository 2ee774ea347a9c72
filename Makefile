# Two commands matter: `make demo` (set up, tiny model -> export -> demo.mp4 on the CPU) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1

.PHONY: demo test test-fast setup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch==2.13.0 is pinned in the export extra: a looser pin pulls a multi-GB CUDA build on CPU machines.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[cpu,export,test,bench,tensorrt-rtx,ray,openvino,serve]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/t2vrt demo -o demo.mp4

# One export of the tiny model per worker (tests/conftest.py); `slow` marks the tests that export or build again.
# Two workers (pytest-xdist), whole files to one worker so module fixtures are built once: most of a test's time
# is one Python thread (tracing, the fusion optimizer, TensorRT's parser), so two cores run two files at once.
# Files go out in collection order, the longest first (tests/conftest.py), not xdist's most-tests-first.
XDIST := -n 2 --dist loadfile --no-loadscope-reorder

# ruff first: a lint finding fails in a second, before the suite's minutes ([tool.ruff] in pyproject.toml).
test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(XDIST) --durations=10

test-fast: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow and not ray" --durations=5

clean:
	rm -rf demo demo.mp4 .pytest_cache
