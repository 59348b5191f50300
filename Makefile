# Every target is a thin wrapper around a script in scripts/, so the scripts
# stay the single source of truth and work without make too.
.PHONY: test run up down bugsink build-collector render-k8s lint bench mutants

## Run the whole test suite (what CI runs). Installs the tools it needs into .tools/.
test:
	scripts/test.sh

## Run the pipeline on this machine (Bugsink, the collector, the service), make
## some calls and print where their traces and the error are. Ctrl-C stops it.
run:
	scripts/run-local.sh

# minikube (default) or local: a Kubernetes built here, for Linux as root
# without Docker (scripts/local-cluster.sh).
CLUSTER ?= minikube

## Deploy the whole demo (make up CLUSTER=local for the local cluster) and hit its endpoints.
up:
	CLUSTER=$(CLUSTER) scripts/up.sh

## Tear the demo down (make down CLUSTER=local stops the local cluster).
down:
	CLUSTER=$(CLUSTER) scripts/down.sh

## Run Bugsink locally (a Sentry-compatible error tracker) and print its DSN.
bugsink:
	scripts/run-bugsink.sh

## Build the slim OpenTelemetry Collector with ocb into .tools/bin/otelcol-somework.
build-collector:
	scripts/build-collector.sh

## Regenerate k8s/ from the Helm charts.
render-k8s:
	scripts/render-k8s.sh

## What tracing costs the service, side by side; writes BENCHMARKS.md.
bench:
	scripts/bench.sh

## Formatting, clippy and shellcheck only.
lint:
	scripts/test.sh --lint-only

## Mutation testing of the parsing and accounting modules (cargo mutants; slow, not in CI).
mutants:
	scripts/mutants.sh
