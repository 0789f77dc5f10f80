# The two commands of the README, and their parts.
.PHONY: setup demo test unit install bench-kernels bench-embed

demo:
	scripts/demo.sh

setup:
	scripts/setup.sh

# Whole suite: set-up (idempotent), unit tests, SQL regression suite, integration tests.
test:
	scripts/test.sh

unit:
	cargo test --release --lib

install: setup
	cargo pgrx install --release --pg-config /usr/lib/postgresql/15/bin/pg_config

bench-kernels:
	cargo run --release --manifest-path bench/kernels/Cargo.toml

# Encoders against Python onnxruntime; needs a ViT-B/32-sized model (see bench/embed/run.sh).
bench-embed:
	bench/embed/run.sh
