# Two commands on a fresh machine (see README): `make run` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --disable-pip-version-check -q

.PHONY: install run test bench bench-quick browser

$(BIN)/python:
	$(PY) -m venv $(VENV)

# One stamp per extra set, rebuilt when pyproject.toml changes.
$(VENV)/.app: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[st,onnx]'
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[st,onnx,test,bench]'
	touch $@ $(VENV)/.app

install: $(VENV)/.app

run: $(VENV)/.app
	$(BIN)/python app.py $(ARGS)

# Chromium and CJK fonts for the browser test come from Debian (root only; otherwise that test skips).
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	fi

test: $(VENV)/.dev browser
	$(BIN)/python -m pytest -q $(ARGS)

bench: $(VENV)/.dev
	$(BIN)/python -m bench $(ARGS)

bench-quick: $(VENV)/.dev
	$(BIN)/python -m bench --quick $(ARGS)
