# Two commands on a fresh machine (see README): `make run` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Not -q: an install of a few minutes says what it is doing.
PIP := $(BIN)/pip install --disable-pip-version-check --progress-bar off

.PHONY: install run test bench bench-quick browser

$(BIN)/python:
	$(PY) -m venv $(VENV)

# uv installs the app's packages in ~10 s where pip takes ~65 s (bench/results/first_answer.md).
# The test install stays with pip: torch must be the CPU build pip finds on this machine's disk
# (uv would fetch PyPI's multi-GB CUDA build).
$(BIN)/uv: | $(BIN)/python
	$(PIP) uv

# One stamp per extra set, rebuilt when pyproject.toml changes. The app needs no extra: the
# default embedder is built without torch. The tests and benchmarks add torch ([st]) for the
# fp32 reference model and the torch build path they compare against.
$(VENV)/.app: pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --python $(BIN)/python -e .
	touch $@

# The tests run the LLM path against a real llama.cpp server ([llm-server]). llama-cpp-python
# is an sdist: built here without this CPU's own instructions (a wheel that runs on any x86-64)
# and without the multimodal tool, ~5.5 min on 2 cores once; pip's wheel cache keeps the wheel.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) -e '.[st,test,bench,llm-server]'
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

# The full benchmark, by hand (about an hour): dev-set quality, ingest and latency against the
# baselines; 16 and 32 clients with an ingest meanwhile, then 3 min at 32 to watch memory; the
# 45-minute scale run through `chroma run`. Results land in bench/results/.
bench: $(VENV)/.dev
	$(BIN)/python -m bench $(ARGS)
	$(BIN)/python -m bench.load --clients 16 32 --seconds 60 --with-ingest --memory-seconds 180
	$(BIN)/python -m bench.scale --budget-minutes 45

bench-quick: $(VENV)/.dev
	$(BIN)/python -m bench --quick $(ARGS)
