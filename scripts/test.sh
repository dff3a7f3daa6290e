#!/usr/bin/env bash
# Runs every test of the project: Rust unit and integration tests against the real server,
# real SQLite files, real UDP on loopback and real FFmpeg (recording).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/atome-target}"
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ffmpeg (recording tests use it)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg
  else
    echo "the recording tests need ffmpeg and ffprobe: install ffmpeg (e.g. apt-get install ffmpeg)" >&2
    exit 1
  fi
fi
# Formatting first: it takes a second and says exactly what to run (cargo fmt --all).
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all -- --check || { echo "run: cargo fmt --all" >&2; exit 1; }
else
  echo "rustfmt not installed: formatting not checked (rustup component add rustfmt)"
fi
cargo test --workspace --locked
# Fuzz targets (fuzz/, nightly + cargo-fuzz, installed when missing): the committed regression
# inputs, then each target for 15 s. Skipped, saying why, where the nightly toolchain or
# cargo-fuzz cannot be installed. Their build is cached beside the main one.
CARGO_TARGET_DIR="$CARGO_TARGET_DIR-fuzz" scripts/fuzz.sh --ci
# Browser tests: two and three users in real Chromium through the UI (builds the web bundle).
tests/e2e/run.sh
node --test tests/conformance/*.test.mjs
# Monitoring: promtool checks the Prometheus config, alert rules and their unit tests; then the
# real server and Debian's Prometheus run every Grafana dashboard query (deploy/check.sh, ~10 s).
deploy/check.sh "$CARGO_TARGET_DIR/debug/atome"
# The installer's real test (debootstrap + chroot) needs root; it uses the binary built above.
if [ "$(id -u)" = 0 ]; then
  tests/install/run.sh "$CARGO_TARGET_DIR/debug/atome"
else
  echo "install test not run: it needs root (sudo tests/install/run.sh)"
fi
