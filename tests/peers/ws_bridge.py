#!/usr/bin/env python3
"""A tiny WebSocket -> stdio MCP bridge: self-tests mcp_client.py's `ws` transport, and serves as
the gateway's `ws` upstream in the end-to-end tests (tests/it/mcp.rs).

There is no public MCP server with a WebSocket endpoint to test the driver against, so this bridge
gives one: every WebSocket connection (subprotocol `mcp`, one JSON-RPC message per text frame) gets
its own child process speaking MCP over stdio (newline-delimited JSON-RPC).

    .venv/bin/python ws_bridge.py --port 39103 -- ./everything.sh stdio
    # ready when it prints "ws_bridge listening on ws://127.0.0.1:39103/ws" on stderr

It binds 127.0.0.1 only, accepts any path, refuses a client that does not offer the `mcp`
subprotocol (HTTP 400 at the upgrade), and has no size limit on frames.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("ws_bridge")
LINE_LIMIT = 64 * 1024 * 1024  # one JSON-RPC message per line; asyncio's default limit is 64 KiB


async def bridge(ws: ServerConnection, command: list[str]) -> None:
    if ws.subprotocol != "mcp":
        await ws.close(1002, "the mcp subprotocol is required")
        return
    child = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        limit=LINE_LIMIT,
        start_new_session=True,
    )
    assert child.stdin is not None and child.stdout is not None
    stdin, stdout = child.stdin, child.stdout
    log.info("connection %s: child pid %s", ws.id, child.pid)

    async def ws_to_child() -> None:
        async for frame in ws:
            text = frame if isinstance(frame, str) else frame.decode("utf-8")
            stdin.write(text.replace("\n", " ").encode("utf-8") + b"\n")  # JSON never needs raw newlines
            await stdin.drain()

    async def child_to_ws() -> None:
        while line := await stdout.readline():
            line = line.strip()
            if line:
                await ws.send(line.decode("utf-8"))

    tasks = [asyncio.create_task(ws_to_child()), asyncio.create_task(child_to_ws())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, ConnectionError, Exception):
                await task
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.terminate()
            try:
                await asyncio.wait_for(child.wait(), 3)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                await child.wait()
        with contextlib.suppress(Exception):
            await ws.close()
        log.info("connection %s closed", ws.id)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- the stdio server command line")
    args = p.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give the stdio server command after --")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(
        lambda ws: bridge(ws, command),
        "127.0.0.1",
        args.port,
        subprotocols=["mcp"],
        max_size=None,
        compression=None,
        ping_interval=None,
    ):
        print(f"ws_bridge listening on ws://127.0.0.1:{args.port}/ws", file=sys.stderr, flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main())
