#!/usr/bin/env python3
"""MCP 2026-07-28 (stateless) scenario driver on the official Python SDK (`mcp==2.3.0`, `mcp.Client`).

`mcp_client.py` beside this file drives the session-based era through `ClientSession` and the
`initialize` handshake; this one drives the modern era through the SDK's high-level `Client` in
`mode="auto"` (the `server/discover` probe, falling back to the handshake) or pinned to
`2026-07-28`, so the two stay small. It records every HTTP exchange (a tee under httpx2) and
validates every JSON-RPC message the endpoint sent against the 2026-07-28 `schema.json`
(`--schema`), by the method of the request it answers. It prints one JSON object:

    {"ok": bool, "protocol_version": ..., "checks": [{"name", "ok", "detail"}, ...],
     "schema_errors": [...], "http": {"POST 200": n, ...}, "messages": n}

Scenarios: discover, tools-list, echo, sampling, elicitation, roots, progress (server-everything's
tools). Sampling, elicitation and roots run as Multi Round-Trip Requests: the SDK's `Client`
answers the `InputRequiredResult` with its callbacks and retries with `inputResponses`.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from collections import Counter
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning

warnings.simplefilter("ignore", MCPDeprecationWarning)

SCENARIOS = ("discover", "tools-list", "echo", "sampling", "elicitation", "roots", "progress")
SAMPLING_MARKER = "MODERN-SAMPLING-ANSWER"
ELICIT_NAME = "Grace Modern"
ROOT_URI = "file:///tmp/mcp-peers/modern-root"

RESULT_DEFS = {
    "server/discover": "DiscoverResult",
    "tools/list": "ListToolsResult",
    "tools/call": "CallToolResult",
    "prompts/list": "ListPromptsResult",
    "prompts/get": "GetPromptResult",
    "resources/list": "ListResourcesResult",
    "resources/read": "ReadResourceResult",
    "resources/templates/list": "ListResourceTemplatesResult",
}


class Exchange:
    def __init__(self, method: str, request: bytes) -> None:
        self.method = method
        self.request = request
        self.status = 0
        self.content_type = ""
        self.body = bytearray()


class Tee(httpx2.AsyncBaseTransport):
    """Records each request body and the full response body while the SDK reads it."""

    def __init__(self, exchanges: list[Exchange]) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.exchanges = exchanges

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = request.content if request.method == "POST" else b""
        ex = Exchange(request.method, bytes(body))
        self.exchanges.append(ex)
        response = await self.inner.handle_async_request(request)
        ex.status = response.status_code
        ex.content_type = response.headers.get("content-type", "")
        inner = response.stream

        class Stream(httpx2.AsyncByteStream):
            async def __aiter__(self):  # type: ignore[override]
                async for chunk in inner:  # type: ignore[union-attr]
                    ex.body += chunk
                    yield chunk

            async def aclose(self) -> None:
                await inner.aclose()  # type: ignore[union-attr]

        response.stream = Stream()
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def messages_of(ex: Exchange) -> list[Any]:
    text = ex.body.decode("utf-8", "replace")
    if not text.strip():
        return []
    if "text/event-stream" in ex.content_type:
        out = []
        for event in text.replace("\r\n", "\n").split("\n\n"):
            data = "\n".join(line[5:].lstrip(" ") for line in event.split("\n") if line.startswith("data:"))
            if data:
                out.append(json.loads(data))
        return out
    return [json.loads(text)]


def validate(exchanges: list[Exchange], schema_path: str) -> tuple[int, list[str]]:
    import jsonschema

    schema = json.load(open(schema_path))
    cls = jsonschema.validators.validator_for(schema)

    def validator(name: str) -> Any:
        return cls({**schema, "$ref": f"#/$defs/{name}"})

    errors: list[str] = []
    count = 0
    for ex in exchanges:
        if ex.method != "POST":
            continue
        try:
            req = json.loads(ex.request) if ex.request else {}
        except ValueError:
            req = {}
        method = req.get("method", "") if isinstance(req, dict) else ""
        for msg in messages_of(ex):
            count += 1
            problems = [e.message for e in validator("JSONRPCMessage").iter_errors(msg)]
            if "result" in msg and msg.get("id") == req.get("id"):
                result = msg["result"]
                name = "InputRequiredResult" if result.get("resultType") == "input_required" else RESULT_DEFS.get(method, "Result")
                problems += [f"{name}: {e.message} at {list(e.absolute_path)}" for e in validator(name).iter_errors(result)]
            if "error" in msg:
                code = msg["error"].get("code")
                named = {-32020: "HeaderMismatchError", -32022: "UnsupportedProtocolVersionError"}.get(code)
                if named:
                    problems += [f"{named}: {e.message}" for e in validator(named).iter_errors(msg)]
            for p in problems:
                errors.append(f"{method}: {p[:300]}")
    return count, errors


async def run(args: argparse.Namespace) -> dict[str, Any]:
    exchanges: list[Exchange] = []
    headers = {}
    for h in args.header:
        k, _, v = h.partition(":")
        headers[k.strip()] = v.strip()
    checks: list[dict[str, Any]] = []
    seen = {"sampling": 0, "elicitation": 0, "roots": 0}

    async def on_sampling(ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        seen["sampling"] += 1
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=SAMPLING_MARKER),
            model="modern-fake-llm",
            stop_reason="endTurn",
        )

    async def on_elicitation(ctx: Any, params: Any) -> types.ElicitResult:
        seen["elicitation"] += 1
        return types.ElicitResult(action="accept", content={"name": ELICIT_NAME, "check": True, "email": "g@example.com", "integer": 3})

    async def on_roots(ctx: Any) -> types.ListRootsResult:
        seen["roots"] += 1
        return types.ListRootsResult(roots=[types.Root(uri=ROOT_URI, name="modern-root")])

    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=120.0), transport=Tee(exchanges))
    mode = args.mode
    protocol_version = None
    async with http:
        client = Client(
            streamable_http_client(args.url, http_client=http),
            mode=mode,
            sampling_callback=on_sampling,
            elicitation_callback=on_elicitation,
            list_roots_callback=on_roots,
            cache=None,
        )
        async with client:
            protocol_version = client.protocol_version

            async def check(name: str, fn: Any) -> None:
                if name not in args.scenarios:
                    return
                try:
                    with anyio.fail_after(args.timeout):
                        detail = await fn()
                    checks.append({"name": name, "ok": True, "detail": detail})
                except Exception as exc:  # a failed check is reported, not fatal
                    checks.append({"name": name, "ok": False, "detail": f"{type(exc).__name__}: {exc}"[:800]})

            async def discover() -> str:
                assert protocol_version == "2026-07-28", f"negotiated {protocol_version}"
                info = client.server_info
                return f"server {info.name if info else None}"

            async def tools_list() -> str:
                tools = await client.list_tools()
                names = sorted(t.name for t in tools.tools)
                for want in ("echo", "trigger-sampling-request", "trigger-elicitation-request", "get-roots-list"):
                    assert want in names, f"{want} missing from {names}"
                return f"{len(names)} tools"

            async def echo() -> str:
                r = await client.call_tool("echo", {"message": "modern hello"})
                text = " ".join(c.text for c in r.content if isinstance(c, types.TextContent))
                assert "modern hello" in text, text
                return text

            async def sampling() -> str:
                r = await client.call_tool("trigger-sampling-request", {"prompt": "Say hi", "maxTokens": 20})
                text = " ".join(c.text for c in r.content if isinstance(c, types.TextContent))
                assert SAMPLING_MARKER in text, text
                assert seen["sampling"] >= 1
                return text[:200]

            async def elicitation() -> str:
                r = await client.call_tool("trigger-elicitation-request", {})
                text = " ".join(c.text for c in r.content if isinstance(c, types.TextContent))
                assert ELICIT_NAME in text, text
                assert seen["elicitation"] >= 1
                return text[:200]

            async def roots() -> str:
                r = await client.call_tool("get-roots-list", {})
                text = " ".join(c.text for c in r.content if isinstance(c, types.TextContent))
                assert ROOT_URI in text, text
                return text[:200]

            async def progress() -> str:
                updates: list[float] = []

                async def on_progress(p: float, total: float | None, message: str | None) -> None:
                    updates.append(p)

                r = await client.call_tool(
                    "trigger-long-running-operation", {"duration": 1, "steps": 3}, progress_callback=on_progress
                )
                assert not r.is_error, r
                assert len(updates) >= 1, "no progress notification arrived"
                return f"{len(updates)} progress updates"

            await check("discover", discover)
            await check("tools-list", tools_list)
            await check("echo", echo)
            await check("sampling", sampling)
            await check("elicitation", elicitation)
            await check("roots", roots)
            await check("progress", progress)

    count, schema_errors = validate(exchanges, args.schema) if args.schema else (0, [])
    http_counts = Counter(f"{e.method} {e.status}" for e in exchanges)
    methods = Counter()
    for e in exchanges:
        try:
            methods[json.loads(e.request).get("method", "?") if e.request else e.method] += 1
        except ValueError:
            methods["?"] += 1
    ok = all(c["ok"] for c in checks) and not schema_errors
    return {
        "ok": ok,
        "protocol_version": protocol_version,
        "checks": checks,
        "schema_errors": schema_errors[:50],
        "messages": count,
        "http": dict(http_counts),
        "methods": dict(methods),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    p.add_argument("--mode", default="auto", help="auto (discover, then fall back) or 2026-07-28")
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--schema", help="2026-07-28 schema.json to validate every received message against")
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args()
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    try:
        out = anyio.run(run, args)
    except Exception as exc:
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-3000:]}
    print(json.dumps(out, indent=2))
    return 0 if out.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
