# Set-up and entry points. Every target creates the virtual environment on first use and is
# idempotent afterwards (re-installs only when pyproject.toml changes).
#
#   make figures   install, then build the study's outputs: snakemake --cores $(CORES) figures/all
#                  (PRESET=smoke|default|paper picks configs/$(PRESET).yaml; default: default)
#   make test      install, then run the test suite (everything; what CI runs)
#   make test-fast install, then run the fast tier: pytest -m "not slow" (no end-to-end DAGs)
#
# Torch: TORCH_SPEC is installed first, so the package's `torch>=2.4` requirement is already met
# and pip downloads nothing more. The pinned version resolves to a local CPU wheel on machines
# that carry one, and to PyPI's standard (CUDA-enabled on Linux) build elsewhere. For a specific
# CUDA or CPU-only build:  make test TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128

PYTHON ?= python3
VENV ?= .venv
CORES ?= 8
PRESET ?= default
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install figures test test-fast benchmark clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/python -m pip install --quiet -e ".[dev]"
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

clean-venv:
	rm -rf $(VENV)
