# skymesh: `make run` starts a local network, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-fast lint format bench fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the ai extra (model runtimes) is installed for `make test` too;
	# llama-cpp-python builds from source, without its multimodal tools
	CMAKE_ARGS="$${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" $(BIN)/pip install -q -e '.[dev,ai]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/skymesh up

test: $(STAMP)
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# fuzz: the parser property tests (tests/security/test_fuzz_parsers.py) with many more
# examples than CI runs; not part of `make test`. e.g. make fuzz FUZZ_EXAMPLES=50000
FUZZ_EXAMPLES ?= 5000
fuzz: $(STAMP)
	SKYMESH_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q --hypothesis-show-statistics \
		tests/security/test_fuzz_parsers.py

# bench: skymesh vs Tahoe-LAFS vs moto; makes .bench/venvs/ on first use,
# rewrites docs/benchmarks.md and .png. e.g. make bench BENCH_ARGS="--quick --only skymesh"
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build src/*.egg-info
