# Batch movie recommendations: every command an operator needs. `make help` lists them.
# Each target does its own set-up, so `make run` and `make test` work first on a fresh clone.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(CURDIR)/$(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_CACHE_DIR := $(CURDIR)/.cache/pip
export PYTHONPATH := $(CURDIR)
export SPARK_LOCAL_IP ?= 127.0.0.1
export AIRFLOW__CORE__PARALLELISM ?= 2

FILE ?=
FORMAT ?= movietweetings
SCALE ?= small
DAYS ?= 14

.PHONY: help setup lint format test test-unit bench run scenario spark-cluster spark-cluster-down stop services-up services-down status \
	reset replay import-ratings pipeline serve rollback clean simulate metadata-api demo \
	experiment-start experiment-stop experiment-status experiment-report provenance \
	shadow-start shadow-stop shadow-report retention responsible feedback-loops

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@mkdir -p .cache/pip
	$(PY) -m pip install -q -r requirements.txt
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv (pinned requirements, pip cache in .cache/), fetch the Kafka jars, install PostgreSQL 15 and promtool
	@$(PY) -m ops.services fetch

lint: setup ## ruff format --check + ruff check (Airflow AIR rules included)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: setup ## Apply ruff formatting and safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: setup lint ## The full test suite with line coverage (starts Kafka, Postgres, Airflow; stops what it started)
	status=0; $(PY) -m pytest --cov --cov-report=term:skip-covered || status=$$?; \
		$(PY) -m tests.support.coverage_summary; exit $$status

test-unit: setup ## Unit tests only (no services)
	$(PY) -m pytest -m unit

bench: setup ## Benchmarks (prints tables; figures go in the issue notes); BENCH=bench_serving for one
	@command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }
	$(PY) -m benchmarks $(BENCH)

.PHONY: drill
drill: setup ## Fault drills on the running platform (`make run` first), under serving load (wrk): a table
	@command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }
	$(PY) -m ops.drill

services-up: setup ## Start Kafka (KRaft), Postgres 15 and Airflow 3 on loopback, supervised (restarted when they exit)
	@$(PY) -m ops.services up

services-down: ## Stop Kafka, Postgres and Airflow (and supervisord when nothing else runs)
	@test ! -x $(PY) || $(PY) -m ops.services down

status: ## Health of each service from its own signal, restarts, logs; exits non-zero naming what is unhealthy
	@$(PY) -m ops.services status --prom

run: services-up ## The whole system end to end on local services; leaves it running
	@$(PY) -m ops.run --scale "$(SCALE)" --days "$(DAYS)"

demo: services-up ## `make run` in compressed time: two automated retrain-and-publish cycles in about 15 minutes
	@$(PY) -m ops.demo

scenario: services-up ## The 1M-user scenario world through the DAGs: time, memory and rows per stage (docs/scale.md)
	@$(PY) -m ops.scenario

spark-cluster: setup ## A Spark standalone master and two workers on loopback (then SPARK_MASTER_URL=spark://127.0.0.1:7077)
	$(PY) -m ops.spark_cluster up

spark-cluster-down: ## Stop the Spark standalone cluster
	$(PY) -m ops.spark_cluster down

stop: ## Stop everything `make run` started
	@test ! -x $(PY) || $(PY) -m ops.run --stop

reset: ## Stop everything and delete local state under .var/ (downloads in .cache/ stay)
	@test ! -x $(PY) || $(PY) -m ops.services reset
	rm -rf .var

pipeline: services-up ## Run ingestion, then training and publishing, once, now, through Airflow
	@$(PY) -m ops.pipeline

replay: services-up ## Stream a movielog-format file into the topic: make replay FILE=path
	@test -n "$(FILE)" || { echo "usage: make replay FILE=path/to/movielog.txt"; exit 2; }
	$(PY) -m simulator replay "$(FILE)"

import-ratings: services-up ## Real ratings into the topic: make import-ratings FILE=… FORMAT=movielens|movietweetings
	@test -n "$(FILE)" || { echo "usage: make import-ratings FILE=ratings.dat FORMAT=movietweetings"; exit 2; }
	$(PY) -m simulator import-ratings "$(FILE)" --format "$(FORMAT)"

