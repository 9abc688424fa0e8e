# Portcullis: `make run` starts the gateway in front of the echo upstream; `make test` runs
# every test. Both install the system packages they need when they are missing (as root).

SWIFT ?= swift
PYTHON ?= python3
APT_PACKAGES := libcurl4-openssl-dev libargon2-dev libssl-dev libsqlite3-dev pkg-config
# The refresh-grant benchmark (bench/refresh.py) runs a real PostgreSQL server as well.
BENCH_PACKAGES := nginx-light wrk haproxy postgresql
# The shared-store tests run a real PostgreSQL server; the replicas example is checked with nginx.
TEST_PACKAGES := postgresql nginx-light
# A development signing secret, made once and kept in .dev-jwt-secret (git-ignored), so that
# `make run` and `make token` agree. Set PORTCULLIS_JWT_SECRET yourself in any real deployment.
PORTCULLIS_JWT_SECRET ?= $(shell cat .dev-jwt-secret 2>/dev/null || (head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | tee .dev-jwt-secret))
export PORTCULLIS_JWT_SECRET
BIN_DEBUG = $(shell $(SWIFT) build --show-bin-path)
BIN_RELEASE = $(shell $(SWIFT) build -c release --show-bin-path)

.PHONY: soak fuzz token all deps test-deps bench-deps build build-tests run test unit-test integration-test bench clean

all: build

# Installs missing Debian packages; `apt-get update` runs once, and only when something is missing.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "run as root, or install:$$missing" >&2; exit 1; fi; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

deps:
	$(call apt_install,$(APT_PACKAGES))

test-deps: deps
	$(call apt_install,$(TEST_PACKAGES))
	@$(PYTHON) -c "import pytest, requests, joserfc, cryptography, authlib, yaml, jwt, oidc_provider_mock" 2>/dev/null || $(PYTHON) -m pip install -q pytest requests joserfc cryptography authlib pyyaml pyjwt oidc-provider-mock

bench-deps: deps
	$(call apt_install,$(BENCH_PACKAGES))

build: deps
	$(SWIFT) build

# Also fails when a target imports a module that is not among its dependencies, direct or indirect.
build-tests: deps
	$(SWIFT) build --build-tests --explicit-target-dependency-import-check error

run: build
	@bin=$(BIN_DEBUG); \
	$$bin/echo-upstream --listen 127.0.0.1:9001 & echo_pid=$$!; \
	trap "kill $$echo_pid 2>/dev/null" EXIT INT TERM; \
	$$bin/portcullis serve --config routes.yaml

# Mints a development token: make token SUB=johndoe SCOPE="me items"
token: deps
	@$(SWIFT) build >&2
	@$(BIN_DEBUG)/portcullis token --config routes.yaml --sub "$(or $(SUB),johndoe)" --scope "$(SCOPE)"

unit-test: build-tests
	$(SWIFT) test --skip-build

integration-test: build-tests test-deps
	PORTCULLIS_BIN=$(BIN_DEBUG)/portcullis ECHO_UPSTREAM_BIN=$(BIN_DEBUG)/echo-upstream \
		$(PYTHON) -m pytest -q tests/integration

test: build-tests test-deps
	$(SWIFT) test --skip-build
	$(BIN_DEBUG)/portcullis validate --config routes.yaml
	$(BIN_DEBUG)/portcullis test --config routes.yaml --coverage --min-coverage 100 policy-tests.yaml
	PORTCULLIS_BIN=$(BIN_DEBUG)/portcullis ECHO_UPSTREAM_BIN=$(BIN_DEBUG)/echo-upstream \
		$(PYTHON) -m pytest -q tests/integration

bench: bench-deps
	$(SWIFT) build -c release
	PORTCULLIS_BIN=$(BIN_RELEASE)/portcullis ECHO_UPSTREAM_BIN=$(BIN_RELEASE)/echo-upstream bash bench/run.sh $(BENCH_ARGS)
	PORTCULLIS_BIN=$(BIN_RELEASE)/portcullis $(PYTHON) bench/refresh.py $(REFRESH_BENCH_ARGS)

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
			grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::new_units_added|==[0-9]+==ERROR|property failed|SUMMARY)" ; \
		if ls fuzz/findings/$$t/* >/dev/null 2>&1; then echo "$$t: findings in fuzz/findings/$$t"; exit 1; fi; \
	done

clean:
	rm -rf .build
