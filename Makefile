# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast install benchmark clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch's CPU wheel first (on these machines it comes from local disk); a later
	# requirement it satisfies then installs nothing larger.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test,hub]'
	touch $(STAMP)

install: $(STAMP)

## main job: train + evaluate the four layer-wise predictors on the shipped dataset,
## register them in the local SQLite MLflow store and promote the champion
run: $(STAMP)
	$(BIN)/nnenergy main

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist worksteal
	$(BIN)/ruff check src tests benchmarks

## the edit-test loop: the suite without the tests marked slow (end-to-end runs of whole commands)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"
	$(BIN)/ruff check src tests benchmarks

benchmark: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) mlflow.db mlruns outputs multirun .nnenergy_cache
