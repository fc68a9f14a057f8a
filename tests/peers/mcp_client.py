#!/usr/bin/env python3
"""Scenario driver for MCP endpoints, built on the official Python SDK (`mcp==2.3.0`, `ClientSession`).

It connects over Streamable HTTP, legacy HTTP+SSE, WebSocket or stdio, always with the session-based
`initialize` handshake (never the 2026-07-28 `server/discover` probe), declares the sampling,
elicitation and roots client capabilities with deterministic callbacks, runs named scenarios that
mirror the gateway's acceptance list against `@modelcontextprotocol/server-everything`, and prints one
JSON object on stdout:

    {"ok": bool, "transport": ..., "protocol_version": ..., "checks": [{"name", "ok", "detail"}, ...], ...}

Exit code 0 only if every selected check passed (1 otherwise, 2 for usage errors, 3 when the
watchdog fired). Every wait has a timeout. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import re
import shlex
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import anyio
import httpx2
import mcp.client.sse as _sdk_sse
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.client.session import ClientRequestContext, ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.shared.message import SessionMessage
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

# logging/setLevel, resources/subscribe and roots are deprecated in 2026-07-28 but are exactly what
# the handshake era uses: silence the SDK's deprecation warnings so stderr stays readable.
warnings.simplefilter("ignore", MCPDeprecationWarning)

log = logging.getLogger("mcp_client")

TRANSPORTS = ("streamable-http", "sse", "ws", "stdio")

# Scenario names, in run order. `initialize` always runs (it is how the session is opened).
SCENARIOS = (
    "initialize",
    "ping",
    "tools-list",
    "echo",
    "resources",
    "prompts",
    "completion",
    "logging",
    "progress",
    "sampling",
    "elicitation",
    "roots",
    "cancellation",
    "large-payload",
    "concurrent-calls",
    "concurrent-sessions",
)

# What server-everything@2026.8.31 offers (tool names are kebab-case since 2026).
EXPECTED_TOOLS = (
    "echo",
    "get-sum",
    "trigger-long-running-operation",
    "toggle-simulated-logging",
    "toggle-subscriber-updates",
    # Registered only after the server sees our sampling/elicitation/roots capabilities.
    "trigger-sampling-request",
    "trigger-elicitation-request",
    "get-roots-list",
)
EXPECTED_PROMPTS = ("simple-prompt", "args-prompt", "completable-prompt")
TEXT_TEMPLATE = "demo://resource/dynamic/text/{resourceId}"

# Deterministic answers of our client-side callbacks, so scenarios can find them in tool results.
SAMPLING_MODEL = "mcp-peers-fake-llm"
SAMPLING_MARKER = "PEERS-SAMPLING-ANSWER"
ELICIT_NAME = "Ada Peer-Tester"
ELICIT_INTEGER = 7
ROOTS = (
    ("file:///tmp/mcp-peers/root-alpha", "peers-root-alpha"),
    ("file:///tmp/mcp-peers/root-beta", "peers-root-beta"),
)


class CheckFailed(Exception):
    """A check's expectation did not hold; the message becomes the check's detail."""


def expect(cond: bool, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


def short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


def describe_exc(exc: BaseException) -> str:
    """One line for an exception, flattening exception groups (anyio task groups raise them)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe_exc(e) for e in exc.exceptions)
    if isinstance(exc, CheckFailed):
        return str(exc)
    text = f"{type(exc).__name__}: {exc}"
    return short(text, 500)


def is_teardown_race(exc: BaseException) -> bool:
    """The SDK's shutdown race: a late server message hits the already-closed session streams.

    mcp 2.3.0's legacy-SSE client (and sometimes others) then raises BrokenResourceError or
    ClosedResourceError out of the transport's exit, after every request was answered.
    """
    if isinstance(exc, BaseExceptionGroup):
        return all(is_teardown_race(e) for e in exc.exceptions)
    return isinstance(exc, anyio.BrokenResourceError | anyio.ClosedResourceError)


def tool_text(result: types.CallToolResult) -> str:
    """The concatenated text blocks of a tool result."""
    return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))


# --------------------------------------------------------------------------------------------
# A connection: transport + tapped streams + ClientSession + what it observed.
# --------------------------------------------------------------------------------------------


