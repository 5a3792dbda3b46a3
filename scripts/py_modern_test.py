#!/usr/bin/env python3
"""The Python `mcp` SDK pinned to 2026-07-28 (stateless, no initialize) as a client of the hub.

Through the hub's /mcp with server-everything (a handshake-era stdio server) behind it as
`everything` and the fixture as `fixture`:
  - list tools; call everything__echo
  - call everything__trigger-sampling-request: server-everything asks its client (the hub) for
    sampling/createMessage; the hub turns that into an InputRequiredResult, the SDK answers it
    through sampling_callback and retries, and the hub completes the parked upstream call
  - the same for everything__trigger-elicitation-request (elicitation_callback)
  - a client that did not declare sampling gets -32021 for the fixture's sampling tool
With a second URL, a search-mode profile's endpoint over server-everything without its `echo`
(`/mcp/<profile>`), the same SDK there:
  - tools/list is search_tools and call_tool only; search_tools finds everything's sampling tool
  - call_tool of that tool: its sampling request reaches the client as an input request and the
    call completes, exactly as a direct call does
  - the hidden everything__echo and the fixture's tools are unknown, through call_tool or directly
Exits 0 when every check passed, 1 otherwise (each failure is printed).

Usage: py_modern_test.py http://127.0.0.1:PORT/mcp [http://127.0.0.1:PORT/mcp/PROFILE]
"""

from __future__ import annotations

import sys
import warnings

import anyio
import mcp
from mcp import Client, types

warnings.simplefilter("ignore")


def text_of(result) -> str:
    return " ".join(getattr(c, "text", "") or "" for c in result.content)


async def main(url: str, profile_url: str | None = None) -> int:
    failures: list[str] = []
    asked: list[str] = []

    def check(cond: bool, what: str) -> None:
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            failures.append(what)

    async def sampling(context, params):
        asked.append("sampling")
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="a sampled answer"),
            model="py-modern-test",
            stop_reason="endTurn",
        )

    async def elicitation(context, params):
        asked.append("elicitation")
        return types.ElicitResult(action="accept", content={"name": "Ada", "color": "red"})

    info = mcp.Implementation(name="py-modern-test", version="1")
    client = Client(url, mode="2026-07-28", client_info=info, read_timeout_seconds=30,
                    sampling_callback=sampling, elicitation_callback=elicitation)
    async with client:
        check(client.protocol_version == "2026-07-28", f"pinned to {client.protocol_version}")
        names = {t.name for t in (await client.list_tools()).tools}
        check("everything__echo" in names, "everything__echo is listed")
        r = await client.call_tool("everything__echo", {"message": "stateless hello"})
        check("stateless hello" in text_of(r), f"everything__echo answered: {text_of(r)!r}")

        tool = "everything__trigger-sampling-request"
        check(tool in names, f"{tool} is listed")
        if tool in names:
            r = await client.call_tool(tool, {"prompt": "Say hi", "maxTokens": 20})
            check("sampling" in asked, "the sampling request reached the client as an input request")
            check("a sampled answer" in text_of(r) and not r.is_error,
                  f"the sampling tool completed with the client's answer: {text_of(r)[:120]!r}")

        tool = "everything__trigger-elicitation-request"
        check(tool in names, f"{tool} is listed")
        if tool in names:
            r = await client.call_tool(tool, {})
            check("elicitation" in asked, "the elicitation request reached the client as an input request")
            check(not r.is_error and ("Ada" in text_of(r) or "accept" in text_of(r)),
                  f"the eliciting tool completed with the client's answer: {text_of(r)[:160]!r}")

    # A client that did not declare sampling: the hub ends the call with -32021.
    bare = Client(url, mode="2026-07-28", client_info=info, read_timeout_seconds=30)
    async with bare:
        try:
            r = await bare.call_tool("fixture__test_missing_capability", {})
            check(False, f"expected -32021, got a result: {text_of(r)!r}")
        except mcp.MCPError as e:
            check(e.error.code == -32021, f"undeclared sampling is -32021: {e.error.code} {e.error.message}")

    if profile_url:
        asked.clear()
        client = Client(profile_url, mode="2026-07-28", client_info=info, read_timeout_seconds=30,
                        sampling_callback=sampling)
        async with client:
            names = sorted(t.name for t in (await client.list_tools()).tools)
            check(names == ["call_tool", "search_tools"], f"the search profile lists {names}")
            r = await client.call_tool("search_tools", {"query": "trigger a sampling request"})
            found = [t.get("name") for t in (r.structured_content or {}).get("tools", [])]
            tool = "everything__trigger-sampling-request"
            check(tool in found, f"search_tools finds {tool}: {found}")
            r = await client.call_tool("call_tool", {"name": tool,
                                                     "arguments": {"prompt": "Say hi", "maxTokens": 20}})
            check("sampling" in asked, "call_tool's sampling request reached the client as an input request")
            check("a sampled answer" in text_of(r) and not r.is_error,
                  f"call_tool completed with the client's answer: {text_of(r)[:120]!r}")
            for name, args in [("call_tool", {"name": "everything__echo", "arguments": {"message": "x"}}),
                               ("everything__echo", {"message": "x"}),
                               ("call_tool", {"name": "fixture__echo", "arguments": {"text": "x"}}),
                               ("fixture__echo", {"text": "x"})]:
                target = args.get("name", name)
                try:
                    r = await client.call_tool(name, args)
                    check(False, f"{name} {target}: expected Unknown tool, got {text_of(r)!r}")
                except mcp.MCPError as e:
                    check(e.error.message == f"Unknown tool: {target}",
                          f"{name} {target} is unknown: {e.error.code} {e.error.message}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(anyio.run(main, *sys.argv[1:3]))
