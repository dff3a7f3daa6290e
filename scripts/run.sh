#!/usr/bin/env bash
# Builds the web client and the server, then starts the server with the flags given (the README's
# first command: ./scripts/run.sh --dev-auth). Everything builds into one target folder,
# $CARGO_TARGET_DIR, by default $HOME/.cache/atome-target: the one scripts/test.sh and CI use, so
# the tests do not build everything a second time.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/atome-target}"
"$repo/scripts/build-web.sh"
cd "$repo"
exec cargo run --locked -p atome -- "$@"
