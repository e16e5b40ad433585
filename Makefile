# The lab's commands. `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PY := .venv/bin/python
export DJANGO_SUPERUSER_USERNAME ?= admin
export DJANGO_SUPERUSER_PASSWORD ?= admin
export API_PORT ?= 8000

.PHONY: help setup services prepare up down status demo test lint format bench

help:
	@echo "make demo     set up, start the stack, sample.pdf through V0-V6, then the quick bench"
	@echo "make test     set up, start the services, run the whole test suite"
	@echo "make up       start services, API (:$(API_PORT)), OCR servers and workers"
	@echo "make down     stop what 'make up' started"
	@echo "make bench    the full comparison, <= 30 min on 2 cores (runbench --plan lists it)"
	@echo "make lint     ruff check + format check"

setup:
	@scripts/setup.sh

services: setup
	@scripts/services.sh start

prepare: services
	@$(PY) manage.py migrate --noinput -v 0
	@$(PY) manage.py make_corpus >/dev/null
	@$(PY) manage.py ensure_superuser

up: prepare
	@scripts/stack.sh start
	@echo "API:    http://127.0.0.1:$(API_PORT)/api/docs/  (browsable: /api/jobs)"
	@echo "Admin:  http://127.0.0.1:$(API_PORT)/admin/  (user $$DJANGO_SUPERUSER_USERNAME)"

down:
	@scripts/stack.sh stop
	@scripts/services.sh stop

status:
	@scripts/stack.sh status

demo: up
	@$(PY) manage.py demo --queues
	@scripts/stack.sh stop-workers
	@$(PY) manage.py runbench --quick
	@scripts/stack.sh start
	@echo "API:    http://127.0.0.1:$(API_PORT)/api/docs/"
	@echo "Admin:  http://127.0.0.1:$(API_PORT)/admin/  (user $$DJANGO_SUPERUSER_USERNAME, password from DJANGO_SUPERUSER_PASSWORD)"

test: services
	@$(PY) manage.py make_corpus >/dev/null
	$(PY) -m pytest $(PYTEST_ARGS)

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

bench: prepare
	$(PY) manage.py runbench
