# The README's two commands: `make demo` and `make test`. Both install the
# Debian packages they need first (scripts/deps.sh).

CARGO ?= cargo

.PHONY: deps build demo test lint bench fuzz clean

deps:
	@./scripts/deps.sh

build: deps
	$(CARGO) build --release

# The daemon against a simulated docking station, with the embedded defaults.
demo: build
	./target/release/bodycamd demo

# Every test, plus formatting and lints (what CI runs). scripts/deps.sh
# installs Chromium and ChromeDriver, so the console's browser tests must run.
test: export BODYCAMD_TEST_REQUIRE_BROWSER = 1
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test
	@if ./scripts/pg-up.sh; then \
		echo "== the suite again, on PostgreSQL =="; \
		BODYCAMD_TEST_ENGINE=postgres $(CARGO) test --tests; \
	elif [ -n "$${BODYCAMD_TEST_REQUIRE_PG:-}" ]; then \
		echo "PostgreSQL is required (BODYCAMD_TEST_REQUIRE_PG) but not reachable" >&2; exit 1; \
	else \
		echo "SKIPPED: the PostgreSQL half of the suite (no server on 127.0.0.1:5432)"; \
	fi
	./scripts/api-fuzz.sh
	FUZZ_SECS=12 ./scripts/cargo-fuzz.sh
	./scripts/package-check.sh

# Longer fuzzing (FUZZ_SECS per target, default 60): every libFuzzer target,
# then the media prober (through its processes) on mutated bytes.
fuzz: deps
	./scripts/cargo-fuzz.sh
	./scripts/fuzz.sh

bench: build
	./scripts/bench.sh

clean:
	$(CARGO) clean
