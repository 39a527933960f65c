# clicksentry — every target bootstraps what it needs on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test faults lint bench venv lock clean jar emulators package audit infra infra-check infra-lock

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## make run: the whole job on the embedded default source (no AWS account, no services).
run: $(STAMP) jar
	$(BIN)/clicksentry run

## make test: lint, unit tests, doctests, the real-minicluster and emulator tests, and the
## fault-injection suite on a standalone Flink cluster (tests/faults/, also `make faults`), in a
## session of its own so the cluster is stopped before anything else runs. Each session lists its
## slowest tests (--durations): CI has 90 minutes on 2 cores.
test: $(STAMP) jar emulators infra-check
	$(BIN)/ruff check .
	$(BIN)/pytest -m "not faults" --durations=15
	$(BIN)/pytest -m faults --durations=8

## make faults: only the fault-injection suite (part of `make test`): a standalone Flink cluster
## (JobManager + two TaskManagers from the apache-flink package's bin/ scripts) running the
## Managed Flink artefact: TaskManager kill -9, savepoint rescale 1 -> 2 -> 1, throttled puts,
## adversarial input and a page-id flood, a silent shard, the job's metrics.
faults: $(STAMP) jar emulators
	$(BIN)/pytest -m faults --durations=8

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

## make infra: synthesise the CDK app (deploy/infra/) into dist/cloudformation/ (the template
## Clicksentry.template.json, its assets and manifest: a cloud assembly `cdk deploy --app
## dist/cloudformation` deploys). Needs the zips of `make package`. aws-cdk-lib, cfn-lint and
## checkov live in their own virtualenv $(INFRA_VENV), installed exactly from
## deploy/infra/requirements.lock (their pins clash with PyFlink's). Offline: node runs jsii.
INFRA_VENV  := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.installed
INFRA_OUT   := dist/cloudformation
# Debian's node 20 works for jsii; its end-of-life banner says nothing about the template.
INFRA_ENV   := JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CLICKSENTRY_PYTHON=$(BIN)/python

$(INFRA_STAMP): deploy/infra/requirements.txt deploy/infra/requirements.lock
	test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/pip install --quiet --upgrade pip
	$(INFRA_VENV)/bin/pip install --quiet -r deploy/infra/requirements.txt -c deploy/infra/requirements.lock
	touch $@

infra: $(INFRA_STAMP) package
	rm -rf $(INFRA_OUT)
	$(INFRA_ENV) $(INFRA_VENV)/bin/python deploy/infra/app.py --outdir $(INFRA_OUT)

## make infra-check (part of `make test`): cfn-lint and checkov on the synthesised template
## (clean; every suppression carries its reason in the resource's Metadata), then the CDK
## assertion tests (tests/infra/cdk/, in $(INFRA_VENV)). checkov runs offline (--skip-download).
infra-check: infra
	$(INFRA_VENV)/bin/cfn-lint --format parseable -- $(INFRA_OUT)/*.template.json && echo "cfn-lint: $(INFRA_OUT)/*.template.json clean"
	$(INFRA_VENV)/bin/checkov --skip-download --quiet --compact --framework cloudformation \
	  --file $(INFRA_OUT)/Clicksentry.template.json
	$(INFRA_ENV) $(INFRA_VENV)/bin/pytest -c tests/infra/cdk/pytest.ini --doctest-modules \
	  tests/infra/cdk deploy/infra/clicksentry_infra

## make infra-lock: re-resolve deploy/infra/requirements.lock after changing requirements.txt.
infra-lock:
	rm -rf /tmp/clicksentry-infra-lock && $(PYTHON) -m venv /tmp/clicksentry-infra-lock
	/tmp/clicksentry-infra-lock/bin/pip install --quiet -r deploy/infra/requirements.txt
	/tmp/clicksentry-infra-lock/bin/pip freeze | sed '1i # Full lock of .venv-infra (pip freeze). Regenerate: make infra-lock' > deploy/infra/requirements.lock

## make notebooks (part of `make test`): the retraining notebooks (notebooks/explore.ipynb,
## notebooks/retrain.ipynb; their reviewed sources are the jupytext .py beside them) executed top to
## bottom against an archive the real job writes in the same run, read from S3 on a moto server
## of the test's own (tests/notebooks/; docs/retraining.md). Jupyter, DuckDB and matplotlib live
## in their own virtualenv $(NB_VENV), installed exactly from notebooks/requirements.lock (their
## pins clash with PyFlink's), with numpy/scikit-learn/scipy/skops at the job's versions and the
## project itself installed --no-deps.
.PHONY: notebooks notebooks-venv notebooks-lock
NB_VENV  := .venv-notebooks
NB_STAMP := $(NB_VENV)/.installed

notebooks-venv: $(NB_STAMP)

$(NB_STAMP): notebooks/requirements.txt notebooks/requirements.lock pyproject.toml
	test -x $(NB_VENV)/bin/python || $(PYTHON) -m venv $(NB_VENV)
	$(NB_VENV)/bin/pip install --quiet --upgrade pip
	$(NB_VENV)/bin/pip install --quiet -r notebooks/requirements.txt -c notebooks/requirements.lock
	$(NB_VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

test: $(NB_STAMP)

notebooks: $(STAMP) $(NB_STAMP) jar
	$(BIN)/pytest tests/notebooks

## make notebooks-lock: re-resolve notebooks/requirements.lock after changing requirements.txt.
notebooks-lock:
	rm -rf /tmp/clicksentry-notebooks-lock && $(PYTHON) -m venv /tmp/clicksentry-notebooks-lock
	/tmp/clicksentry-notebooks-lock/bin/pip install --quiet -r notebooks/requirements.txt
	/tmp/clicksentry-notebooks-lock/bin/pip freeze | sed '1i # Full lock of .venv-notebooks (pip freeze). Regenerate: make notebooks-lock' > notebooks/requirements.lock
