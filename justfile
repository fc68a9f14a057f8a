# MCP Gateway tasks. `just` lists them.
set shell := ["bash", "-euo", "pipefail", "-c"]

# Cargo's own bin directory, so freshly installed tools are found.
export PATH := env_var("HOME") + "/.cargo/bin:" + env_var("PATH")

default:
    @just --list

# Install the cargo tools the tasks need, only those missing.
tools:
    @command -v cargo-nextest >/dev/null || { echo "installing cargo-nextest"; cargo install --locked cargo-nextest; }
    @command -v cargo-deny >/dev/null || { echo "installing cargo-deny"; cargo install --locked cargo-deny; }

# Build (release) and start the gateway on the embedded SQLite store (migrated on start).
run *ARGS:
    mkdir -p data
    cargo build --release -p gateway-api
    ./target/release/gateway-api {{ARGS}}

# Like `run`, with a debug build (faster to compile).
dev *ARGS:
    mkdir -p data
    cargo run -p gateway-api -- {{ARGS}}

# Start the background worker.
worker *ARGS:
    cargo run -p gateway-worker -- {{ARGS}}

# The whole test suite. Storage tests also run on PostgreSQL when DATABASE_URL is set.
test: tools peers
    cargo build --workspace --all-features --bins
    cargo nextest run --workspace --all-features --no-fail-fast
    cargo test --workspace --all-features --doc

# Database migrations: up | down [N] | status | reset --yes (against the configured store).
migrate *ARGS="up":
    mkdir -p data
    cargo run -q -p gateway-migrate -- {{ARGS}}

# Regenerate both backends' schema.rs from the migrations (needs PostgreSQL at DATABASE_URL,
# default postgres://postgres@127.0.0.1:5432/test). A test fails when they are out of date.
schema:
    @command -v diesel >/dev/null || { echo "installing diesel_cli (needs libpq-dev)"; cargo install --locked diesel_cli --no-default-features --features "sqlite-bundled postgres"; }
    crates/gateway-store/regenerate-schema.sh

# Formatting check, clippy with warnings as errors, dependency policy.
lint: tools
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings
    cargo deny --all-features check bans licenses sources

# Format the code.
fmt:
    cargo fmt --all

# Install the pinned real MCP peers for end-to-end tests (server-everything on Node 22, the Python SDK driver)
# into tests/peers/; fast when already installed. See tests/peers/README.md.
peers:
    tests/peers/setup.sh

# Performance measurements (../shared/BENCHMARKS.md): direct-vs-gateway pairs per scenario,
# printed as ratios; asserts nothing. `just bench --help` lists the options (--quick, --rounds N...).
bench *ARGS:
    bench/run.sh {{ARGS}}

# Create organization `default`, namespace `default` and the admin user (development:
# admin@admin.com / qwerty123; production: password from GATEWAY_ADMIN_PASSWORD or a prompt).
setup-admin *ARGS:
    mkdir -p data
    cargo build --release -p gateway-api
    ./target/release/gateway-api setup-admin {{ARGS}}
