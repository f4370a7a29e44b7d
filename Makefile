# Set-up and main entry points. `make demo` and `make test` each install everything first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
PYTEST_ARGS ?=

.PHONY: install browser demo test test-fast bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,bench]"
	touch $(BENCH_STAMP)

# The review page's end-to-end test drives Debian's Chromium. Installed here when missing and run as root;
# otherwise that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
		  { apt-get update -qq >/dev/null 2>&1 && \
		    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; }; }; } || \
		echo "note: chromium is not installed (apt-get install chromium); the browser test will skip"

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/adcraft demo --out out

test: install browser
	$(VENV)/bin/ruff check src bench tests
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(BENCH_STAMP)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq wrk >/dev/null 2>&1; } || echo "note: wrk is not installed; bench/load.py skips its wrk phase"
	HF_HUB_OFFLINE=1 $(PY) bench/encoders.py
	$(PY) bench/render.py
	HF_HUB_OFFLINE=1 $(PY) bench/rewards.py
	HF_HUB_OFFLINE=1 $(PY) bench/rewards_real.py
	$(PY) bench/ope_unbiased.py
	$(PY) bench/ope_obd.py
	$(PY) bench/aes_online.py
	HF_HUB_OFFLINE=1 $(PY) bench/contrastive.py
	HF_HUB_OFFLINE=1 $(PY) bench/backgrounds.py
	HF_HUB_OFFLINE=1 $(PY) bench/optimize.py
	HF_HUB_OFFLINE=1 $(PY) bench/performance.py
	HF_HUB_OFFLINE=1 $(PY) bench/load.py
	HF_HUB_OFFLINE=1 $(PY) bench/scale.py
	$(PY) bench/diffusion.py

clean:
	rm -rf out .pytest_cache build dist src/*.egg-info
