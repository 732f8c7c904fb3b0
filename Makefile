# `make run` and `make test` work on a fresh clone: both create .venv and install first.
# `make run` installs serving alone (LiteRT); `make test` adds training (TensorFlow) and the test tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-quick lint install install-check system-packages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The build ships the newest model version inside the package: a new one is a reason to reinstall.
INSTALL_INPUTS := pyproject.toml setup.py $(wildcard models/mnist-cnn/*/metadata.json)

$(VENV)/.installed-serve: $(INSTALL_INPUTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(INSTALL_INPUTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[train,test]'
	touch $@ $(VENV)/.installed-serve

install: $(VENV)/.installed-serve

# The system tools the tests drive (Chromium, systemd-analyze): listed once, in .ci/system-packages.
system-packages:
	.ci/system-packages

run: $(VENV)/.installed-serve
	$(BIN)/digit-watcher run --config config.yaml

test: $(VENV)/.installed-test system-packages
	$(BIN)/python -m pytest

# While working: everything but the slow tests (daemons end to end, training) and the GlusterFS ones.
test-quick: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not slow and not gluster" -q

# What users install: the wheel built and tried in a fresh venv outside the checkout (CI runs it after the tests).
install-check: $(VENV)/.installed-test
	.ci/install-check

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
