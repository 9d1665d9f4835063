# Two commands do all the set-up on a fresh machine (see README.md):
#   make demo   install, start the embedded PostgreSQL, load a sample gallery, search it
#   make test   install (with test extras), then run the whole test suite
# Everything installs into ./.venv; nothing needs root except Chromium for the browser tests.

VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: install demo test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU build of torch for the CLIP provider's tests (any other spec pulls a CUDA build)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,clip]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/pgallery demo

test: install
	-bash .ci/install-chromium.sh
	$(PY) -m pytest -q

clean:
	-$(VENV)/bin/pgallery db stop
	rm -rf $(VENV) .pgallery
