# Two commands do everything on a fresh machine with Python 3.11 and make:
#   make run    create the environment if needed, then execute the notebooks (local mode by default)
#   make test   ruff, the unit and service tests, and the notebooks re-executed and compared by nbval
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
MODE     ?= local
RUN_NAME ?= demo
ROLE     ?=
# Extra notebook parameters for `make run`, e.g. PARAMS="-p NUM_HOUSES_PER_LOCATION 2000"
PARAMS   ?=
TEST_HOME := $(CURDIR)/.mme_local/test-service
NBVAL_ANY_KERNEL := --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 600 -p no:cacheprovider
NBVAL := $(NBVAL_ANY_KERNEL) --nbval-current-env
# 10_sdk_v3 runs in the SDK v3 kernel; the others in this environment (--nbval-current-env); all in order, 11 last.
V3_NOTEBOOK   := notebooks/10_sdk_v3.ipynb
LAST_NOTEBOOK := notebooks/11_cleanup.ipynb
MAIN_NOTEBOOKS = $(filter-out $(V3_NOTEBOOK) $(LAST_NOTEBOOK),$(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb)))
# 04-06 run a second time right after 06, each in a new kernel against the same endpoint: a learner's re-run must
# print what the first run printed (nbval compares both with the committed outputs).
RERUN_NOTEBOOKS = $(sort $(wildcard notebooks/0[4-6]_*.ipynb))
MAIN_ORDER = $(foreach nb,$(MAIN_NOTEBOOKS),$(nb) $(if $(findstring 06_,$(nb)),$(RERUN_NOTEBOOKS)))

.PHONY: run test test-services lint unit notebooks-check rehearse-aws lab clean lock lock-v3 venv outputs benchmark
.DEFAULT_GOAL := run

$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@# the project itself, importable from the venv (what an editable install does, without a build step)
	$(PY) -c "import site; open(site.getsitepackages()[0] + '/mme-helpers.pth', 'w').write('$(CURDIR)\n')"
	$(PY) -m ipykernel install --sys-prefix --name mme-xgboost --display-name "Python (mme-xgboost)" >/dev/null
	@touch $@

