#!/usr/bin/env bash
# Start an offline js-ipfs node serving the IPFS RPC API on loopback, for tests
# and benchmarks (kubo cannot be installed here; js-ipfs is a real node).
#
#   infra/jsipfs/start.sh REPO_DIR PORT
#
# Initialises REPO_DIR if needed (test profile, empty repo), points the API at
# 127.0.0.1:PORT, turns off swarm, bootstrap, delegates and gateway, then execs
# the daemon (so the caller's PID is the daemon's and stopping it stops the node).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="${1:?usage: start.sh REPO_DIR PORT}"
port="${2:?usage: start.sh REPO_DIR PORT}"
jsipfs="$here/node_modules/.bin/jsipfs"
[ -x "$jsipfs" ] || { echo "js-ipfs is not installed: run infra/setup.sh (npm ci in infra/jsipfs)" >&2; exit 1; }

export IPFS_PATH="$repo"
export NODE_OPTIONS="--require $here/polyfill.cjs ${NODE_OPTIONS:-}"
if [ ! -f "$repo/config" ]; then
    "$jsipfs" init --profile test --emptyRepo >/dev/null
fi
# Edit the config file directly: five `jsipfs config` calls would cost a node
# start each.
node -e '
const fs = require("fs")
const [file, port] = process.argv.slice(1)
const config = JSON.parse(fs.readFileSync(file, "utf8"))
config.Addresses = { ...config.Addresses, API: `/ip4/127.0.0.1/tcp/${port}`, Gateway: "", Swarm: [], Delegates: [] }
config.Bootstrap = []
config.Discovery = { MDNS: { Enabled: false }, webRTCStar: { Enabled: false } }
fs.writeFileSync(file, JSON.stringify(config, null, 2))
' "$repo/config" "$port"
exec "$jsipfs" daemon --offline
