# Two entry points (see README.md): `make book` builds the whole book, `make test` runs the tests.
# Each creates the virtual environment it needs on first use; `make test` also installs Debian's chromium for the
# browser test of the built book (as root, or through sudo). `make publish` puts the built book on the gh-pages branch.
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= cpu
# extra pipeline arguments, e.g. PARAMS="-p seeds '[0]' --only 00_keypoint_schemas"
PARAMS ?=
# the built book that `make publish` commits to the gh-pages branch
HTML ?= _build/html
# One venv for both targets, in either order: `book` needs the library and the book's tool chain, `test` the test
# tools too; the test stamp implies the book stamp, and a plain `pip install .` (the library alone) needs neither.
BOOK_STAMP := $(VENV)/.installed-book
TEST_STAMP := $(VENV)/.installed-test
# PyTorch's OpenMP threads spin while they wait by default; on a busy 2-core machine that slows training about 5x
export OMP_WAIT_POLICY ?= PASSIVE
CHROMIUM := $(shell command -v chromium 2>/dev/null)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# the first remote of this checkout, if any: `make publish` pushes there, and only commits locally without one
REMOTE := $(shell git remote 2>/dev/null | head -n 1)

.PHONY: book test lint env browser publish clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(BOOK_STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -e '.[book]'
	touch $@

$(TEST_STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -e '.[dev,book]'
	touch $@ $(BOOK_STAMP)

env: $(BOOK_STAMP)

book: $(BOOK_STAMP)
	$(VENV)/bin/python -m fashion_lib.pipeline --profile $(PROFILE) $(PARAMS)

publish: $(BOOK_STAMP)
	@test -f $(HTML)/index.html || { echo "make publish: no $(HTML)/index.html; run 'make book' first" >&2; exit 2; }
	$(VENV)/bin/ghp-import --no-jekyll --force --message "Book built from $$(git rev-parse --short HEAD 2>/dev/null)" \
		$(if $(REMOTE),--push --remote $(REMOTE),) $(HTML)
	@echo "make publish: $(HTML) is on branch gh-pages$(if $(REMOTE), and pushed to $(REMOTE), (no remote: not pushed))"

browser:
ifeq ($(CHROMIUM),)
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium
endif

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check .

test: lint browser
	$(VENV)/bin/python -m pytest

clean:
	rm -rf _build _mathjax book/results
