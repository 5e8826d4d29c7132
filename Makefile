# Two entry points (see README.md): `make book` builds the whole book, `make test` runs the tests.
# Each creates the virtual environment it needs on first use; `make test` also installs Debian's chromium for the
# browser test of the built book (as root, or through sudo).
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= cpu
# extra pipeline arguments, e.g. PARAMS="-p seeds '[0]' --only 00_keypoint_schemas"
PARAMS ?=
STAMP := $(VENV)/.installed
# PyTorch's OpenMP threads spin while they wait by default; on a busy 2-core machine that slows training about 5x
export OMP_WAIT_POLICY ?= PASSIVE
CHROMIUM := $(shell command -v chromium 2>/dev/null)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: book test lint env browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -e '.[dev]'
	touch $(STAMP)

env: $(STAMP)

book: $(STAMP)
	$(VENV)/bin/python -m fashion_lib.pipeline --profile $(PROFILE) $(PARAMS)

browser:
ifeq ($(CHROMIUM),)
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium
endif

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint browser
	$(VENV)/bin/python -m pytest

clean:
	rm -rf _build _mathjax book/results
