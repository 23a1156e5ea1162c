# The two commands: `make run` (portal + worker + beat + demo data) and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint check bench bench-status bench-purge clean

$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# A development .env with fresh random keys, written once and never committed.
.env:
	$(PY) -c "import secrets; print('DJANGO_DEBUG=true'); print('SECRET_KEY=' + secrets.token_urlsafe(50)); print('CRYPTOGRAPHY_KEY=' + secrets.token_urlsafe(32))" > .env
	@echo "Wrote .env with fresh development keys (see .env.example for every setting)."

run: $(STAMP) .env
	mkdir -p var
	$(PY) manage.py migrate --no-input
	$(PY) manage.py sync_roles
	$(PY) manage.py seed_demo
	$(VENV)/bin/honcho start -f Procfile.dev

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

check: $(STAMP)
	$(PY) -m pytest -q tests/test_deploy_check.py

# Outbox delivery benchmark (README "Performance"): throwaway database, real worker and SMTP
# sink; PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set. `make bench ORGS=1000` is quicker.
bench: $(STAMP)
	PYTHONPATH=. $(PY) bench/outbox_bench.py $(if $(ORGS),--orgs $(ORGS))

# Public status page benchmark (README "Performance"): throwaway PostgreSQL database
# (DATABASE_URL required), Redis cache when REDIS_URL is set, gunicorn on 127.0.0.1 and
# wrk (Debian: `apt-get install -y wrk`); under 3 minutes. BENCH_ARGS="--duration 5" is quicker.
bench-status: $(STAMP)
	PYTHONPATH=. $(PY) bench/status_bench.py $(BENCH_ARGS)

# Clean-up purge benchmark (README "Performance"): throwaway PostgreSQL database (DATABASE_URL
# required), one organisation with 1,000,000 records purged by a worker process, against a raw
# SQL DELETE, and killed half way then resumed. BENCH_ARGS="--records 100000" is quicker.
bench-purge: $(STAMP)
	PYTHONPATH=. $(PY) bench/purge_bench.py $(BENCH_ARGS)

clean:
	rm -rf var staticfiles
