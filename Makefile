# Everything runs inside .venv, created by scripts/install.sh (torch's CPU build where it can be
# had; see docs/install.md). `make install` installs what the service needs to run; the targets
# that run tests or linters add the test extras on top (a second stamp, so either order works).
VENV ?= .venv
PY := $(VENV)/bin/python
# HOST=... PORT=... override SEMSEARCH_HOST / SEMSEARCH_PORT (defaults 127.0.0.1:8000).
SERVE_FLAGS := $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

.PHONY: install install-test demo serve test test-all lint format

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV) ""
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	bash scripts/install.sh $(VENV) test
	touch $@

demo: install  ## index the bundled demo corpus once, then serve it (http://127.0.0.1:8000)
	$(VENV)/bin/semsearch demo $(SERVE_FLAGS)

serve: install
	$(VENV)/bin/semsearch serve $(SERVE_FLAGS)

test: install-test  ## the test suite (slow tests excluded)
	$(PY) -m pytest

test-all: install-test
	$(PY) -m pytest -m ""

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

format: install-test
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
