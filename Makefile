# Everything runs inside .venv, created by scripts/install.sh (CPU-only torch).
VENV ?= .venv
PY := $(VENV)/bin/python
# HOST=... PORT=... override SEMSEARCH_HOST / SEMSEARCH_PORT (defaults 127.0.0.1:8000).
SERVE_FLAGS := $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

.PHONY: install demo serve test test-all lint format

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV) test
	touch $@

demo: install  ## index the bundled demo corpus once, then serve it (http://127.0.0.1:8000)
	$(VENV)/bin/semsearch demo $(SERVE_FLAGS)

serve: install
	$(VENV)/bin/semsearch serve $(SERVE_FLAGS)

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
