# The two commands of the course (see README.md):
#   make book   set everything up on a fresh machine, then build the book, executing every notebook
#   make test   set everything up, then run every check (unit tests, notebooks, pairing, book build)
#
# Both create .venv when it is missing or older than pyproject.toml, and install the project
# into it. COURSE_PROFILE picks the run profile (smoke | cpu | gpu): `make test` defaults to
# smoke, `make book` to cpu (what the rendered book shows). It is validated first, before
# anything is installed, so a typo fails in a second with a readable message.

SHELL   := /bin/bash
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
EXTRAS  := book,test,kaggle
BOOK_SRC ?= .
BOOK_OUT ?= .
# Warnings are errors, references are checked (nitpicky), and --all re-executes every
# notebook even when its source is unchanged (the profile may have changed).
JB_FLAGS := --all --warningiserror --nitpick --keep-going

.PHONY: book test setup check-profile sync clean help

help:
	@echo "make book   - set up and build the book into _build/html (COURSE_PROFILE, default cpu)"
	@echo "make test   - set up and run every check (COURSE_PROFILE, default smoke)"
	@echo "make sync   - re-pair notebooks/*.py with their .ipynb twins (jupytext --sync)"

book: export COURSE_PROFILE ?= cpu
book: check-profile setup
	$(VENV)/bin/jupyter-book build $(BOOK_SRC) --path-output $(BOOK_OUT) $(JB_FLAGS)
	@echo "book written to $(BOOK_OUT)/_build/html/index.html (profile $$COURSE_PROFILE)"

test: export COURSE_PROFILE ?= smoke
test: check-profile setup
	$(PY) -m pytest

# Uses the system Python on purpose: course_lib.config does not need torch to validate.
check-profile:
	@$(PYTHON) -m course_lib.config >/dev/null

setup: $(STAMP)

$(STAMP): pyproject.toml
	@if [ ! -x $(PY) ]; then echo "creating $(VENV)"; $(PYTHON) -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $(STAMP)

sync: setup
	$(VENV)/bin/jupytext --sync notebooks/*.py

clean:
	rm -rf _build .pytest_cache
