# Everything runs inside .venv, created by scripts/install.sh (CPU-only torch).
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install demo serve test test-all lint format

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV) test
	touch $@

demo: install  ## index the bundled demo corpus once, then serve it on http://$(HOST):$(PORT)
	$(VENV)/bin/semsearch demo --host $(HOST) --port $(PORT)

serve: install
	$(VENV)/bin/semsearch serve --host $(HOST) --port $(PORT)

test: install  ## the test suite (slow tests excluded)
	$(PY) -m pytest

test-all: install
	$(PY) -m pytest -m ""

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
