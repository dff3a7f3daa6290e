#!/usr/bin/env bash
# Builds the web bundle and the server, then runs the browser tests in Debian's Chromium (and
# Firefox ESR through geckodriver for the cross-browser test, skipped with a reason if absent).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/atome-target}"
command -v chromium >/dev/null || { echo "the browser tests need Debian's chromium (apt-get install chromium)" >&2; exit 1; }
"$repo/scripts/build-web.sh"
(cd "$repo" && cargo build --locked -p atome)
node --test --test-concurrency=1 "$repo"/tests/e2e/*.test.mjs
