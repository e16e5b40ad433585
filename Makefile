# The lab's commands. `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PY := .venv/bin/python
# The background stack of up/down/status (scripts/stack.sh is the same, for the shell).
STACK := $(PY) -m apps.ops.stack
# The admin's password: DJANGO_SUPERUSER_PASSWORD, or generated once and kept in .env.
export DJANGO_SUPERUSER_USERNAME ?= admin
export API_PORT ?= 8000

.PHONY: help setup services prepare up down status demo test lint format bench chaos

help:
	@echo "make demo     set up, start the stack, sample.pdf through V0-V6, then the quick bench"
	@echo "make test     set up, start the services, run the whole test suite"
	@echo "make up       start services, API (:$(API_PORT)), OCR servers and workers"
	@echo "make down     stop what 'make up' started"
	@echo "make bench    the full comparison, <= 30 min on 2 cores (runbench --plan lists it)"
	@echo "make chaos    faults per backend on private services (CHAOS_ARGS=\"--backend db\")"
	@echo "make lint     ruff check + format check + mypy (types)"

setup:
	@scripts/setup.sh

services: setup
	@scripts/services.sh start

prepare: services
	@$(PY) manage.py migrate --noinput -v 0
	@$(PY) manage.py make_corpus >/dev/null
	@$(PY) manage.py collectstatic --noinput -v 0
	@$(PY) manage.py ensure_superuser
	@$(PY) manage.py ensure_api_token

up: prepare
	@$(STACK) start
	@echo "API:    http://127.0.0.1:$(API_PORT)/api/docs/  (browsable: /api/jobs, after admin login)"
	@echo "Admin:  http://127.0.0.1:$(API_PORT)/admin/  (user $$DJANGO_SUPERUSER_USERNAME, password: DJANGO_SUPERUSER_PASSWORD in .env)"
	@echo "Token:  OCRLAB_API_TOKEN in .env  (user bench; send 'Authorization: Token ...')"

down:
	@$(STACK) stop
	@scripts/services.sh stop

status:
	@$(STACK) status

demo: up
	@$(PY) manage.py demo --queues
	@$(STACK) stop-workers
	@$(PY) manage.py runbench --quick
	@$(STACK) start
	@echo "API:    http://127.0.0.1:$(API_PORT)/api/docs/"
	@echo "Admin:  http://127.0.0.1:$(API_PORT)/admin/  (user $$DJANGO_SUPERUSER_USERNAME, password: DJANGO_SUPERUSER_PASSWORD in .env)"

# The local Kafka broker is stopped again afterwards when this target started it.
test: setup
	@up=0; scripts/tansu.sh status >/dev/null 2>&1 && up=1; \
	scripts/services.sh start && $(PY) manage.py make_corpus >/dev/null \
	  && $(PY) manage.py collectstatic --noinput -v 0 \
	  && echo "$(PY) -m pytest $(PYTEST_ARGS)" && $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$up = 0 ]; then scripts/tansu.sh stop >/dev/null 2>&1; fi; exit $$rc

chaos:  # private services on other ports (scripts/chaos_services.sh): the shared ones are safe
	@scripts/chaos_services.sh start
	@env $$(scripts/chaos_services.sh env) $(PY) scripts/ensure_db.py
	@env $$(scripts/chaos_services.sh env) $(PY) manage.py migrate -v0
	env $$(scripts/chaos_services.sh env) $(PY) manage.py chaos $(CHAOS_ARGS)

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

bench: prepare
	$(PY) manage.py runbench
