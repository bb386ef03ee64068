# The two commands of the README. Both create .venv first when it is
# missing (tools/setup_env.sh is idempotent and returns in seconds).
PY := .venv/bin/python

.PHONY: env test demo lint

env:
	bash tools/setup_env.sh

test: env
	$(PY) -m pytest -q tests

demo: env
	$(PY) tools/demo.py

lint: env
	$(PY) -m flake8 ediy_mm tools tests configs
	$(PY) -m isort --check-only --diff ediy_mm tools tests
