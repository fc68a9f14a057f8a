#!/usr/bin/env python3
"""A strict, modern-only MCP 2026-07-28 server for the gateway's era-bridging tests.

The official Python SDK's server is dual-era (it also answers `initialize`), so it cannot show
that a legacy client reaches a server that speaks *only* 2026-07-28. This one is written from the
2026-07-28 specification and its `schema.json` examples:

- `initialize` (and anything without a modern `_meta` protocol version) is refused with
  `UnsupportedProtocolVersion` (-32022) listing `["2026-07-28"]`; over HTTP with status 400;
- over HTTP, `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` (Base64 sentinel decoded) must
  mirror the body, else 400 `HeaderMismatch` (-32020); GET and DELETE are 405;
- `server/discover`, `tools/list` (with `ttlMs`/`cacheScope`), `tools/call` of `echo`
  ("Echo: <message>"), `trigger-elicitation-request` (MRTR: an `InputRequiredResult` with an
  `elicitation/create` input request and a `requestState`; the retry's answer ends up in the text
  as "- Name: <name>" and "Favorite Integer: <integer>", as server-everything writes it) and
  `seen` (a JSON summary of what the server received: methods, the `_meta` keys and log levels);
- `notifications/message` is sent on an SSE response only for requests carrying a `_meta`
  log level.

Usage: `modern_server.py http` (prints `PORT <n>` once listening on 127.0.0.1) or
`modern_server.py stdio` (newline-delimited JSON-RPC on stdin/stdout).
"""

from __future__ import annotations

import base64
import json
import socket
import sys
from typing import Any

VERSION = "2026-07-28"
SEEN: dict[str, Any] = {"methods": [], "meta_keys": [], "log_levels": [], "client_info": []}
TOOLS = [
    {"name": "echo", "description": "Echoes the message", "inputSchema": {
        "type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}},
    {"name": "trigger-elicitation-request", "description": "Asks the user (MRTR)",
     "inputSchema": {"type": "object", "properties": {}}},
    {"name": "seen", "description": "What this server received", "inputSchema": {"type": "object", "properties": {}}},
]


def error(id_: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    e: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        e["data"] = data
    return {"jsonrpc": "2.0", "id": id_, "error": e}


def result(id_: Any, value: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "result": {"resultType": "complete", **value}}


def text(id_: Any, t: str) -> dict[str, Any]:
    return result(id_, {"content": [{"type": "text", "text": t}]})


def handle(msg: dict[str, Any]) -> tuple[dict[str, Any] | None, int]:
    """The answer to one message and its HTTP status (None for notifications)."""
    if "method" not in msg or "id" not in msg:
        return None, 202
    id_, method = msg["id"], msg["method"]
    params = msg.get("params") or {}
    meta = params.get("_meta") or {}
    version = meta.get("io.modelcontextprotocol/protocolVersion")
    SEEN["methods"].append(method)
    if version != VERSION:
        return error(id_, -32022, "Unsupported protocol version",
                     {"supported": [VERSION], "requested": version or params.get("protocolVersion", "")}), 400
    SEEN["meta_keys"].append(sorted(meta))
    SEEN["log_levels"].append(meta.get("io.modelcontextprotocol/logLevel"))
    SEEN["client_info"].append(meta.get("io.modelcontextprotocol/clientInfo"))
    if method == "server/discover":
        return result(id_, {
            "supportedVersions": [VERSION],
            "capabilities": {"tools": {}},
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "modern-only-server", "version": "1.0.0"}},
            "instructions": "A strict 2026-07-28 server.",
            "ttlMs": 60000, "cacheScope": "public",
        }), 200
    if method == "tools/list":
        return result(id_, {"tools": TOOLS, "ttlMs": 60000, "cacheScope": "public"}), 200
    if method == "tools/call":
        name = params.get("name")
        args = params.get("arguments") or {}
        if name == "echo":
            return text(id_, f"Echo: {args.get('message', '')}"), 200
        if name == "seen":
            return text(id_, json.dumps(SEEN)), 200
        if name == "trigger-elicitation-request":
            answers = params.get("inputResponses") or {}
            state = params.get("requestState")
            answer = answers.get("user_info")
            if state != "modern-state-1" or not isinstance(answer, dict):
                if "elicitation" not in (meta.get("io.modelcontextprotocol/clientCapabilities") or {}):
                    return error(id_, -32021, "elicitation capability required",
                                 {"requiredCapabilities": {"elicitation": {}}}), 200
                return {"jsonrpc": "2.0", "id": id_, "result": {
                    "resultType": "input_required",
                    "inputRequests": {"user_info": {"method": "elicitation/create", "params": {
                        "mode": "form", "message": "Please provide your information",
                        "requestedSchema": {"type": "object", "properties": {
                            "name": {"type": "string"}, "integer": {"type": "integer"}}, "required": ["name"]}}}},
                    "requestState": "modern-state-1"}}, 200
            content = answer.get("content") or {}
            return text(id_, f"action={answer.get('action')}\n- Name: {content.get('name')}\n"
                             f"- Favorite Integer: {content.get('integer')}"), 200
        return error(id_, -32602, f"Unknown tool: {name}"), 200
    return error(id_, -32601, "Method not found"), 404


def decode(v: str) -> str:
    if v.startswith("=?base64?") and v.endswith("?="):
        return base64.b64decode(v[9:-2]).decode()
    return v


def check_headers(headers: dict[str, str], msg: dict[str, Any]) -> str | None:
    params = msg.get("params") or {}
    meta = params.get("_meta") or {}
    if headers.get("mcp-protocol-version") != meta.get("io.modelcontextprotocol/protocolVersion"):
        return "MCP-Protocol-Version does not match the body"
    if headers.get("mcp-method") != msg.get("method"):
        return "Mcp-Method does not match the body"
    key = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}.get(msg.get("method", ""))
    if key and decode(headers.get("mcp-name", "")) != params.get(key):
        return "Mcp-Name does not match the body"
    return None


def serve_http() -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    async def mcp(request: Request) -> Response:
        if request.method != "POST":
            return Response(status_code=405, headers={"allow": "POST"})
        msg = json.loads(await request.body())
        headers = {k.lower(): v for k, v in request.headers.items()}
        meta = ((msg.get("params") or {}).get("_meta") or {})
        if "id" in msg and meta.get("io.modelcontextprotocol/protocolVersion") == VERSION:
            problem = check_headers(headers, msg)
            if problem:
                SEEN.setdefault("header_errors", []).append(problem)
                return JSONResponse(error(msg.get("id"), -32020, problem), status_code=400)
        answer, status = handle(msg)
        if answer is None:
            return Response(status_code=202)
        level = meta.get("io.modelcontextprotocol/logLevel")
        if level and msg.get("method") == "tools/call":
            log = {"jsonrpc": "2.0", "method": "notifications/message",
                   "params": {"level": "info", "data": "modern-server log for this request"}}

            async def events():
                yield f"event: message\ndata: {json.dumps(log)}\n\n"
                yield f"event: message\ndata: {json.dumps(answer)}\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return JSONResponse(answer, status_code=status)

    app = Starlette(routes=[Route("/mcp", mcp, methods=["GET", "POST", "DELETE"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])


def serve_stdio() -> None:
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        answer, _ = handle(msg)
        if answer is not None:
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "stdio":
        serve_stdio()
    else:
        serve_http()
