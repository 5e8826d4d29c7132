# Two entry points (see README.md): `make book` builds the whole book, `make test` runs the tests.
# Each creates the virtual environment it needs on first use.
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= cpu
# extra pipeline arguments, e.g. PARAMS="-p seeds '[0]' --only 00_keypoint_schemas"
PARAMS ?=
STAMP := $(VENV)/.installed

.PHONY: book test lint env browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -e '.[dev]'
	touch $(STAMP)

env: $(STAMP)

book: $(STAMP)
	$(VENV)/bin/python -m fashion_lib.pipeline --profile $(PROFILE) $(PARAMS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/python -m pytest

clean:
	rm -rf _build book/results
