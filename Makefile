# The two commands of the course (see README.md):
#   make book   set everything up on a fresh machine, then build the book, executing every notebook
#   make test   set everything up, then run every check (unit tests, notebooks, pairing, book build,
#               the rendered pages in a headless browser)
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
EXTRAS  := book,test,kaggle,bench
BOOK_SRC ?= .
BOOK_OUT ?= .
# Warnings are errors, references are checked (nitpicky), and --all re-executes every
# notebook even when its source is unchanged (the profile may have changed). Progress bars
# are switched off (TQDM_DISABLE=1): on a printed page they are only noise.
JB_FLAGS := --all --warningiserror --nitpick --keep-going

.PHONY: book test bench setup browser check-profile sync repository clean help

help:
	@echo "make book   - set up and build the book into _build/html (COURSE_PROFILE, default cpu)"
	@echo "make test   - set up and run every check (COURSE_PROFILE, default smoke)"
	@echo "make bench  - run the benchmarks and regenerate book/performance.md from their results"
	@echo "make sync   - re-pair notebooks/*.py with their .ipynb twins (jupytext --sync)"
	@echo "make repository URL=https://github.com/you/fork - where a fork is published (Colab links, setup cell)"

book: export COURSE_PROFILE ?= cpu
book: export TQDM_DISABLE = 1
book: check-profile setup
	$(VENV)/bin/jupyter-book build $(BOOK_SRC) --path-output $(BOOK_OUT) $(JB_FLAGS)
	@echo "book written to $(BOOK_OUT)/_build/html/index.html (profile $$COURSE_PROFILE)"

test: export COURSE_PROFILE ?= smoke
test: check-profile setup browser
	$(PY) -m pytest

# Debian's chromium and chromium-driver, for the checks of the rendered book in a real browser
# (tests/test_browser.py). Installed once, with apt-get (as root, or through sudo).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  echo "installing Debian's chromium and chromium-driver (browser checks of the book)"; \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	fi

# Each benchmark writes benchmarks/results/*.json; book/performance.md is rendered from those
# files only (tests fail when the page and the results disagree). Notebook run times are
# measured in the smoke profile and in the cpu profile in float32 (the budget: at most 30
# minutes on 2 cores); the cpu profile in bf16 too where the CPU has native bf16 (elsewhere
# precision_cost.py measures how much slower emulated bf16 is, and a pass would take hours).
bench: export COURSE_PROFILE ?= cpu
bench: check-profile setup
	$(PY) benchmarks/synthetic_throughput.py --results benchmarks/results
	$(PY) benchmarks/loader_throughput.py --results benchmarks/results
	$(PY) benchmarks/train_throughput.py --results benchmarks/results
	$(PY) benchmarks/module_cost.py --results benchmarks/results
	$(PY) benchmarks/attention_memory.py --results benchmarks/results
	$(PY) benchmarks/precision_cost.py --results benchmarks/results
	$(PY) benchmarks/notebook_times.py --profile smoke --results benchmarks/results
	$(PY) benchmarks/notebook_times.py --profile cpu --precision fp32 --results benchmarks/results
	if $(PY) -c "from course_lib.config import native_bf16; raise SystemExit(not native_bf16('cpu'))"; then \
	  $(PY) benchmarks/notebook_times.py --profile cpu --precision bf16 --results benchmarks/results; \
	fi
	if $(PY) -c "import torch; raise SystemExit(not torch.cuda.is_available())"; then \
	  $(PY) benchmarks/step_mfu.py --profile gpu --batches 64 256 --results benchmarks/results; \
	  $(PY) benchmarks/notebook_times.py --profile gpu --results benchmarks/results; \
	fi
	$(PY) benchmarks/render_performance.py

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

repository: setup
	$(PY) tools/set_repository.py $(URL)

clean:
	rm -rf _build .pytest_cache
