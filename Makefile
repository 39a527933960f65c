# clicksentry — every target bootstraps what it needs on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test faults lint bench venv lock clean jar emulators package audit

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## make run: the whole job on the embedded default source (no AWS account, no services).
run: $(STAMP) jar
	$(BIN)/clicksentry run

## make test: lint, unit tests, doctests, the real-minicluster and emulator tests.
test: $(STAMP) jar emulators
	$(BIN)/ruff check .
	$(BIN)/pytest -m "not faults"

## make faults: the fault-injection suite on a standalone Flink cluster (JobManager + two
## TaskManagers from the apache-flink package's bin/ scripts): TaskManager kill -9, savepoint
## rescale 1 -> 2 -> 1, throttled puts, adversarial input. ~12 min; not yet in `make test`.
faults: $(STAMP) jar emulators
	$(BIN)/pytest -m faults

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP) jar
	$(BIN)/clicksentry bench

## make lock: re-resolve the full lock after changing dependencies in pyproject.toml.
lock:
	rm -rf /tmp/clicksentry-lock && $(PYTHON) -m venv /tmp/clicksentry-lock
	/tmp/clicksentry-lock/bin/pip install --quiet -c constraints.txt -e '.[dev]'
	/tmp/clicksentry-lock/bin/pip freeze --exclude-editable | sed '1i # Full lock of the project virtualenv (pip freeze). PyFlink 1.20 pins numpy 1.24 / pyarrow 11 /\n# cloudpickle 2.2: installing anything without this file upgrades them and breaks pyflink.\n# Regenerate: make lock' > constraints.txt

clean:
	rm -rf $(VENV) out dist

## make jar: the connector uber-jar deploy/target/pyflink-dependencies.jar (Maven Shade) and the
## S3 file-system plugin in deploy/target/plugins/ for local runs.
JAR := deploy/target/pyflink-dependencies.jar
jar: $(JAR)

$(JAR): deploy/pom.xml $(shell find deploy/src -name '*.java')
	cd deploy && mvn -B -q package
	touch $@

## make emulators: kinesis-mock (npm kinesis-local, version pinned in deploy/emulators/) into .emulators/.
EMULATORS := .emulators/node_modules/kinesis-local/main.js
emulators: $(EMULATORS)

$(EMULATORS): deploy/emulators/package.json deploy/emulators/package-lock.json
	mkdir -p .emulators
	cp deploy/emulators/package.json deploy/emulators/package-lock.json .emulators/
	cd .emulators && npm ci --no-audit --no-fund --loglevel=error
	touch $@

## make package: dist/clicksentry-managed-flink.zip for Managed Service for Apache Flink (main.py,
## lib/pyflink-dependencies.jar, dep/) and, when deploy/package_lambda.py exists, the alerting
## Lambda's zip.
package: $(STAMP) jar
	$(BIN)/python deploy/package_flink.py
	if [ -f deploy/package_lambda.py ]; then $(BIN)/python deploy/package_lambda.py; fi

## make audit: pip-audit over the lock (constraints.txt, exactly the pinned versions, no resolving)
## in its own virtualenv $(AUDIT_VENV); .venv is never touched. Not part of `make test`: pip-audit
## asks a vulnerability service (PyPI's JSON API) over the network, which CI does not reach.
## --strict: a package the service cannot answer for fails the target (never a silent pass).
## Advisories assessed in SECURITY.md (every CVE/GHSA/PYSEC id written there) are accepted;
## any other fails the target. SECURITY.md says why each accepted one cannot be upgraded.
AUDIT_VENV := .venv-audit
PIP_AUDIT := pip-audit==2.10.1
AUDIT_ACCEPTED = $(sort $(shell grep -oE '(CVE-[0-9]{4}-[0-9]+|GHSA(-[0-9a-z]{4}){3}|PYSEC-[0-9]{4}-[0-9]+)' SECURITY.md))
audit:
	test -x $(AUDIT_VENV)/bin/pip-audit || ($(PYTHON) -m venv $(AUDIT_VENV) \
	  && $(AUDIT_VENV)/bin/pip install --quiet '$(PIP_AUDIT)')
	$(AUDIT_VENV)/bin/pip-audit --requirement constraints.txt --no-deps --disable-pip \
	  --strict --progress-spinner off --desc on $(addprefix --ignore-vuln ,$(AUDIT_ACCEPTED))
