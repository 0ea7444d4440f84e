# Two commands do everything on a fresh machine:
#   make bench   build the crossroad outlier set from the bundled video and print the P/R table
#   make test    install and run the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BUILD  := build

.PHONY: test bench install perf clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -q hybrid_drift tests

bench: $(VENV)/.installed
	$(VENV)/bin/hybrid-drift make-dataset crossroad $(BUILD)/crossroad --seed 0
	$(VENV)/bin/hybrid-drift bench $(BUILD)/crossroad --json $(BUILD)/bench.json --report $(BUILD)/report

perf: $(VENV)/.installed
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(BUILD) .pytest_cache
