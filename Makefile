# Set-up and entry points. Every target creates the virtual environment on first use and is
# idempotent afterwards (re-installs, into a fresh .venv, only when pyproject.toml or the lock changes).
#
#   make figures   install, then build the study's outputs: snakemake --cores $(CORES) figures/all
#                  (PRESET=smoke|default|paper picks configs/$(PRESET).yaml; default: default)
#   make test      install, then run the test suite (everything; what CI runs)
#   make test-fast install, then run the fast tier: pytest -m "not slow" (no end-to-end DAGs)
#
# Versions: by default every dependency is installed at the version requirements.lock pins, with
# its hash checked (pip --require-hashes), into a fresh .venv; torch apart (below). LOCK=none opts
# out: the package's lower bounds, newest releases. `make lock` regenerates the lock (uv pip compile),
# `make env-check` says whether the lock is current and .venv exactly its pins (CI runs both checks).
#
# Torch: TORCH_SPEC is installed apart from the lock, so the same lock serves a CPU and a GPU
# machine. The pinned version resolves to a local CPU wheel on machines that carry one, and to
# PyPI's standard (CUDA-enabled on Linux) build elsewhere, whose CUDA libraries come at the versions
# torch pins. For a specific CUDA or CPU-only build:
#     make test TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128

PYTHON ?= python3
VENV ?= .venv
CORES ?= 8
PRESET ?= default
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=
LOCK ?= requirements.lock
BIN := $(VENV)/bin
# one stamp per way of installing, so switching LOCK reinstalls
STAMP := $(VENV)/.installed-$(if $(filter none,$(LOCK)),bounds,lock)
TORCH_INSTALL = $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))

.PHONY: install figures test test-fast benchmark lock env-check clean-venv

$(STAMP): pyproject.toml $(if $(filter none,$(LOCK)),,$(LOCK))
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
ifeq ($(LOCK),none)
	$(TORCH_INSTALL)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
else
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(TORCH_INSTALL)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
endif
	touch $@

install: $(STAMP)

figures: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" snakemake --cores $(CORES) figures/all --configfile configs/$(PRESET).yaml

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

benchmark: $(STAMP)
	$(BIN)/python benchmarks/envs.py

lock: $(STAMP)
	$(BIN)/varshare lock --uv $(BIN)/uv

env-check: $(STAMP)
	$(BIN)/varshare env-check --lock $(if $(filter none,$(LOCK)),requirements.lock,$(LOCK))

clean-venv:
	rm -rf $(VENV)
