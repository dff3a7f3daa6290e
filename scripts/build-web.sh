#!/usr/bin/env bash
# Builds the web client into web/dist (npm ci, then esbuild) with a Node its dependencies support:
# mediasoup-client 3.24 (the first whose device.sendRtpCapabilities carries the browser's own
# payload types, which our createTransport needs) and its dependencies declare Node >= 22. The
# system's Node if it is recent enough, else Node 22 from the npm registry (the `node` package,
# kept in $ATOME_NODE_CACHE, default $HOME/.cache/atome-node), so Debian 12's Node 18 still builds.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
want=22
major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
command -v npm >/dev/null || { echo "the web client needs npm (apt-get install nodejs npm)" >&2; exit 1; }
if [ "$(major node)" -lt "$want" ]; then
  cache=${ATOME_NODE_CACHE:-$HOME/.cache/atome-node}
  if [ "$(major "$cache/node_modules/.bin/node")" -lt "$want" ]; then
    echo "Node $(major node) is older than the web client's dependencies support ($want): fetching Node $want from the npm registry into $cache" >&2
    npm install --prefix "$cache" --no-audit --no-fund --no-save --loglevel=error "node@$want" >&2
  fi
  export PATH="$cache/node_modules/.bin:$PATH"
  echo "building the web client with Node $(node --version) from $cache" >&2
fi
cd "$repo/web"
npm ci --no-audit --no-fund --loglevel=error
npm run build