class Inbox:
    """Server notifications received on one session, with a timed wait for a matching one."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = anyio.Event()

    def add(self, item: Any) -> None:
        self.items.append(item)
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def wait_for(self, predicate: Callable[[Any], bool], start: int = 0) -> Any:
        """First item at index >= start matching predicate; waits (caller bounds it with a timeout)."""
        while True:
            changed = self._changed
            for item in self.items[start:]:
                if predicate(item):
                    return item
            await changed.wait()


@dataclass
class Conn:
    label: str
    args: argparse.Namespace
    session: ClientSession | None = None
    init_result: types.InitializeResult | None = None
    session_id: str | None = None
    inbox: Inbox = field(default_factory=Inbox)
    outbound: list[Any] = field(default_factory=list)  # JSON-RPC messages we wrote, in order
    inbound_count: int = 0
    transport_errors: list[str] = field(default_factory=list)
    http: Counter[str] = field(default_factory=Counter)  # "POST 200" -> count
    sampling_requests: list[types.CreateMessageRequestParams] = field(default_factory=list)
    elicitation_requests: list[Any] = field(default_factory=list)
    roots_requests: int = 0
    ws_subprotocol: str | None = None
    init_duration: float = 0.0

    # --- ClientSession callbacks -----------------------------------------------------------
    async def on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            self.transport_errors.append(describe_exc(message))
            log.warning("[%s] transport error: %s", self.label, describe_exc(message))
        else:
            self.inbox.add(message)

    async def on_sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.sampling_requests.append(params)
        texts: list[str] = []
        for msg in params.messages:
            blocks = msg.content if isinstance(msg.content, list) else [msg.content]
            texts += [b.text for b in blocks if isinstance(b, types.TextContent)]
        prompt = " | ".join(texts)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"{SAMPLING_MARKER} to: {prompt}"),
            model=SAMPLING_MODEL,
            stop_reason="endTurn",
        )

    async def on_elicitation(self, context: ClientRequestContext, params: Any) -> types.ElicitResult:
        self.elicitation_requests.append(params)
        if getattr(params, "mode", "form") != "form":
            return types.ElicitResult(action="decline")
        return types.ElicitResult(
            action="accept",
            content={"name": ELICIT_NAME, "check": True, "email": "ada@example.com", "integer": ELICIT_INTEGER},
        )

    async def on_list_roots(self, context: ClientRequestContext) -> types.ListRootsResult:
        self.roots_requests += 1
        return types.ListRootsResult(roots=[types.Root(uri=uri, name=name) for uri, name in ROOTS])

    # --- helpers ---------------------------------------------------------------------------
    @property
    def s(self) -> ClientSession:
        assert self.session is not None
        return self.session

    def tool(self, name: str) -> str:
        return f"{self.args.tool_prefix}{name}"

    def prompt(self, name: str) -> str:
        return f"{self.args.prompt_prefix}{name}"

    def uri(self, uri: str) -> str:
        return f"{self.args.resource_prefix}{uri}"

    async def first_resource(self) -> str:
        """The first listed resource under the resource prefix (the server the tools belong to)."""
        res = await self.s.list_resources()
        uris = [str(r.uri) for r in res.resources if str(r.uri).startswith(self.args.resource_prefix)]
        expect(len(uris) > 0, f"no resource under {self.args.resource_prefix!r} among {len(res.resources)}")
        return uris[0]

    async def call(self, name: str, arguments: dict[str, Any] | None = None, **kw: Any) -> types.CallToolResult:
        result = await self.s.call_tool(self.tool(name), arguments or {}, **kw)
        expect(not result.is_error, f"{self.tool(name)} returned isError: {short(tool_text(result))}")
        return result


class TapWrite:
    """Write stream wrapper recording every JSON-RPC message the session sends."""

    def __init__(self, inner: Any, conn: Conn) -> None:
        self._inner, self._conn = inner, conn

    async def send(self, item: SessionMessage) -> None:
        self._conn.outbound.append(item.message)
        await self._inner.send(item)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> TapWrite:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        return await self._inner.__aexit__(*exc)


class TapRead:
    """Read stream wrapper counting inbound messages; keeps the transport's `last_context`."""

    def __init__(self, inner: Any, conn: Conn) -> None:
        self._inner, self._conn = inner, conn

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        item = await self._inner.receive()
        self._conn.inbound_count += 1
        return item

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> TapRead:
        return self

    async def __anext__(self) -> Any:
        item = await self._inner.__anext__()
        self._conn.inbound_count += 1
        return item

    async def __aenter__(self) -> TapRead:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        return await self._inner.__aexit__(*exc)


def parse_headers(raw: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"--header must look like 'Name: value', got {item!r}")
        headers[name.strip()] = value.strip()
    return headers


def http_client_for(conn: Conn, headers: dict[str, str] | None, timeout: httpx2.Timeout | None = None,
                    auth: Any = None) -> httpx2.AsyncClient:
    """An httpx2 client like the SDK's default one, plus a hook recording statuses and the session id."""

    async def on_response(response: httpx2.Response) -> None:
        conn.http[f"{response.request.method} {response.status_code}"] += 1
        sid = response.headers.get("mcp-session-id")
        if sid:
            conn.session_id = sid

    return httpx2.AsyncClient(
        headers=headers,
        timeout=timeout or httpx2.Timeout(30.0, read=300.0),
        auth=auth,
        event_hooks={"response": [on_response]},
    )


