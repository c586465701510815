#!/usr/bin/env bash
# Installs everything VeriStream and its tests need on a fresh machine:
# Debian packages (mosquitto, chromium and its driver), the Python distribution with all extras into
# .venv, and the npm tools (solc, OpenZeppelin, Foundry, IPFS importer, js-ipfs, the dApp example).
# Idempotent: re-running it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------
need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
# the dashboard's browser test: headless Chromium driven through Debian's chromedriver
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
    log "apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# --- Python ----------------------------------------------------------------
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$PYTHON" -m venv .venv
fi
log "pip install -e .[all]"
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | sed '/^WARNING: Location/d'
.venv/bin/python -m pip install -q -e '.[all]' 2>&1 | sed '/^WARNING: Location/d'
.venv/bin/python -c 'import veristream.cli' || { log "python install failed"; exit 1; }

# --- npm -------------------------------------------------------------------
log "npm ci (compiler, OpenZeppelin, Foundry, IPFS importer)"
npm ci --no-audit --no-fund --loglevel=error >/dev/null
if [ -f infra/jsipfs/package.json ]; then
    log "npm ci in infra/jsipfs (js-ipfs RPC node for tests)"
    (cd infra/jsipfs && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
if [ -f examples/dapp/package.json ]; then
    log "npm ci in examples/dapp (the TypeScript dApp example: viem, merkle-tree, tsx)"
    (cd examples/dapp && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
log "done"
