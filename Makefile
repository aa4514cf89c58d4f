# The two commands of the quick start are `make demo` and `make test`; each sets up what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PROJECT_DIR := $(CURDIR)
VENV := $(PROJECT_DIR)/.venv
PYTHON ?= python3
INSTALLED := $(VENV)/.installed
AIRFLOW_DB := $(PROJECT_DIR)/.airflow/airflow.db

export BATCH_FANOUT_HOME := $(PROJECT_DIR)
# Where the local endpoint finds the job images (its lookup order: docs/local-endpoint.md).
export BATCH_FANOUT_CONTAINERS_DIR := $(PROJECT_DIR)/include/containers
export AIRFLOW_HOME := $(PROJECT_DIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(PROJECT_DIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
# Loopback only, as in local-env.sh (which says why).
export AIRFLOW__API__HOST := 127.0.0.1
export AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST := 127.0.0.1
export PATH := $(VENV)/bin:$(PATH)

.PHONY: help setup system-packages container-packages images test-images demo airflow test lint bench airflow-db clean

help:
	@echo "make demo   run the whole pipeline on the local AWS Batch endpoint and print the report path"
	@echo "make airflow  the Airflow UI and scheduler on http://127.0.0.1:8080 (loopback only)"
	@echo "make test   lint and run the test suite"
	@echo "make lint   ruff and mypy"
	@echo "make bench  run the benchmarks and print their figures"
	@echo "make images build the job images with podman (installs podman, runc, mmdebstrap, acl)"
	@echo "make test-images  run the tests that need a container engine (the podman demo among them)"

# The virtual environment, the project (editable, with the job and test extras) and the pinned
# Airflow. Redone only when pyproject.toml or requirements.txt change.
$(INSTALLED): pyproject.toml requirements.txt
	@if command -v uv >/dev/null 2>&1; then UV=uv; \
	else \
		echo "uv not found: installing it from PyPI into $(VENV)"; \
		[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV) || { \
			[ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null && \
			rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); \
		} || { echo "error: $(PYTHON) cannot create a virtual environment; install python3-venv" >&2; exit 1; }; \
		$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv; \
		UV=$(VENV)/bin/uv; \
	fi; \
	[ -x $(VENV)/bin/python ] || $$UV venv --quiet --python $(PYTHON) $(VENV); \
	$$UV pip install --quiet --compile-bytecode --python $(VENV)/bin/python -e '.[jobs,test]' -r requirements.txt
	@touch $@

# stress-ng for the jobs; Debian's chromium and chromium-driver for the browser tests of the views.
system-packages:
	@missing=""; \
	command -v stress-ng >/dev/null 2>&1 || missing="$$missing stress-ng"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing$$missing with apt-get"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "error: missing$$missing; install with: sudo apt-get install -y$$missing" >&2; exit 1; \
		fi; \
	fi

# The PHAST sweep compiled ahead of time into the virtual environment, so that a shortest-path child
# of the local endpoint starts without importing numba (include/containers/shared/batch_fanout_job/
# compiled_kernels.py says why). Rebuilt when the kernels change; without a C compiler the jobs use
# numba's JIT kernels, with the same results.
KERNELS := $(VENV)/.compiled-kernels
KERNEL_SOURCES := $(addprefix include/containers/shared/batch_fanout_job/,hierarchy_kernels.py compiled_kernels.py)
$(KERNELS): $(INSTALLED) $(KERNEL_SOURCES)
	$(VENV)/bin/python -m batch_fanout_job.compiled_kernels
	@touch $@

# The project's own modules (the provider, editable, and the DAG folder) compiled to bytecode too, as
# uv compiles the installed packages: every Airflow process imports them, and a shell with
# PYTHONDONTWRITEBYTECODE set would otherwise compile them again in each one. Only changed files are
# recompiled.
setup: $(INSTALLED) system-packages $(KERNELS)
	@$(VENV)/bin/python -m compileall -q -j 0 plugins dags

# What the container runtime and the image builds need: podman with runc (crun refuses the hybrid
# cgroups of some VMs), mmdebstrap for offline base images, setfacl to let an image's user write the
# results folder it mounts.
CONTAINER_TOOLS := podman runc mmdebstrap setfacl
CONTAINER_PACKAGES := podman runc mmdebstrap acl

container-packages:
	@missing=""; for tool in $(CONTAINER_TOOLS); do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing$$missing with apt-get"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CONTAINER_PACKAGES) >/dev/null; \
		else \
			echo "error:$$missing missing; install with: sudo apt-get install -y $(CONTAINER_PACKAGES)" >&2; exit 1; \
		fi; \
	fi

# IMAGES_FLAGS, e.g. "--offline-base --deployment", or "--registry <ECR> --tag 0.1.0 --push".
IMAGES_FLAGS ?=
images: setup container-packages
	batch-fanout images build --engine podman $(IMAGES_FLAGS)

$(AIRFLOW_DB): $(INSTALLED)
	@mkdir -p $(AIRFLOW_HOME)
	airflow db migrate >/dev/null
	@# The same settings as the environment above, kept in airflow.cfg for shells that only set
	@# AIRFLOW_HOME, and a longer wait on SQLite's lock (batch_fanout/metadata_database.py says why).
	@sed -i -e 's|^dags_folder = .*|dags_folder = $(PROJECT_DIR)/dags|' \
		-e 's|^load_examples = .*|load_examples = False|' \
		-e 's|^host = 0.0.0.0$$|host = 127.0.0.1|' \
		-e 's|^scheduler_health_check_server_host = .*|scheduler_health_check_server_host = 127.0.0.1|' \
		-e 's|^# sql_alchemy_connect_args = $$|sql_alchemy_connect_args = batch_fanout.metadata_database.SQLITE_CONNECT_ARGS|' \
		-e 's|^# sql_alchemy_connect_args_async = $$|sql_alchemy_connect_args_async = batch_fanout.metadata_database.SQLITE_CONNECT_ARGS|' \
		$(AIRFLOW_HOME)/airflow.cfg
	@grep -q '^sql_alchemy_connect_args_async = batch_fanout' $(AIRFLOW_HOME)/airflow.cfg || \
		{ echo "airflow.cfg: no sql_alchemy_connect_args line to set; Airflow's template changed" >&2; exit 1; }
	@touch $@

airflow-db: $(AIRFLOW_DB)

demo: setup $(AIRFLOW_DB)
	batch-fanout demo

# What `airflow standalone` runs, less the log servers (Airflow binds them to every interface; on one
# machine the UI reads task logs from files): nothing listens beyond 127.0.0.1. Ctrl-C stops them all.
airflow: setup $(AIRFLOW_DB)
	batch-fanout local start
	batch-fanout settings load airflow_settings.yaml
	@trap 'kill $$(jobs -p) 2>/dev/null' EXIT; \
	airflow scheduler --skip-serve-logs & \
	airflow dag-processor & \
	airflow triggerer --skip-serve-logs & \
	airflow api-server

lint: $(INSTALLED)
	ruff check .
	ruff format --check .
	mypy plugins dags include tests benchmarks

test: setup lint
	pytest -m "not containers"

# Builds what is missing of the images first; skipped, saying so, where no container engine is installed.
test-images: setup
	pytest -m containers -rs

# Every benchmark script in turn, its output shown and kept in BENCH_LOG, then issue 16's table of
# figures and targets collected from their TARGET lines (benchmarks/summary.py). A failed script does
# not stop the others: its rows show as not measured, and make fails at the end.
BENCH_SCRIPTS := $(filter-out benchmarks/summary.py,$(wildcard benchmarks/*.py))
BENCH_LOG := benchmarks/.work/bench.log

bench: setup $(AIRFLOW_DB)
	@mkdir -p $(dir $(BENCH_LOG)); : > $(BENCH_LOG); failed=0; \
	for script in $(BENCH_SCRIPTS); do \
		echo "== $$script (load $$(cut -d' ' -f1-3 /proc/loadavg))" | tee -a $(BENCH_LOG); \
		PYTHONUNBUFFERED=1 python $$script 2>&1 | tee -a $(BENCH_LOG); code=$${PIPESTATUS[0]}; \
		echo "== $$script exit $$code" | tee -a $(BENCH_LOG); [ $$code = 0 ] || failed=1; \
	done; \
	python benchmarks/summary.py $(BENCH_LOG) | tee -a $(BENCH_LOG); \
	echo "(the whole output is in $(BENCH_LOG))"; exit $$failed

clean:
	-batch-fanout local stop
	rm -rf .airflow .local-batch .results
