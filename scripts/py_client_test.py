#!/usr/bin/env python3
"""The official Python `mcp` SDK as a client of the hub.

Through one hub with two upstreams (the workspace fixture as `fixture`, server-everything as
`everything`), over the transport given on the command line:
  - initialize, list tools of both upstreams (namespaced `fixture__*`, `everything__*`)
  - call a tool of each upstream
  - read a resource and get a prompt
  - receive progress notifications for a long call
Exits 0 when every check passed, 1 otherwise (each failure is printed).

Usage: py_client_test.py http://127.0.0.1:PORT/mcp streamable-http
       py_client_test.py http://127.0.0.1:PORT/sse sse
"""

from __future__ import annotations

import sys
import warnings

import anyio
import mcp
from mcp import Client
from mcp.client.sse import sse_client

warnings.simplefilter("ignore")


def text_of(result) -> str:
    return " ".join(getattr(c, "text", "") or "" for c in result.content)


async def main(url: str, transport: str) -> int:
    failures: list[str] = []

    def check(cond: bool, what: str) -> None:
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            failures.append(what)

    server = sse_client(url) if transport == "sse" else url
    mode = "legacy" if transport == "sse" else "auto"
    client = Client(server, mode=mode, client_info=mcp.Implementation(name="py-client-test", version="1"), read_timeout_seconds=30)
    async with client:
        # `auto` probes server/discover: over Streamable HTTP the hub's dual-era /mcp answers,
        # so the SDK adopts 2026-07-28; legacy SSE has only the handshake.
        expected = ("2026-07-28",) if transport != "sse" else ("2025-11-25",)
        check(client.protocol_version in expected,
              f"negotiated {client.protocol_version} over {transport}")
        tools = (await client.list_tools()).tools
        names = {t.name for t in tools}
        check("fixture__echo" in names, "fixture__echo is listed")
        check("everything__echo" in names, "everything__echo is listed")

        r = await client.call_tool("fixture__echo", {"text": "from python"})
        check("from python" in text_of(r) and not r.is_error, f"fixture__echo answered: {text_of(r)!r}")
        r = await client.call_tool("everything__echo", {"message": "hello everything"})
        check("hello everything" in text_of(r), f"everything__echo answered: {text_of(r)!r}")

        resources = (await client.list_resources()).resources
        uris = [str(x.uri) for x in resources]
        check(any(u.startswith("fixture__") for u in uris), "fixture resources are listed (namespaced)")
        target = next((u for u in uris if u == "fixture__test://static-text"), None)
        check(target is not None, "fixture__test://static-text is listed")
        if target:
            rr = await client.read_resource(target)
            check(bool(rr.contents) and bool(getattr(rr.contents[0], "text", "")), "resources/read returned text")

        prompts = {p.name for p in (await client.list_prompts()).prompts}
        check("fixture__test_simple_prompt" in prompts, "fixture prompts are listed")
        gp = await client.get_prompt("fixture__test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})
        check(len(gp.messages) >= 1, "prompts/get returned messages")

        progress: list[float] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append(p)

        r = await client.call_tool("fixture__sleep", {"ms": 400}, progress_callback=on_progress)
        check(not r.is_error, "fixture__sleep completed")
        check(len(progress) >= 1, f"progress notifications received: {progress}")

    if failures:
        print(f"{len(failures)} check(s) failed over {transport}", flush=True)
        return 1
    print(f"all checks passed over {transport}", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in ("streamable-http", "sse"):
        print(__doc__)
        sys.exit(2)
    sys.exit(anyio.run(main, sys.argv[1], sys.argv[2]))