# The SageMaker XGBoost container 1.7-1's own XGBoost (1.7.4), apart, to check that artifacts load in it.
CONTAINER_VENV := .venv-container
$(CONTAINER_VENV)/.installed: requirements-container.lock
	@test -x $(CONTAINER_VENV)/bin/python || $(PYTHON) -m venv $(CONTAINER_VENV)
	$(CONTAINER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-container.lock
	@touch $@

# The XGBoost of the current container (3.0-5: XGBoost 3.0.5), apart, to check artifacts for it too.
CONTAINER_VENV_3_0 := .venv-container-3.0
$(CONTAINER_VENV_3_0)/.installed: requirements-container-3.0.lock
	@test -x $(CONTAINER_VENV_3_0)/bin/python || $(PYTHON) -m venv $(CONTAINER_VENV_3_0)
	$(CONTAINER_VENV_3_0)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-container-3.0.lock
	@touch $@

# SageMaker Python SDK v3, apart (it cannot share an environment with v2): only what the v3 flow imports, without
# the packages' declared dependencies (requirements-v3.in says why), and the Jupyter kernel of 10_sdk_v3
# registered where the main environment's jupyter, papermill and nbval find it.
V3_VENV   := .venv-v3
V3_KERNEL := mme-xgboost-v3
$(V3_VENV)/.installed: requirements-v3.lock $(VENV)/.installed
	@test -x $(V3_VENV)/bin/python || $(PYTHON) -m venv $(V3_VENV)
	$(V3_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-compile -r requirements-v3.lock
	$(V3_VENV)/bin/python -c "import site; open(site.getsitepackages()[0] + '/mme-helpers.pth', 'w').write('$(CURDIR)\n')"
	$(V3_VENV)/bin/python -m ipykernel install --prefix $(CURDIR)/$(VENV) --name $(V3_KERNEL) --display-name "Python (mme-xgboost, SDK v3)" >/dev/null 2>&1
	@touch $@

venv:  # the four environments are made side by side (v3's waits for the main one, where its kernel is registered)
	@$(MAKE) --no-print-directory -j3 $(VENV)/.installed $(CONTAINER_VENV)/.installed $(CONTAINER_VENV_3_0)/.installed $(V3_VENV)/.installed

run: venv
	$(PY) -m mme_helpers.suite --mode $(MODE) --run-name $(RUN_NAME) $(if $(ROLE),--role $(ROLE)) $(PARAMS)

# The unit and service tests and the notebooks use separate local services: on two cores they run side by side
# (each one's output printed whole when it ends).
test: venv lint
	@$(MAKE) --no-print-directory -j2 --output-sync=target unit notebooks-check

lint: venv
	$(PY) -m ruff check mme_helpers tests benchmarks

# Tests that start services of their own, other kernels or other environments (restarts, kill -9 cycles, regions,
# the SDK v3 flow, the rehearsal's kernels): a few seconds each, minutes together; CI runs them after `make test`.
SERVICE_TESTS := tests/test_durable_state.py tests/test_nothing_lost.py tests/test_service_lifecycle.py \
	tests/test_session.py tests/test_session_v3.py tests/test_client_environment.py tests/test_sdk_v3.py \
	tests/test_aws_rehearsal.py tests/test_offline.py

unit: venv
	$(PY) -m pytest tests $(addprefix --ignore=,$(SERVICE_TESTS))

test-services: venv
	$(PY) -m pytest $(SERVICE_TESTS)

# The committed notebooks are re-executed in order against a fresh local service (reset: no state
# from an earlier run) and their outputs compared with the committed ones (tests/nbval_sanitize.cfg
# lists what may vary).
notebooks-check: venv
	@MME_LOCAL_HOME=$(TEST_HOME) $(PY) -m mme_helpers.local reset >/dev/null; \
	MME_LOCAL_HOME=$(TEST_HOME) $(PY) -m pytest $(NBVAL) --keep-duplicates $(MAIN_ORDER) && \
	MME_LOCAL_HOME=$(TEST_HOME) $(PY) -m pytest $(NBVAL_ANY_KERNEL) --nbval-kernel-name $(V3_KERNEL) $(V3_NOTEBOOK) && \
	MME_LOCAL_HOME=$(TEST_HOME) $(PY) -m pytest $(NBVAL) $(LAST_NOTEBOOK); status=$$?; \
	MME_LOCAL_HOME=$(TEST_HOME) $(PY) -m mme_helpers.local stop; exit $$status

# The notebooks' AWS-mode path (MODE=aws), every notebook in order, against a fresh local service that behaves
# as AWS where a learner could see it (tests/test_aws_rehearsal.py; README "AWS mode"): no AWS account is used.
rehearse-aws: venv
	MME_REHEARSE_AWS=1 $(PY) -m pytest tests/test_aws_rehearsal.py -p no:cacheprovider

# Re-execute the notebooks in place so that their committed outputs match the code.
outputs: venv
	MME_LOCAL_HOME=$(TEST_HOME) $(PY) -m mme_helpers.local reset
	MME_LOCAL_HOME=$(TEST_HOME) $(PY) -m mme_helpers.suite --in-place --run-name demo
	MME_LOCAL_HOME=$(TEST_HOME) $(PY) -m mme_helpers.local stop

benchmark: venv
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_endpoint.py
	$(PY) benchmarks/bench_soak.py
	$(PY) benchmarks/bench_scale.py
	$(PY) benchmarks/bench_worker_memory.py

lab: venv
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

# Regenerate requirements.lock from requirements.in in a scratch venv (needs the package index).
lock:
	rm -rf /tmp/mme-lock-venv && $(PYTHON) -m venv /tmp/mme-lock-venv
	/tmp/mme-lock-venv/bin/pip install --quiet -r requirements.in
	( echo "# Exact versions of every package (generated by \`make lock\` from requirements.in). Do not edit by hand."; \
	  /tmp/mme-lock-venv/bin/pip freeze --exclude-editable ) > requirements.lock
	$(PY) -m mme_helpers.environment_file > environment.yml

# Regenerate requirements-v3.lock: requirements-v3.in without dependencies, then ipykernel with its own.
lock-v3:
	rm -rf /tmp/mme-lock-v3 && $(PYTHON) -m venv /tmp/mme-lock-v3
	/tmp/mme-lock-v3/bin/pip install --quiet --no-deps -r requirements-v3.in
	/tmp/mme-lock-v3/bin/pip install --quiet ipykernel
	( echo "# Exact versions for .venv-v3 (generated by \`make lock-v3\` from requirements-v3.in; installed with --no-deps). Do not edit by hand."; \
	  /tmp/mme-lock-v3/bin/pip freeze --exclude-editable ) > requirements-v3.lock

clean:
	-@test -x $(PY) && $(PY) -m mme_helpers.local stop
	-@test -x $(PY) && MME_LOCAL_HOME=$(TEST_HOME) $(PY) -m mme_helpers.local stop >/dev/null
	rm -rf runs data .mme_local .pytest_cache .ruff_cache