simulate: services-up ## Backfill simulated traffic into the topic: make simulate SCALE=small DAYS=14
	$(PY) -m simulator backfill --scale "$(SCALE)" --days "$(DAYS)"

metadata-api: setup ## The simulated metadata API on :8090 (foreground)
	$(PY) -m simulator metadata-api --scale "$(SCALE)" --port 8090

serve: services-up ## The serving tier (gunicorn) on :8082, in the foreground
	$(PY) -m serving

rollback: services-up ## Switch serving back to the previously published version
	$(PY) -m jobs.publish.publish rollback

comma := ,
experiment-start: services-up ## Start an A/B test: NAME=… VARIANTS=a=VERSION:0.5,b=VERSION:0.5 [BASELINE=0.3 MIN_EFFECT=0.02 ALPHA=0.05 POWER=0.8]
	@$(PY) -m jobs.publish.experiments start --name "$(NAME)" $(foreach v,$(subst $(comma), ,$(VARIANTS)),--variant $(v)) --baseline-rate $(or $(BASELINE),0.3) --min-effect $(or $(MIN_EFFECT),0.02) --alpha $(or $(ALPHA),0.05) --power $(or $(POWER),0.8)

experiment-stop: services-up ## Stop the active experiment [NAME=…]
	@$(PY) -m jobs.publish.experiments stop $(if $(NAME),--name "$(NAME)")

experiment-status: services-up ## The active experiment's plan and each arm's users so far [NAME=…]
	@$(PY) -m jobs.publish.experiments status $(if $(NAME),--name "$(NAME)")

experiment-report: services-up ## Analyse experiment NAME into .var/reports/experiments/NAME/ [WINDOW_MINUTES=60]
	@$(PY) -m jobs.online.experiment_report --name "$(NAME)" --window-minutes $(or $(WINDOW_MINUTES),60)

provenance: setup ## Where a served answer came from: make provenance REQUEST=id | USER=id AT=time [JSON=1]
	@if [ -n "$(REQUEST)" ]; then set -- --request "$(REQUEST)"; \
	elif [ -n "$(AT)" ]; then set -- --user "$(USER)" --at "$(AT)"; \
	else echo "usage: make provenance REQUEST=<id> | USER=<user id> AT=<ISO time> [JSON=1]"; exit 2; fi; \
	$(PY) -m jobs.online.provenance "$$@" $(if $(JSON),--json)

shadow-start: services-up ## Run VERSION (reco or model version) in shadow: logged beside every answer, never served
	@$(PY) -m jobs.publish.experiments shadow --version "$(VERSION)"

shadow-stop: services-up ## End the active shadow
	@$(PY) -m jobs.publish.experiments shadow --stop

shadow-report: services-up ## Compare shadow VERSION with production into .var/reports/shadow/VERSION/ [WINDOW_MINUTES=60]
	@$(PY) -m jobs.online.shadow_report --version "$(VERSION)" --window-minutes $(or $(WINDOW_MINUTES),60)

retention: services-up ## Remove what the retention rule no longer keeps (DRY_RUN=1: print the plan; DAYS=N)
	@$(PY) -m jobs.publish.retention $(if $(DRY_RUN),--dry-run) $(if $(DAYS),--days $(DAYS))

responsible: services-up ## Fairness measures, model cards and the Responsible ML pages now [DAYS=1]
	@$(PY) -m jobs.online.fairness --days $(or $(DAYS),1)
	@$(PY) -m jobs.train.model_card
	@$(PY) -c "from jobs import pipeline; print(pipeline.responsible_index())"

feedback-loops: setup ## Feedback-loop measures of the last 28 event-time days -> reports/responsible/feedback_loops/
	@$(PY) -m jobs.online.feedback --days 28

clean: ## Remove caches of tools (not .var/ or .cache/)
	rm -rf .pytest_cache .ruff_cache htmlcov .coverage
