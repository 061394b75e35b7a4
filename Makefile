# skyshare developer commands. Run inside the virtualenv created by the README's set-up.
PYTHON ?= python

.PHONY: install test lint format bench clean

install:
	$(PYTHON) -m pip install -c constraints.txt -e ".[dev,ray]"

# The test command (README, CI): lint + format check + the whole test suite.
test: lint
	$(PYTHON) -m pytest -q

lint:
	ruff check .
	ruff format --check .

format:
	ruff format .
	ruff check --fix .

# Runs benchmarks/ and rewrites BENCHMARKS.md with the figures and the machine description.
bench:
	$(PYTHON) -m benchmarks.run --output BENCHMARKS.md

clean:
	rm -rf .pytest_cache .ruff_cache build dist src/*.egg-info
