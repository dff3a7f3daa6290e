#!/usr/bin/env bash
# Runs every test of the project: Rust unit and integration tests (real server, SQLite, UDP).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/atome-target}"
cargo test --workspace --locked
