# Two commands do all the set-up on a fresh machine (see README.md):
#   make demo   install, start the embedded PostgreSQL, load a sample gallery, search it
#   make test   install (with test extras), then run the whole test suite on three workers
# Everything installs into ./.venv; nothing needs root except Chromium for the browser tests.

VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python

.PHONY: install install-test demo test clean

# the product alone: what `make demo` needs
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

# plus the test tools and the clip extra; torch==2.13.0 is the CPU build on this machine's
# disk (any other torch spec pulls a multi-GB CUDA build)
$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,clip]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(VENV)/bin/pgallery demo

# three pytest-xdist workers on two cores, each with its own embedded server and template
# database: the tests wait on PostgreSQL, on subprocesses and on HTTP often enough that a
# third worker fills the cores (measured on an idle machine: 3:50 against 4:08 with two)
test: install-test
	-bash .ci/install-chromium.sh
	$(PY) -m pytest -q -n 3

clean:
	-$(VENV)/bin/pgallery db stop
	rm -rf $(VENV) .pgallery