@asynccontextmanager
async def ws_transport(url: str, headers: dict[str, str], conn: Conn) -> AsyncIterator[tuple[Any, Any]]:
    """WebSocket client transport (the SDK has none): `mcp` subprotocol, one JSON-RPC message per text frame."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    max_size = conn.args.max_event_bytes
    async with connect(
        url,
        subprotocols=["mcp"],
        additional_headers=headers or None,
        max_size=max_size,
        open_timeout=conn.args.timeout,
        ping_interval=None,
        compression=None,
    ) as ws:
        conn.ws_subprotocol = ws.subprotocol
        if ws.subprotocol != "mcp":
            raise RuntimeError(f"server did not select the 'mcp' WebSocket subprotocol (got {ws.subprotocol!r})")
        read_writer: MemoryObjectSendStream[SessionMessage | Exception]
        read_stream: MemoryObjectReceiveStream[SessionMessage | Exception]
        read_writer, read_stream = anyio.create_memory_object_stream(0)
        write_stream: MemoryObjectSendStream[SessionMessage]
        write_reader: MemoryObjectReceiveStream[SessionMessage]
        write_stream, write_reader = anyio.create_memory_object_stream(0)

        async def reader() -> None:
            try:
                async with read_writer:
                    async for frame in ws:
                        if isinstance(frame, bytes):
                            await read_writer.send(ValueError("binary WebSocket frame; MCP uses text frames"))
                            continue
                        try:
                            message = types.jsonrpc_message_adapter.validate_json(frame, by_name=False)
                        except Exception as exc:  # a malformed frame is reported, not fatal
                            await read_writer.send(exc)
                            continue
                        await read_writer.send(SessionMessage(message))
            except ConnectionClosed as exc:  # closed without a clean close frame (or with an error code)
                conn.transport_errors.append(f"WebSocket closed: {exc}")
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass  # the session closed its end: a message that raced the shutdown is dropped

        async def writer() -> None:
            try:
                async with write_reader:
                    async for session_message in write_reader:
                        await ws.send(session_message.message.model_dump_json(by_alias=True, exclude_unset=True))
            except (ConnectionClosed, anyio.ClosedResourceError):
                pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(writer)
            try:
                yield read_stream, write_stream
            finally:
                tg.cancel_scope.cancel()


def transport_for(conn: Conn) -> Any:
    """The SDK transport (an async context manager yielding streams) and the httpx2 client it needs opened."""
    args = conn.args
    headers = parse_headers(args.header)
    if args.transport == "streamable-http":
        client = http_client_for(conn, headers)
        return streamable_http_client(args.url, http_client=client, max_sse_event_size=args.max_event_bytes), client
    if args.transport == "sse":

        def factory(headers: dict[str, str] | None = None, timeout: Any = None, auth: Any = None) -> httpx2.AsyncClient:
            return http_client_for(conn, headers, timeout, auth)

        def on_session(sid: str) -> None:
            conn.session_id = sid

        return sse_client(args.url, headers=headers, httpx_client_factory=factory, on_session_created=on_session), None
    if args.transport == "ws":
        return ws_transport(args.url, headers, conn), None
    argv = shlex.split(args.command)
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))
    return stdio_client(params, errlog=sys.stderr if args.server_stderr else devnull()), None


@functools.cache
def devnull() -> Any:
    return open(os.devnull, "w")  # noqa: SIM115 - one for the whole run


@asynccontextmanager
async def open_conn(
    args: argparse.Namespace, label: str, on_conn: Callable[[Conn], None] | None = None
) -> AsyncIterator[Conn]:
    """Connect, run the `initialize` handshake (legacy era, pinned) and yield the connection."""
    conn = Conn(label=label, args=args)
    if on_conn is not None:
        on_conn(conn)  # so a failed connect still reports what the transport saw (HTTP statuses)
    async with AsyncExitStack() as stack:
        transport, client = transport_for(conn)
        if client is not None:
            await stack.enter_async_context(client)
        read_stream, write_stream = await stack.enter_async_context(transport)
        session = ClientSession(
            TapRead(read_stream, conn),
            TapWrite(write_stream, conn),
            read_timeout_seconds=args.timeout,
            sampling_callback=conn.on_sampling,
            elicitation_callback=conn.on_elicitation,
            list_roots_callback=conn.on_list_roots,
            message_handler=conn.on_message,
            client_info=types.Implementation(name="mcp-gateway-peers-driver", version="1.0.0"),
        )
        conn.session = await stack.enter_async_context(session)
        # ClientSession.initialize() always speaks the handshake (protocolVersion 2025-11-25, the
        # newest handshake version) and never probes `server/discover`; that is the 2.x SDK's
        # `Client(mode="legacy")` path. `Client(mode="auto")` would try 2026-07-28 first.
        t0 = time.monotonic()
        try:
            with anyio.fail_after(args.timeout):
                conn.init_result = await session.initialize()
        except TimeoutError:
            raise TimeoutError(f"no answer to initialize within {args.timeout:g}s") from None
        conn.init_duration = time.monotonic() - t0
        yield conn


# --------------------------------------------------------------------------------------------
# Scenarios. Each is `async def (ctx) -> detail` and raises CheckFailed (or anything) to fail.
# --------------------------------------------------------------------------------------------


@dataclass
class Ctx:
    args: argparse.Namespace
    conn: Conn
    report: Report


async def sc_initialize(ctx: Ctx) -> str:
    r = ctx.conn.init_result
    assert r is not None
    expect(r.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS, f"negotiated {r.protocol_version}, not a handshake version")
    caps = r.capabilities.model_dump(by_alias=True, exclude_none=True)
    return (
        f"serverInfo={r.server_info.name}@{r.server_info.version} protocolVersion={r.protocol_version} "
        f"capabilities={sorted(caps)} session_id={ctx.conn.session_id}"
    )


async def sc_ping(ctx: Ctx) -> str:
    await ctx.conn.s.send_ping()
    return "ping answered"


async def list_all_tools(conn: Conn) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor = None
    for _ in range(100):
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await conn.s.list_tools(params=params)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


async def sc_tools_list(ctx: Ctx) -> str:
    names = [t.name for t in await list_all_tools(ctx.conn)]
    missing = [ctx.conn.tool(n) for n in EXPECTED_TOOLS if ctx.conn.tool(n) not in names]
    expect(not missing, f"missing tools {missing}; got {names}")
    expect(len(names) == len(set(names)), f"duplicate tool names in {names}")
    return f"{len(names)} tools: {', '.join(names)}"


async def sc_echo(ctx: Ctx) -> str:
    message = "hello from mcp_client.py — ünïcödé ✓ \"quotes\" \\ backslash"
    text = tool_text(await ctx.conn.call("echo", {"message": message}))
    expect(text == f"Echo: {message}", f"echo answered {text!r}")
    return f"echo answered {text!r}"


async def sc_resources(ctx: Ctx) -> None:
    conn, rep = ctx.conn, ctx.report

    async def listed() -> str:
        res = await conn.s.list_resources()
        expect(len(res.resources) > 0, "resources/list returned no resources")
        return f"{len(res.resources)} resources, first {res.resources[0].uri}"

    async def read() -> str:
        uri = await conn.first_resource()
        out = await conn.s.read_resource(uri)
        expect(len(out.contents) > 0, f"read {uri}: no contents")
        first = out.contents[0]
        size = len(getattr(first, "text", None) or getattr(first, "blob", "") or "")
        expect(str(first.uri) == uri and size > 0, f"read {uri}: got uri {first.uri} size {size}")
        dyn = await conn.s.read_resource(conn.uri("demo://resource/dynamic/text/7"))
        dtext = getattr(dyn.contents[0], "text", "")
        expect("Resource 7" in dtext, f"templated read answered {short(dtext)!r}")
        return f"read {uri} ({size} chars) and demo://resource/dynamic/text/7 ({short(dtext, 80)!r})"

    async def templates() -> str:
        res = await conn.s.list_resource_templates()
        uris = [t.uri_template for t in res.resource_templates]
        expect(conn.uri(TEXT_TEMPLATE) in uris, f"{conn.uri(TEXT_TEMPLATE)} not in {uris}")
        return f"templates: {uris}"

    async def subscribe() -> str:
        uri = await conn.first_resource()
        start = len(conn.inbox.items)
        await conn.s.subscribe_resource(uri)
        toggled = False
        try:
            # Starts a 5 s interval that also fires once at once, for every URI this session subscribed to.
            await conn.call("toggle-subscriber-updates")
            toggled = True
            t0 = time.monotonic()
            note = await conn.inbox.wait_for(
                lambda n: isinstance(n, types.ResourceUpdatedNotification) and str(n.params.uri) == uri, start
            )
            waited = time.monotonic() - t0
        finally:
            if toggled:
                await conn.call("toggle-subscriber-updates")  # off again
            await conn.s.unsubscribe_resource(uri)
        return f"subscribed {uri}; notifications/resources/updated for {note.params.uri} after {waited:.2f}s; unsubscribed"

    await rep.run("resources.list", listed)
    await rep.run("resources.read", read)
    await rep.run("resources.templates", templates)
    await rep.run("resources.subscribe", subscribe)


async def sc_prompts(ctx: Ctx) -> None:
    conn, rep = ctx.conn, ctx.report

    async def listed() -> str:
        names = [p.name for p in (await conn.s.list_prompts()).prompts]
        missing = [conn.prompt(n) for n in EXPECTED_PROMPTS if conn.prompt(n) not in names]
        expect(not missing, f"missing prompts {missing}; got {names}")
        return f"prompts: {names}"

    async def get() -> str:
        res = await conn.s.get_prompt(conn.prompt("args-prompt"), {"city": "Lyon", "state": "Rhône"})
        texts = [m.content.text for m in res.messages if isinstance(m.content, types.TextContent)]
        expect("What's weather in Lyon, Rhône?" in texts, f"args-prompt answered {texts}")
        return f"args-prompt(city=Lyon, state=Rhône) -> {texts}"

    await rep.run("prompts.list", listed)
    await rep.run("prompts.get", get)


async def sc_completion(ctx: Ctx) -> str:
    conn = ctx.conn
    ref = types.PromptReference(type="ref/prompt", name=conn.prompt("completable-prompt"))
    dep = await conn.s.complete(ref, {"name": "department", "value": "Eng"})
    expect(dep.completion.values == ["Engineering"], f"department 'Eng' completed to {dep.completion.values}")
    name = await conn.s.complete(ref, {"name": "name", "value": "A"}, context_arguments={"department": "Engineering"})
    expect(name.completion.values == ["Alice"], f"name 'A' (Engineering) completed to {name.completion.values}")
    tref = types.ResourceTemplateReference(type="ref/resource", uri=ctx.conn.uri(TEXT_TEMPLATE))
    rid = await conn.s.complete(tref, {"name": "resourceId", "value": "42"})
    expect(rid.completion.values == ["42"], f"resourceId '42' completed to {rid.completion.values}")
    return "prompt argument: Eng->Engineering, A+context->Alice; resource template resourceId: 42->42"


async def sc_logging(ctx: Ctx) -> str:
    conn = ctx.conn

    def is_log(pred: Callable[[types.LoggingMessageNotificationParams], bool]) -> Callable[[Any], bool]:
        return lambda n: isinstance(n, types.LoggingMessageNotification) and pred(n.params)

    await conn.s.set_logging_level("debug")
    start = len(conn.inbox.items)
    # Sends one random-level message at once, then one every 5 s ("Alert level-message" has a dash).
    await conn.call("toggle-simulated-logging")
    try:
        note = await conn.inbox.wait_for(is_log(lambda p: re.search(r"level[- ]message", str(p.data), re.I) is not None), start)
    finally:
        await conn.call("toggle-simulated-logging")  # off again
    got = f"notifications/message level={note.params.level} data={short(str(note.params.data), 80)!r}"
    # The level must reach the server: at `emergency` the `info` message that resources/subscribe
    # emits is filtered out there, at `debug` it arrives.
    uri = conn.uri("demo://resource/dynamic/text/1")
    await conn.s.set_logging_level("emergency")
    start = len(conn.inbox.items)
    await conn.s.subscribe_resource(uri)
    await conn.s.unsubscribe_resource(uri)
    await conn.s.send_ping()
    await anyio.sleep(0.3)
    leaked = [n for n in conn.inbox.items[start:] if isinstance(n, types.LoggingMessageNotification)
              and n.params.level == "info"]
    await conn.s.set_logging_level("debug")
    expect(not leaked, f"info messages arrived at level emergency: {short(repr(leaked))}")
    start = len(conn.inbox.items)
    await conn.s.subscribe_resource(uri)
    await conn.s.unsubscribe_resource(uri)
    await conn.inbox.wait_for(is_log(lambda p: "Subscribe Resource request" in str(p.data)), start)
    return f"{got}; setLevel emergency filtered the info message, setLevel debug let it through"


async def sc_progress(ctx: Ctx) -> str:
    updates: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total))

    steps = 5
    res = await ctx.conn.call(
        "trigger-long-running-operation", {"duration": 1, "steps": steps}, progress_callback=on_progress
    )
    text = tool_text(res)
    expect("Long running operation completed" in text, f"result {text!r}")
    expect(len(updates) == steps, f"{len(updates)} progress notifications, expected {steps}: {updates}")
    expect([p for p, _ in updates] == [float(i) for i in range(1, steps + 1)], f"progress values {updates}")
    expect(all(t == steps for _, t in updates), f"totals {updates}")
    return f"{len(updates)} progress notifications {[p for p, _ in updates]} of total {steps}; result {text!r}"


async def sc_sampling(ctx: Ctx) -> str:
    conn = ctx.conn
    probe = f"peers-probe-{uuid.uuid4().hex[:8]}"
    before = len(conn.sampling_requests)
    text = tool_text(await conn.call("trigger-sampling-request", {"prompt": probe, "maxTokens": 32}))
    got = conn.sampling_requests[before:]
    expect(len(got) == 1, f"our sampling callback ran {len(got)} times")
    expect(SAMPLING_MARKER in text and SAMPLING_MODEL in text and probe in text,
           f"tool result lacks our sampling answer: {short(text)!r}")
    return f"sampling/createMessage (maxTokens={got[0].max_tokens}) answered by our callback; result carries it"


async def sc_elicitation(ctx: Ctx) -> str:
    conn = ctx.conn
    before = len(conn.elicitation_requests)
    text = tool_text(await conn.call("trigger-elicitation-request"))
    expect(len(conn.elicitation_requests) - before == 1, "our elicitation callback did not run exactly once")
    expect(f"- Name: {ELICIT_NAME}" in text and f"Favorite Integer: {ELICIT_INTEGER}" in text,
           f"tool result lacks our elicitation answer: {short(text)!r}")
    return "elicitation/create (form) accepted by our callback; result carries name and integer"


async def sc_roots(ctx: Ctx) -> str:
    conn = ctx.conn
    text = tool_text(await conn.call("get-roots-list"))
    missing = [f"{u} ({n})" for u, n in ROOTS if u not in text or n not in text]
    expect(not missing, f"roots missing from result: {missing}; result {short(text)!r}")
    expect(conn.roots_requests >= 1, "our roots/list callback never ran")
    return f"get-roots-list returned our {len(ROOTS)} roots (roots/list answered {conn.roots_requests}x)"


async def sc_cancellation(ctx: Ctx) -> str:
    conn = ctx.conn
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    first_out = len(conn.outbound)
    outcome: dict[str, Any] = {}

    async def long_call() -> None:
        try:
            res = await conn.s.call_tool(
                conn.tool("trigger-long-running-operation"), {"duration": 20, "steps": 20},
                progress_callback=on_progress,
            )
            outcome["result"] = res
        except BaseException as exc:  # cancellation is re-raised by the task group machinery
            outcome["exc"] = type(exc).__name__
            raise

    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(long_call)
        with anyio.move_on_after(3):
            await started.wait()  # the server is running it (first progress after 1 s)
        tg.cancel_scope.cancel()
    elapsed = time.monotonic() - t0
    expect("result" not in outcome, "the long-running call completed instead of being cancelled")
    sent = conn.outbound[first_out:]
    call_ids = [m.id for m in sent if getattr(m, "method", None) == "tools/call"]
    expect(len(call_ids) == 1, f"expected one tools/call, saw {call_ids}")
    cancels = [m for m in sent if getattr(m, "method", None) == "notifications/cancelled"]
    cancelled_ids = [(m.params or {}).get("requestId") for m in cancels]
    expect(call_ids[0] in cancelled_ids, f"no notifications/cancelled for request {call_ids[0]}: {cancelled_ids}")
    # The session must still work.
    text = tool_text(await conn.call("echo", {"message": "after-cancel"}))
    expect(text == "Echo: after-cancel", f"echo after cancel answered {text!r}")
    seen = "after its first progress notification" if started.is_set() else "(no progress seen within 3s)"
    return (f"request {call_ids[0]} cancelled {seen} at {elapsed:.2f}s, notifications/cancelled sent, "
            "session still answers")


def big_payload(size: int) -> str:
    """`size` ASCII chars, varied so truncation or reordering changes it (not just one repeated char)."""
    unit = "".join(chr(33 + (i * 7) % 94) for i in range(997))  # printable, prime-length period
    body = (unit * (size // len(unit) + 1))[:size]
    return body[:-16] + f"{size:016d}" if size >= 16 else body


async def sc_large_payload(ctx: Ctx) -> str:
    size = ctx.args.large_bytes
    payload = big_payload(size)
    t0 = time.monotonic()
    text = tool_text(await ctx.conn.call("echo", {"message": payload}))
    elapsed = time.monotonic() - t0
    expect(len(text) == len(payload) + 6, f"echo answered {len(text)} chars, expected {len(payload) + 6}")
    expect(text == "Echo: " + payload, "echo of the large payload differs from what was sent")
    return f"{size}-byte echo round-tripped exactly in {elapsed:.2f}s"


async def sc_concurrent_calls(ctx: Ctx) -> str:
    conn = ctx.conn
    n = ctx.args.concurrent_calls
    nonce = uuid.uuid4().hex[:6]
    answers: dict[int, str] = {}
    first_out = len(conn.outbound)

    async def one(i: int) -> None:
        if i % 2:
            answers[i] = tool_text(await conn.call("get-sum", {"a": i, "b": 1000}))
        else:
            answers[i] = tool_text(await conn.call("echo", {"message": f"concurrent-{nonce}-{i}"}))

    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    elapsed = time.monotonic() - t0
    wrong = []
    for i in range(n):
        want = f"The sum of {i} and 1000 is {i + 1000}." if i % 2 else f"Echo: concurrent-{nonce}-{i}"
        if answers.get(i) != want:
            wrong.append(f"#{i}: {answers.get(i)!r} != {want!r}")
    expect(not wrong, f"{len(wrong)} wrong answers: {wrong[:5]}")
    ids = [m.id for m in conn.outbound[first_out:] if getattr(m, "method", None) == "tools/call"]
    expect(len(ids) == n and len(set(ids)) == n, f"{len(ids)} tools/call requests with {len(set(ids))} distinct ids")
    return f"{n} concurrent calls (echo/get-sum) on one session, {n} distinct ids, all answered correctly in {elapsed:.2f}s"


async def sc_concurrent_sessions(ctx: Ctx) -> str:
    n = ctx.args.sessions
    results: dict[int, tuple[str, str | None]] = {}
    errors: dict[int, str] = {}

    races: list[int] = []

    async def one(k: int) -> None:
        try:
            async with open_conn(ctx.args, f"session-{k}") as conn:
                text = tool_text(await conn.call("echo", {"message": f"session-{k}"}))
                results[k] = (text, conn.session_id)
        except Exception as exc:
            if k in results and is_teardown_race(exc):
                races.append(k)  # answered, then a late server message raced the SDK's shutdown
            else:
                errors[k] = describe_exc(exc)

    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        for k in range(n):
            tg.start_soon(one, k)
    elapsed = time.monotonic() - t0
    expect(not errors, f"{len(errors)} sessions failed: {dict(list(errors.items())[:3])}")
    wrong = [k for k in range(n) if results.get(k, ("", None))[0] != f"Echo: session-{k}"]
    expect(not wrong, f"wrong answers in sessions {wrong}")
    sids = [sid for _, sid in results.values() if sid]
    expect(len(set(sids)) == len(sids), f"session ids repeat: {sids}")
    ids_note = f", {len(set(sids))} distinct session ids" if sids else ""
    race_note = f" ({len(races)} closed with the SDK's teardown race, ignored)" if races else ""
    return f"{n} concurrent sessions initialized and answered their own echo{ids_note} in {elapsed:.2f}s{race_note}"


SCENARIO_FUNCS: dict[str, Callable[[Ctx], Awaitable[Any]]] = {
    "initialize": sc_initialize,
    "ping": sc_ping,
    "tools-list": sc_tools_list,
    "echo": sc_echo,
    "resources": sc_resources,
    "prompts": sc_prompts,
    "completion": sc_completion,
    "logging": sc_logging,
    "progress": sc_progress,
    "sampling": sc_sampling,
    "elicitation": sc_elicitation,
    "roots": sc_roots,
    "cancellation": sc_cancellation,
    "large-payload": sc_large_payload,
    "concurrent-calls": sc_concurrent_calls,
    "concurrent-sessions": sc_concurrent_sessions,
}
# Scenarios that report several checks themselves; the others report one check named after them.
MULTI_CHECK = {"resources", "prompts"}
MULTI_CHECK_NAMES = {
    "resources": ["resources.list", "resources.read", "resources.templates", "resources.subscribe"],
    "prompts": ["prompts.list", "prompts.get"],
}


# --------------------------------------------------------------------------------------------
# Report and main.
# --------------------------------------------------------------------------------------------


@dataclass
class Report:
    args: argparse.Namespace
    checks: list[dict[str, Any]] = field(default_factory=list)
    conn: Conn | None = None
    teardown_error: str | None = None
    fatal: str | None = None
    t0: float = field(default_factory=time.monotonic)

    async def run(self, name: str, fn: Callable[[], Awaitable[Any]], timeout: float | None = None) -> None:
        timeout = timeout or self.args.timeout
        errors_before = len(self.conn.transport_errors) if self.conn else 0
        t0 = time.monotonic()
        ok, detail = False, ""
        try:
            with anyio.fail_after(timeout):
                detail = await fn()
            ok = True
        except TimeoutError:
            detail = f"timed out after {timeout:g}s"
        except Exception as exc:
            detail = describe_exc(exc)
            log.debug("check %s failed:\n%s", name, traceback.format_exc())
        if not ok and self.conn and len(self.conn.transport_errors) > errors_before:
            detail += f" [transport errors: {self.conn.transport_errors[errors_before:][:3]}]"
        self.add(name, ok, detail or "", time.monotonic() - t0)

    def add(self, name: str, ok: bool, detail: str, duration: float = 0.0) -> None:
        self.checks.append({"name": name, "ok": ok, "detail": detail, "duration_s": round(duration, 3)})
        log.info("%s %s: %s", "PASS" if ok else "FAIL", name, detail)

    def to_json(self) -> dict[str, Any]:
        conn = self.conn
        init = conn.init_result if conn else None
        out: dict[str, Any] = {
            "ok": bool(self.checks) and all(c["ok"] for c in self.checks) and self.fatal is None,
            "transport": self.args.transport,
            "target": self.args.url or self.args.command,
            "protocol_version": init.protocol_version if init else None,
            "server_info": init.server_info.model_dump(exclude_none=True) if init else None,
            "session_id": conn.session_id if conn else None,
            "checks": self.checks,
            "duration_s": round(time.monotonic() - self.t0, 3),
        }
        if conn is not None:
            out["http_statuses"] = dict(conn.http) if conn.http else None
            out["ws_subprotocol"] = conn.ws_subprotocol
            out["transport_errors"] = conn.transport_errors[:20]
        if self.teardown_error:
            out["teardown_error"] = self.teardown_error
        if self.fatal:
            out["error"] = self.fatal
        return out


async def amain(args: argparse.Namespace, report: Report) -> None:
    selected = args.scenario or list(SCENARIOS)
    scope = anyio.CancelScope(deadline=anyio.current_time() + args.timeout + 5)
    checks_done = False
    try:
        with scope:
            async with open_conn(args, "main", on_conn=lambda c: setattr(report, "conn", c)) as conn:
                scope.deadline = math.inf
                ctx = Ctx(args=args, conn=conn, report=report)
                for name in SCENARIOS:
                    if name not in selected and name != "initialize":
                        continue
                    fn = SCENARIO_FUNCS[name]
                    if name in MULTI_CHECK:
                        await fn(ctx)
                    else:
                        timeout = args.timeout * 2 if name == "concurrent-sessions" else None
                        await report.run(name, functools.partial(fn, ctx), timeout)
                        if name == "initialize":
                            report.checks[-1]["duration_s"] = round(conn.init_duration, 3)
                checks_done = True
                scope.deadline = anyio.current_time() + 10  # bound the teardown
        if scope.cancelled_caught:
            if checks_done:
                report.teardown_error = "teardown did not finish within 10s"
            else:
                report.fatal = f"could not connect and initialize within {args.timeout + 5:g}s"
    except Exception as exc:
        if checks_done:
            report.teardown_error = describe_exc(exc)
        else:
            report.fatal = describe_exc(exc)
            log.debug("connect failed:\n%s", traceback.format_exc())
    if report.fatal:
        done = {c["name"] for c in report.checks}
        for name in ["initialize"] + [s for s in SCENARIOS if s in selected and s != "initialize"]:
            for check in MULTI_CHECK_NAMES.get(name, [name]):
                if check not in done:
                    report.add(check, False, f"not run: {report.fatal}")


def drop_teardown_noise(record: logging.LogRecord) -> bool:
    """Hide the SDK's tracebacks for messages that arrive while a session is closing.

    A server message racing the session's shutdown (server-everything sends `roots/list` and a log
    message 350 ms after `initialize`) makes the SDK log "Error parsing SSE message" with a
    ClosedResourceError/BrokenResourceError traceback. That is teardown noise, not a failure.
    """
    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, anyio.ClosedResourceError | anyio.BrokenResourceError)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Drive an MCP endpoint through named scenarios (official Python SDK, handshake era).",
        epilog=f"Scenarios (default: all, in this order): {', '.join(SCENARIOS)}",
    )
    p.add_argument("--transport", choices=TRANSPORTS, required=True)
    p.add_argument("--url", help="endpoint URL (streamable-http: .../mcp, sse: .../sse, ws: ws://.../ws)")
    p.add_argument("--command", help="stdio: the server command line (split like a shell would)")
    p.add_argument("--header", action="append", default=[], metavar="'Name: value'",
                   help="extra HTTP header on every request / the WebSocket upgrade (repeatable)")
    p.add_argument("--scenario", action="append", choices=SCENARIOS, metavar="NAME",
                   help="scenario to run (repeatable; default all)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per check and per request (default 20)")
    p.add_argument("--total-timeout", type=float, default=300.0,
                   help="watchdog: give up (exit 3) after this many seconds (default 300)")
    p.add_argument("--large-bytes", type=int, default=1024 * 1024, help="large-payload size (default 1 MiB)")
    p.add_argument("--concurrent-calls", type=int, default=50)
    p.add_argument("--sessions", type=int, default=20, help="concurrent-sessions count (default 20)")
    p.add_argument("--max-event-bytes", type=int, default=16 * 1024 * 1024,
                   help="largest SSE event / WebSocket frame the client accepts (SDK default is 1 MiB; default 16 MiB)")
    p.add_argument("--tool-prefix", default="", help="prefix of every tool name (a gateway's aggregate endpoint)")
    p.add_argument("--prompt-prefix", default="", help="prefix of every prompt name")
    p.add_argument("--resource-prefix", default="", help="prefix of every resource URI (a gateway's aggregate endpoint)")
    p.add_argument("--server-stderr", action="store_true", help="stdio: show the server's stderr")
    p.add_argument("--pretty", action="store_true", help="indent the JSON output")
    p.add_argument("-v", "--verbose", action="count", default=0, help="-v: one line per check on stderr; -vv: debug")
    args = p.parse_args(argv)
    if args.transport == "stdio":
        if not args.command:
            p.error("--transport stdio needs --command")
    elif not args.url:
        p.error(f"--transport {args.transport} needs --url")
    elif args.transport == "ws" and urlparse(args.url).scheme not in ("ws", "wss"):
        p.error("--transport ws needs a ws:// or wss:// URL")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose >= 2 else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if args.verbose == 1:
        log.setLevel(logging.INFO)
    for handler in logging.getLogger().handlers:
        handler.addFilter(drop_teardown_noise)
    # The SDK's legacy-SSE client hard-codes a 1 MiB cap on one SSE event (its streamable-HTTP client
    # takes max_sse_event_size): raise it the same way, or a 1 MiB echo cannot come back over SSE.
    _sdk_sse.sse_within_origin = functools.partial(  # type: ignore[assignment]
        _sdk_sse.sse_within_origin, max_event_size=args.max_event_bytes
    )
    report = Report(args=args)
    printed = threading.Lock()

    def emit(code: int) -> None:
        with printed:
            sys.stdout.write(json.dumps(report.to_json(), indent=2 if args.pretty else None, ensure_ascii=False) + "\n")
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)  # never wait on a lingering transport thread or child

    def watchdog() -> None:
        time.sleep(args.total_timeout)
        report.fatal = f"watchdog: the run exceeded --total-timeout {args.total_timeout:g}s"
        emit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        anyio.run(amain, args, report)
    except BaseException as exc:  # noqa: BLE001 - anything left is reported, never a traceback on stdout
        report.fatal = report.fatal or describe_exc(exc)
    emit(0 if report.to_json()["ok"] else 1)
    return 0  # unreachable


if __name__ == "__main__":
    sys.exit(main())
