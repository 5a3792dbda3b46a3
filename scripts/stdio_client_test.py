#!/usr/bin/env python3
"""The official Python `mcp` SDK reaching upstream tools through `mcp-hub stdio`, as a desktop
client would: it spawns `mcp-hub stdio --config FILE` and speaks MCP on its stdin/stdout.

Upstreams: the workspace fixture (`fixture`) and server-everything (`everything`), both started
in a directory of their own so their processes can be counted.
  1. one client: tools of both upstreams are listed and called; sampling, elicitation and roots
     requests from the upstreams reach the client's callbacks and their answers go back; progress
     notifications arrive;
  2. two clients at once (two `mcp-hub stdio` processes): both reach the same upstream process
     (same pid), and exactly one process per upstream server runs;
  3. when both have left, no upstream process is left.
Exits 0 when every check passed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import anyio
import mcp
import mcp.types as types
from mcp import Client
from mcp.client.stdio import StdioServerParameters

warnings.simplefilter("ignore")

HUB = os.environ["MCP_HUB_BIN"]
FIXTURE = os.environ["MCP_HUB_FIXTURE"]
NODE = os.environ["MCP_HUB_NODE22"]
EVERYTHING = os.environ["MCP_HUB_SERVER_EVERYTHING"]

failures: list[str] = []


def check(cond: bool, what: str) -> None:
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def text_of(result) -> str:
    return " ".join(getattr(c, "text", "") or "" for c in result.content)


def processes_in(directory: Path) -> list[int]:
    """Live (non-zombie) processes whose working directory is `directory`."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if os.readlink(p / "cwd") != str(directory):
                continue
            state = (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.append(int(p.name))
    return out


async def on_sampling(context, params: types.CreateMessageRequestParams):
    asked = params.messages[0].content.text if params.messages else ""
    return types.CreateMessageResult(role="assistant", model="stdio-test",
                                     content=types.TextContent(type="text", text=f"answer to {asked}"))


async def on_elicit(context, params: types.ElicitRequestParams):
    schema = getattr(params, "requested_schema", None) or {}
    content = {k: v["default"] for k, v in (schema.get("properties") or {}).items() if "default" in v}
    return types.ElicitResult(action="accept", content=content)


ROOT = "file:///stdio-door-root"


async def on_roots(context):
    return types.ListRootsResult(roots=[types.Root(uri=ROOT, name="stdio door root")])


def client(params: StdioServerParameters, name: str) -> Client:
    return Client(params, sampling_callback=on_sampling, elicitation_callback=on_elicit, list_roots_callback=on_roots,
                  read_timeout_seconds=60, client_info=mcp.Implementation(name=name, version="1"))


async def wait_tools(c: Client, want: set[str]) -> set[str]:
    names: set[str] = set()
    for _ in range(300):
        names = {t.name for t in (await c.list_tools()).tools}
        if want <= names:
            break
        await anyio.sleep(0.1)
    return names


async def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="mcp-hub-stdio-"))
    upstream_dir = work / "upstreams"
    upstream_dir.mkdir()
    home = work / "home"
    cfg = work / "servers.json"
    cfg.write_text(json.dumps({"mcpServers": {
        "fixture": {"command": FIXTURE, "cwd": str(upstream_dir)},
        "everything": {"command": NODE, "args": [EVERYTHING], "cwd": str(upstream_dir)},
    }}))
    env = {"HOME": str(home), "XDG_STATE_HOME": str(home / "state"), "XDG_DATA_HOME": str(home / "data"),
           "XDG_CACHE_HOME": str(home / "cache"), "XDG_CONFIG_HOME": str(home / "config"), "MCP_HUB_LOG": "info"}
    params = StdioServerParameters(command=HUB, args=["stdio", "--config", str(cfg)], env=env)
    try:
        # 1. One client.
        async with client(params, "stdio-test-1") as c:
            names = await wait_tools(c, {"fixture__echo", "everything__echo"})
            check({"fixture__echo", "everything__echo"} <= names, "tools of both upstreams are listed through mcp-hub stdio")
            r = await c.call_tool("fixture__echo", {"text": "through stdio"})
            check(text_of(r) == "through stdio", f"fixture__echo answered {text_of(r)!r}")
            r = await c.call_tool("everything__echo", {"message": "hello everything"})
            check("hello everything" in text_of(r), f"everything__echo answered {text_of(r)!r}")
            r = await c.call_tool("fixture__test_sampling", {"prompt": "2+2?"})
            check(text_of(r) == "LLM response: answer to 2+2?", f"sampling crossed the stdio door: {text_of(r)!r}")
            r = await c.call_tool("fixture__test_elicitation_sep1034_defaults", {})
            check("John Doe" in text_of(r) and not r.is_error, f"elicitation crossed the stdio door: {text_of(r)[:80]!r}")
            progress: list[float] = []

            async def on_progress(p, total, message):
                progress.append(p)

            r = await c.call_tool("fixture__test_tool_with_progress", {}, progress_callback=on_progress)
            check(not r.is_error and len(progress) >= 1, f"{len(progress)} progress notifications arrived")
            # Roots: server-everything asks the client for its roots through the hub.
            if "everything__get-roots-list" in names:
                r = await c.call_tool("everything__get-roots-list", {})
                check(ROOT in text_of(r), f"roots/list crossed the stdio door: {text_of(r)[:100]!r}")
            else:
                check(False, "everything__get-roots-list is listed (the hub declares roots upstream)")
            r = await c.read_resource("fixture__test://static-text")
            check(any(getattr(x, "text", "") for x in r.contents), "a resource read through stdio")

        # 2. Two clients at once share one hub.
        async with client(params, "stdio-test-a") as a, client(params, "stdio-test-b") as b:
            await wait_tools(a, {"fixture__pid", "everything__echo"})
            await wait_tools(b, {"fixture__pid", "everything__echo"})
            pa = text_of(await a.call_tool("fixture__pid", {}))
            pb = text_of(await b.call_tool("fixture__pid", {}))
            check(pa == pb and pa.isdigit(), f"both clients reach the same fixture process ({pa}, {pb})")
            ra, rb = await a.call_tool("everything__echo", {"message": "a"}), await b.call_tool("everything__echo", {"message": "b"})
            check("a" in text_of(ra) and "b" in text_of(rb), "both clients call server-everything")
            procs = processes_in(upstream_dir)
            check(len(procs) == 2, f"one process per upstream server for two stdio clients: {procs}")

        # 3. Nothing left behind.
        deadline = time.time() + 20
        while processes_in(upstream_dir) and time.time() < deadline:
            time.sleep(0.1)
        check(not processes_in(upstream_dir), "no upstream process outlives the stdio clients")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"stdio client: {len(failures)} check(s) failed", flush=True)
        return 1
    print("stdio client: all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
