# qianchuan-rl: every target sets up .venv first (Python 3.11, CPU-only torch, exact pins).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup train test lint results calibration interval-widening decision-value clean-venv

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -c "from envs.simulator import warm_up; warm_up()"  # compile the simulator (cached)
	touch $(STAMP)

setup: $(STAMP)

train: $(STAMP)  ## train PPO on the default scenario (TensorBoard logs in runs/)
	$(PY) scripts/train.py $(ARGS)

results: $(STAMP)  ## train PPO on every scenario x 3 seeds, benchmark all, write docs/results.md
	$(PY) scripts/results.py $(ARGS)

calibration: $(STAMP)  ## fit synthetic accounts of known truth, write docs/calibration_results.md
	$(PY) scripts/calibration_benchmark.py $(ARGS)

interval-widening: $(STAMP)  ## measure how much the fit's market intervals must widen, write configs/calibration/interval_widening.json
	$(PY) scripts/interval_widening.py $(ARGS)

decision-value: $(STAMP)  ## the anchor adapted to a fit vs the base's on true markets, write docs/decision_value_results.md
	$(PY) scripts/decision_value.py $(ARGS)

# pytest-xdist processes for `make test` (auto: one per core; 0: the suite in one process)
TEST_WORKERS ?= auto

test: $(STAMP)  ## run the test suite
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
